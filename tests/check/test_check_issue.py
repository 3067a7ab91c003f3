"""`reconcile check --issue` against the GitLab sandbox through python-gitlab: one issue, created
once and then updated (never duplicated) across runs with changes between them; a ticked box stays
ticked; resolved items are ticked with a note; new ones are added; the issue closes when nothing
is left; the only writes are to issues."""

from __future__ import annotations

import re

from check_helpers import GITLAB_ENV, NOW, gl_client, run, served, write_inventory

from reconciler.check import parse_items

SEED = {
    "credentials": {GITLAB_ENV: "{{secret:glpat:credential}}"},
    "gitlab": {
        "users": [{"username": "reconcile-bot", "tokens": [
            {"name": "reconcile credential", "scopes": ["api"], "created_at": "now-30d", "expires_at": "now+300d",
             "value": "{{secret:glpat:credential}}"}]}],
        "groups": [{"full_path": "acme/support"}],
        "projects": [{"path_with_namespace": "acme/support/app"}, {"path_with_namespace": "acme/support/sync"},
                     {"path_with_namespace": "acme/ops-issues"}],
        "access_tokens": [
            {"project": "acme/support/app", "name": "Deploy", "scopes": ["api"], "access_level": 40,
             "created_at": "now-100d", "expires_at": "now+10d"},
            {"group": "acme/support", "name": "Group bot", "scopes": ["api"], "access_level": 30,
             "created_at": "now-100d", "expires_at": "now+15d"},
            {"project": "acme/support/sync", "name": "Forgotten", "scopes": ["read_api"], "access_level": 30,
             "created_at": "now-300d", "expires_at": "now+40d"},
        ],
    },
}
TOKENS = {
    "app-deploy": {"owner": "@app-team", "source": {
        "kind": "gitlab_project_access_token", "provider": "gl", "project": "acme/support/app", "name": "Deploy",
        "scopes": ["api"], "access_level": 40}},
    "group-bot": {"owner": "@support-ops", "source": {
        "kind": "gitlab_group_access_token", "provider": "gl", "group": "acme/support", "name": "Group bot",
        "scopes": ["api"], "access_level": 30}},
}
CHECK = {"within": "21d", "issue_title": "Token Checker: tokens expiring soon", "issue_label": "token-checker"}
PROJECT = "acme/ops-issues"


def _issues(world):
    return gl_client(world).projects.get(PROJECT).issues.list(get_all=True, state="all")


def _check(capsys, world):
    before = len(world.gitlab.log.mutations())
    code, out, err = run(capsys, "check", "--sandbox", "--now", NOW, "--issue", PROJECT)
    writes = world.gitlab.log.mutations()[before:]
    assert all(re.search(r"/api/v4/projects/.+/issues(/\d+(/notes)?)?$", e.path) for e in writes), [e.path for e in writes]
    assert world.zendesk.log.count() == 0  # no Zendesk provider, no Zendesk request
    return code, out, err, len(writes)


def test_issue_created_updated_and_closed_across_runs(capsys, workdir, monkeypatch):
    write_inventory(workdir / "inventory", TOKENS, discovery={"gitlab": [{"provider": "gl", "groups": ["acme/support"]}]},
                    check=CHECK)
    with served(SEED, monkeypatch, workdir) as world:
        gl = gl_client(world)
        # run 1: created, three items, owners mentioned
        code, _, err, writes = _check(capsys, world)
        assert code == 2 and writes == 1 and "created" in err
        [issue] = _issues(world)
        assert issue.title == CHECK["issue_title"] and issue.labels == ["token-checker"] and issue.state == "opened"
        items = parse_items(issue.description)
        assert set(items) == {"token:app-deploy", "token:group-bot", "live:gl:gitlab_token:4"}
        assert not any(i.checked for i in items.values())
        assert "@app-team" in items["token:app-deploy"].text and "@support-ops" in items["token:group-bot"].text
        assert "Rotate or revoke" in items["live:gl:gitlab_token:4"].text

        # between runs: a person ticks group-bot; app-deploy is rotated; a new unmanaged token appears
        issue.description = issue.description.replace(
            "- [ ] " + items["token:group-bot"].text, "- [x] " + items["token:group-bot"].text)
        issue.save()
        deploy = gl.projects.get("acme/support/app", lazy=True).access_tokens
        deploy.rotate(2, expires_at="2027-09-01")
        gl.projects.get("acme/support/sync", lazy=True).access_tokens.create(
            {"name": "New helper", "scopes": ["read_api"], "access_level": 30, "expires_at": "2027-01-15"})

        # run 2: the same issue, updated, and one comment on what changed
        code, _, err, writes = _check(capsys, world)
        assert code == 2 and writes == 2 and "updated" in err and "commented on what changed" in err
        [issue] = _issues(world)
        items = parse_items(issue.description)
        assert items["token:group-bot"].checked and not items["token:group-bot"].resolved  # the tick stays
        done = items["token:app-deploy"]
        assert done.checked and done.resolved and "resolved: rotated on or before 2026-11-22 (now #" in done.text
        new = [i for k, i in items.items() if "New helper" in i.text]
        assert len(new) == 1 and not new[0].checked and not new[0].resolved
        assert not items["live:gl:gitlab_token:4"].checked

        # the same state again: nothing written
        code, _, err, writes = _check(capsys, world)
        assert code == 2 and writes == 0 and "unchanged" in err

        # between runs: everything handled
        group_tokens = gl.groups.get("acme/support", lazy=True).access_tokens
        [bot] = [t for t in group_tokens.list(get_all=True) if t.name == "Group bot" and t.active]
        group_tokens.rotate(bot.id, expires_at="2027-09-01")
        sync_tokens = gl.projects.get("acme/support/sync", lazy=True).access_tokens
        for t in sync_tokens.list(get_all=True):
            if t.active:
                sync_tokens.delete(t.id)

        # run 3: closed, every item ticked, still one issue
        code, _, err, writes = _check(capsys, world)
        assert code == 0 and writes == 2 and "closed" in err and "commented on what changed" in err
        [issue] = _issues(world)
        assert issue.state == "closed"
        items = parse_items(issue.description)
        assert len(items) == 4 and all(i.checked and i.resolved for i in items.values())
        assert "revoked, expired or gone" in items["live:gl:gitlab_token:4"].text
        assert "## Needs attention" not in issue.description

        # run 4: nothing to report and no open issue: none created
        code, _, err, writes = _check(capsys, world)
        assert code == 0 and writes == 0 and "none created" in err and len(_issues(world)) == 1


def test_a_lost_answer_to_the_issue_create_never_leads_to_a_second_issue(capsys, workdir, monkeypatch):
    """GitLab creates the issue but the answer is lost (a 502 from a proxy): the create is not
    retried, the run fails clearly, and the next run finds that issue and updates it."""
    from reconciler_sandbox.core import FaultRule

    write_inventory(workdir / "inventory", TOKENS, check=CHECK)
    with served(SEED, monkeypatch, workdir) as world:
        world.gitlab.faults.configure(rules=[FaultRule("502", nth=(1,), method="POST", path=r"/issues$", after=True)])
        code, _, err = run(capsys, "check", "--sandbox", "--now", NOW, "--issue", PROJECT)
        assert code == 1 and "502" in err
        assert len(_issues(world)) == 1  # created once, not retried
        world.gitlab.faults.configure(rules=[])
        code, _, err = run(capsys, "check", "--sandbox", "--now", NOW, "--issue", PROJECT)
        assert code == 2 and ("unchanged" in err or "updated" in err)
        assert len(_issues(world)) == 1
