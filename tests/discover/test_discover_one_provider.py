"""`discover` sends a held value to one provider only: the one of its format's kind whose place
holds it (else the only one in the scopes), never to each provider in turn. Two sandbox GitLabs:
a PAT of the second, held in one of its CI variables, must never reach the first, whose name
sorts first. Real HTTP; the first sandbox's request log shows what reached it."""

from __future__ import annotations

import secrets
from types import SimpleNamespace

from reconciler.discover import Candidate, run_discover
from reconciler.engine import open_session
from reconciler.kinds._discovery import Place
from reconciler.kinds._gitlab import GITLAB_TOKENS
from reconciler.kinds.zendesk_oauth_token import ZENDESK_OAUTH
from reconciler.secret import Secret
from reconciler_sandbox.gitlab import serve_gitlab

SELF = "/api/v4/personal_access_tokens/self"

INVENTORY = """\
providers:
  a-other: {{kind: gitlab, url: {other}, auth: {{token_env: OTHER_TOKEN}}}}
  b-home: {{kind: gitlab, url: {home}, auth: {{token_env: HOME_TOKEN}}}}
discovery:
  gitlab:
    - {{provider: a-other, projects: [o/x]}}
    - {{provider: b-home, users: [bot], projects: [g/app]}}
tokens: {{}}
"""


def seed(credential: str, project: str, held: str | None = None) -> dict:
    tokens = [{"name": "cred", "scopes": ["api"], "value": credential}]
    variables = []
    if held is not None:
        tokens.append({"name": "deploy", "scopes": ["api"], "value": held})
        variables.append({"project": project, "key": "DEPLOY_TOKEN", "value": held})
    return {"users": [{"username": "bot", "admin": True, "tokens": tokens}],
            "projects": [{"path_with_namespace": project, "members": {"bot": 40}}], "variables": variables}


def test_discover_sends_a_value_only_to_the_provider_whose_place_holds_it(tmp_path, monkeypatch):
    monkeypatch.delenv("CI_JOB_TOKEN", raising=False)
    home_cred, other_cred, held = ("glpat-" + secrets.token_hex(12) for _ in range(3))
    with serve_gitlab(seed(home_cred, "g/app", held)) as home, serve_gitlab(seed(other_cred, "o/x")) as other:
        (tmp_path / "inventory.yaml").write_text(INVENTORY.format(other=other.url, home=home.url))
        env = {"HOME_TOKEN": home_cred, "OTHER_TOKEN": other_cred}
        with open_session(tmp_path / "inventory.yaml", env=env, now="2026-11-22T12:00:00Z") as session:
            result = run_discover(session)
        refused_at_other = [e for e in other.log.snapshot() if e.path == SELF and e.status == 401]
        assert refused_at_other == []  # the held value never reached the other GitLab
        assert [(t.provider, t.live.name) for t in result.tokens] == [("b-home", "deploy")]
        assert [e.status for e in home.log.snapshot() if e.path == SELF].count(200) >= 1


def _api(kind: str) -> SimpleNamespace:
    return SimpleNamespace(provider=SimpleNamespace(kind=kind))


def _candidate(shape, *providers: str) -> Candidate:
    cand = Candidate(token=Secret("x"), shape=shape)
    cand.places = [(Place(provider=p, label="place", consumer={}, template_key="value", held=Secret("x")), "${token}")
                   for p in providers]
    return cand


def test_the_issuer_is_one_provider_of_the_formats_kind_or_none():
    from reconciler.discover import issuer

    apis = {"gl1": _api("gitlab"), "gl2": _api("gitlab"), "zd": _api("zendesk")}
    assert list(issuer(GITLAB_TOKENS, _candidate(GITLAB_TOKENS, "gl2"), apis)) == ["gl2"]  # where it was found
    assert list(issuer(GITLAB_TOKENS, _candidate(GITLAB_TOKENS, "zd"), apis)) == []  # two GitLabs could have issued it
    assert list(issuer(GITLAB_TOKENS, _candidate(GITLAB_TOKENS, "gl1", "gl2"), apis)) == []
    assert list(issuer(ZENDESK_OAUTH, _candidate(ZENDESK_OAUTH, "gl1"), apis)) == ["zd"]  # the only Zendesk
    assert "sent to no GitLab" in GITLAB_TOKENS.identify(Secret("glpat-" + "a" * 20), [], {})
    assert "sent to no Zendesk" in ZENDESK_OAUTH.identify(Secret("ab" * 32), [], {})
