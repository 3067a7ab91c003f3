"""Apply's reads after the writes: verification reads each list once per token however many of
its consumers live there, skips places observe found write-only, and still catches a value that
did not arrive (the old token is then kept)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "apply"))

from apply_world import Scenario  # noqa: E402

from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK  # noqa: E402
from reconciler.kinds.gitlab_ci_variable import CiVariableKind  # noqa: E402
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
