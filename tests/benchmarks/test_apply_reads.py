"""Apply's reads after the writes: verification reads each list once per token however many of
its consumers live there, or each consumer alone when its list has more pages than the token has
consumers in it; skips places observe found write-only, and still catches a value that did not
arrive (the old token is then kept). Before a revoke only the list saying when the old token was
last used is read again."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "apply"))

from apply_world import Scenario  # noqa: E402

from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK  # noqa: E402
from reconciler.kinds.gitlab_ci_variable import CiVariableKind  # noqa: E402
from reconciler.kinds.zendesk_webhook import ZendeskWebhookKind  # noqa: E402
from reconciler.secret import Secret  # noqa: E402


@pytest.fixture
def live_world(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC", SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, "CI",
                 "RECONCILE_ESCROW_KEY"):
        monkeypatch.delenv(name, raising=False)
    started = []

    def start(scenario):
        live = scenario.start(tmp_path)
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


def gets(live, suffix: str) -> int:
    return sum(1 for e in live.gitlab.log.snapshot() if e.method == "GET" and e.path.split("?")[0].endswith(suffix))


def test_a_token_s_variables_in_one_project_are_read_back_with_one_list(live_world):
    live = live_world(Scenario("project_token", ("variable", "hidden_variable")))
    result = live.apply()
    assert result.ok, result.failed
    assert result.verified == 1 and result.recorded == 1  # the hidden one is write-only
    assert gets(live, "/variables/TOKEN") == 0 and gets(live, "/variables/HIDDEN") == 0
    assert gets(live, "/projects/acme/app/variables") == 2  # observe, then one read-back


def test_a_value_that_did_not_arrive_is_caught_and_the_old_token_kept(live_world, monkeypatch):
    live = live_world(Scenario("trigger", ("variable",)))  # overlap: the old one lives until revoked
    write = CiVariableKind.write

    def mangled(self, api, consumer, value, observed):  # the provider stores something else
        return write(self, api, consumer, Secret("x" * 24), observed)

    monkeypatch.setattr(CiVariableKind, "write", mangled)
    result = live.apply()
    assert not result.ok
    assert any("read back a different value" in f for f in result.failed), result.failed
    assert result.revoked == 0 and live.works(live.old), "the old token must stay while a consumer lacks the new one"


def zendesk_gets(live, path: str) -> int:
    return sum(1 for e in live.zendesk.log.snapshot()
               if e.method == "GET" and e.path.split("?")[0].removesuffix(".json") == path)


def test_consumers_in_lists_of_many_pages_are_read_back_one_get_each(live_world):
    live = live_world(Scenario("trigger", ("variable", "zd_endpoint"), crowd=150))  # two pages each
    result = live.apply()
    assert result.ok, result.failed
    assert result.verified == 2
    hook = live.webhook_id("Trigger call")
    assert zendesk_gets(live, f"/api/v2/webhooks/{hook}") == 1
    assert zendesk_gets(live, "/api/v2/webhooks") == 2  # observe's two pages, not read again
    assert gets(live, "/variables/TOKEN") == 1
    assert gets(live, "/projects/acme/app/variables") == 2  # observe's two pages
    new = live.held("variable")
    assert new != live.old and live.works(new) and live.held("zd_endpoint") == new


def test_a_value_that_did_not_arrive_is_caught_by_the_single_read(live_world, monkeypatch):
    live = live_world(Scenario("trigger", ("zd_endpoint",), crowd=150))
    write = ZendeskWebhookKind.write

    def mangled(self, api, consumer, value, observed):  # the provider stores something else
        return write(self, api, consumer, Secret("https://hooks.example/trigger?token=" + "x" * 24), observed)

    monkeypatch.setattr(ZendeskWebhookKind, "write", mangled)
    result = live.apply()
    assert not result.ok
    assert any("read back a different value" in f for f in result.failed), result.failed
    assert zendesk_gets(live, f"/api/v2/webhooks/{live.webhook_id('Trigger call')}") == 1
    assert result.revoked == 0 and live.works(live.old), "the old token must stay while a consumer lacks the new one"


def test_before_a_revoke_only_the_token_list_is_read_again(live_world):
    live = live_world(Scenario("oauth_token", ("variable",)))
    result = live.apply()
    assert result.ok, result.failed
    assert result.revoked == 1 and not live.works(live.old)
    assert zendesk_gets(live, "/api/v2/oauth/tokens") == 2  # observe, then when the old one was last used
    assert zendesk_gets(live, "/api/v2/oauth/clients") == 1  # the client's id: observe's
    provider_checks = [e for e in live.zendesk.log.snapshot()
                       if e.path.removesuffix(".json") == "/api/v2/oauth/tokens/current" and e.status == 200]
    # observe's user, the identification of the value the variable held, the new value's check:
    # the credential's user is not read again before the revoke
    assert len(provider_checks) == 3
