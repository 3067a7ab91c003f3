"""`created_with`: a source created with another inventory token's value. Validation through the
real CLI: the creator exists, can create as its user, is on the same provider, and no chain of
them is a cycle; each mistake is one line naming file, line and key, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import main

HEAD = """\
providers:
  gl: {kind: gitlab, url: https://gitlab.example.com, auth: {token_env: GL_TOKEN}}
  gl2: {kind: gitlab, url: https://gitlab.other.example, auth: {token_env: GL2_TOKEN}}
  zd: {kind: zendesk, subdomain: acme, auth: {oauth_token_env: ZD_TOKEN}}
tokens:
"""

BOT = ("  support-bot-token:\n"
       "    source: {kind: gitlab_project_access_token, provider: gl, project: acme/src, name: Support bot,"
       " scopes: [api]%s}\n")


def trigger(created_with: str, provider: str = "gl") -> str:
    return ("  sync-trigger:\n"
            f"    source: {{kind: gitlab_pipeline_trigger, provider: {provider}, project: acme/src,"
            f" description: Sync, created_with: {created_with}}}\n")


def validate(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    (tmp_path / "inv.yaml").write_text(HEAD + text)
    code = main(["validate", "--inventory", str(tmp_path)])
    err = capsys.readouterr().err.splitlines()
    return code, [line for line in err if "created_with" in line]


def test_a_trigger_created_with_a_bot_token_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "inv.yaml").write_text(HEAD + BOT % "" + trigger("support-bot-token"))
    assert main(["validate", "--inventory", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("ok: 2 tokens")


def test_an_unknown_token_is_named_with_a_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = validate(tmp_path, BOT % "" + trigger("support-bot-tokn"), capsys)
    assert code == 1
    assert lines == [f"{tmp_path}/inv.yaml:9:97: tokens.sync-trigger.source.created_with: unknown token "
                     "'support-bot-tokn' (did you mean 'support-bot-token'?): created_with names another token of "
                     "the inventory"]


def test_a_creator_on_another_provider_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = validate(tmp_path, BOT % "" + trigger("support-bot-token", provider="gl2"), capsys)
    assert code == 1
    assert len(lines) == 1
    assert lines[0].endswith("tokens.sync-trigger.source.created_with: token support-bot-token is on provider gl, "
                             "this one on gl2: a token's value is sent only to its own provider")


def test_a_cycle_is_refused_at_each_token_of_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = ("  a:\n    source: {kind: gitlab_project_access_token, provider: gl, project: acme/src, name: A,"
            " scopes: [api], created_with: b}\n"
            "  b:\n    source: {kind: gitlab_group_access_token, provider: gl, group: acme, name: B,"
            " scopes: [api], created_with: a}\n")
    code, lines = validate(tmp_path, text, capsys)
    assert code == 1
    assert [line.split(": ", 1)[1] for line in lines] == [
        "tokens.a.source.created_with: created_with makes a cycle: a -> b -> a; one of them must be created otherwise",
        "tokens.b.source.created_with: created_with makes a cycle: b -> a -> b; one of them must be created otherwise",
    ]


@pytest.mark.parametrize(("creator", "message"), [
    ("sync-trigger", "a token cannot be created with itself"),
    ("zd-token", "token zd-token is of kind zendesk_oauth_token: only a GitLab personal, project, group or "
                 "service-account token can create another"),
    ("other-trigger", "token other-trigger is of kind gitlab_pipeline_trigger: only a GitLab personal, project, "
                      "group or service-account token can create another"),
])
def test_a_creator_that_cannot_create_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], creator: str,
                                                 message: str) -> None:
    others = ("  zd-token:\n    source: {kind: zendesk_oauth_token, provider: zd, client: sync, scopes: [read]}\n"
              "  other-trigger:\n    source: {kind: gitlab_pipeline_trigger, provider: gl, project: acme/src,"
              " description: Other}\n")
    code, lines = validate(tmp_path, others + trigger(creator), capsys)
    assert code == 1
    assert [line.split(": ", 1)[1] for line in lines] == [f"tokens.sync-trigger.source.created_with: {message}"]


def test_a_bot_token_renewed_by_overlap_cannot_create(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = validate(tmp_path, BOT % ", strategy: overlap" + trigger("support-bot-token"), capsys)
    assert code == 1
    assert len(lines) == 1
    assert ("token support-bot-token cannot create others: it rotates by overlap, which makes a new bot user each "
            "time and revokes the old one's token, so what the old bot user created stops working: use strategy: "
            "in_place (rotation keeps the bot user)") in lines[0]


def test_plan_refuses_a_bad_created_with_before_any_request(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "inv.yaml").write_text(HEAD + BOT % "" + trigger("nobody"))
    monkeypatch.setenv("GL_TOKEN", "unused")
    assert main(["plan", "--inventory", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "tokens.sync-trigger.source.created_with: unknown token 'nobody'" in err
    assert "Traceback" not in err
