"""The weekly Token Checker issue as the runbook works it, through the CLI and python-gitlab against
the GitLab sandbox of a GitLab.com world (the credential an Owner of the top-level group, not an
administrator): each item says whether its token is in use; an unmanaged one offers the inventory
YAML that adopts it and the one that revokes it, and each of them, pasted into the inventory,
validates; a run that changes the items adds exactly one comment saying what changed, a run that
changes nothing (or only the days left) adds none."""

from __future__ import annotations

import re

import yaml
from check_helpers import GITLAB_ENV, gl_client, run, served, write_inventory

from reconciler.check import parse_items

SEED = {
    "credentials": {GITLAB_ENV: "{{secret:glpat:credential}}"},
    "gitlab": {
        "users": [
            {"username": "owner-bot", "tokens": [
                {"name": "reconcile credential", "scopes": ["api"], "created_at": "now-30d", "expires_at": "now+300d",
                 "value": "{{secret:glpat:credential}}"}]},
            {"username": "alice", "enterprise_group": "acme", "tokens": [
                {"name": "alice laptop", "scopes": ["read_api"], "created_at": "now-40d", "expires_at": "now+10d",
                 "last_used_at": "now-3d"}]},
            {"username": "bob", "enterprise_group": "acme", "tokens": [
                {"name": "bob ci", "scopes": ["api"], "created_at": "now-400d", "expires_at": "now+60d",
                 "last_used_at": "now-90d"}]},
        ],
        "groups": [{"full_path": "acme", "plan": "ultimate", "members": {"owner-bot": 50, "alice": 30, "bob": 30}}],
        "projects": [{"path_with_namespace": "acme/app"}, {"path_with_namespace": "acme/ops-issues"}],
        "access_tokens": [{"project": "acme/app", "name": "Deploy", "scopes": ["api"], "access_level": 40,
                           "created_at": "now-100d", "expires_at": "now+12d"}],
    },
}
DISCOVERY = {"gitlab": [{"provider": "gl", "users": ["alice", "bob"], "groups": ["acme"]}]}
CHECK = {"within": "21d", "issue_title": "Token Checker", "issue_label": "token-checker"}
PROJECT = "acme/ops-issues"
DAY1, DAY2 = "2026-11-22T12:00:00Z", "2026-11-23T12:00:00Z"


def _check(capsys, world, now: str) -> tuple[int, str]:
    code, _, err = run(capsys, "check", "--sandbox", "--now", now, "--issue", PROJECT)
    assert code in (0, 2), err
    return code, err


def _issue(world):
    [issue] = gl_client(world).projects.get(PROJECT).issues.list(get_all=True, state="all")
    return issue


def _comments(issue) -> list[str]:
    return [n.body for n in issue.notes.list(get_all=True, sort="asc") if not n.system]


def _snippets(description: str) -> list[str]:
    return re.findall(r"^  ```yaml\n(.*?)^  ```$", description, flags=re.MULTILINE | re.DOTALL)


def test_items_say_last_use_and_offer_yaml_that_validates(capsys, workdir, monkeypatch):
    write_inventory(workdir / "inventory", {}, discovery=DISCOVERY, check=CHECK)
    with served(SEED, monkeypatch, workdir) as world:
        _check(capsys, world, DAY1)
        description = _issue(world).description
    items = parse_items(description)
    by_name = {re.search(r"'([^']+)'", i.text).group(1): i for i in items.values()}
    assert set(by_name) == {"alice laptop", "bob ci", "Deploy"}
    assert "in use: last used 2026-11-19 (3 days ago)" in by_name["alice laptop"].text
    assert "not in use: last used 2026-08-24 (90 days ago)" in by_name["bob ci"].text
    assert "never used" in by_name["Deploy"].text
    assert "`gl: user alice`" in by_name["alice laptop"].text  # by username, never by a bare id

    snippets = [textwrap_dedent(s) for s in _snippets(description)]
    assert len(snippets) == 6  # adopt and revoke for each of the three
    for snippet in snippets:
        ((name, token),) = yaml.safe_load(snippet)["tokens"].items()
        assert token["source"]["provider"] == "gl"
        (workdir / "inventory" / "pasted.yaml").write_text(snippet)
        code, out, err = run(capsys, "validate", "--inventory", str(workdir / "inventory"))
        assert code == 0, (snippet, out, err)
    adopt, revoke = (yaml.safe_load(s)["tokens"] for s in snippets[:2])
    assert adopt.keys() == revoke.keys() and "state" not in next(iter(adopt.values()))
    assert next(iter(revoke.values()))["state"] == "absent"
    laptop = next(yaml.safe_load(s)["tokens"]["alice-laptop"] for s in snippets if "alice-laptop" in s)
    assert laptop["owner"] == "@alice" and laptop["source"]["user"] == "alice"


def textwrap_dedent(text: str) -> str:
    return "\n".join(line[2:] for line in text.splitlines()) + "\n"


def test_one_comment_per_run_that_changes_the_items_and_none_otherwise(capsys, workdir, monkeypatch):
    write_inventory(workdir / "inventory", {}, discovery=DISCOVERY, check=CHECK)
    with served(SEED, monkeypatch, workdir) as world:
        _check(capsys, world, DAY1)
        issue = _issue(world)
        assert _comments(issue) == []  # the new issue says it all

        # between runs: alice's laptop token is revoked, a new project token appears
        gl = gl_client(world)
        gl.http_delete("/groups/acme/manage/personal_access_tokens/2")
        gl.projects.get("acme/app", lazy=True).access_tokens.create(
            {"name": "Release", "scopes": ["read_api"], "access_level": 30, "expires_at": "2026-12-20"})

        _, err = _check(capsys, world, DAY1)
        assert "updated" in err and "commented on what changed" in err
        [comment] = _comments(_issue(world))
        assert comment.startswith("Changes since the run of 2026-11-22")
        assert "- new: " in comment and "'Release'" in comment
        assert "- resolved: " in comment and "'alice laptop'" in comment and "revoked, expired or gone" in comment
        assert "'bob ci'" not in comment and "'Deploy'" not in comment  # unchanged items are not repeated

        # the next day, nothing changed but the days left: the description follows, no comment
        _, err = _check(capsys, world, DAY2)
        assert "updated" in err and "commented" not in err
        assert len(_comments(_issue(world))) == 1
        # and the same day again: nothing written at all
        _, err = _check(capsys, world, DAY2)
        assert "unchanged" in err and len(_comments(_issue(world))) == 1
