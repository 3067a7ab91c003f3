"""The fault matrix (tests/reliability/fault_matrix.py) as tests: every apply scenario at least once
with a fault kind turning with its index; `RECONCILE_FAULT_MATRIX=full` runs every scenario with
every fault kind (the long parametrisations, skipped by default). The summary table is printed to
the terminal when the module's tests are done.

(No conftest.py here: tests/test_readme.py and the leak guard's test import `conftest` by name,
and a second conftest module would shadow tests/conftest.py.)"""

from __future__ import annotations

import os

import pytest
from fault_matrix import KINDS, SCENARIOS, cases, run_case, summary

FULL = os.environ.get("RECONCILE_FAULT_MATRIX") == "full"
OUTCOMES: list = []


@pytest.fixture(scope="module", autouse=True)
def summary_table(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if OUTCOMES and reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # past the output capture, to the terminal
            reporter.write_line("")
            reporter.write_sep("-", "fault matrix")
            reporter.write_line(summary(OUTCOMES))


def _params():
    quick = {(s.id, k) for s, k, _ in cases(full=False)}
    out = []
    for scenario, kind, seed in cases(full=True):
        long = (scenario.id, kind) not in quick
        marks = [pytest.mark.skipif(not FULL, reason="long parametrisation: RECONCILE_FAULT_MATRIX=full")] if long else []
        out.append(pytest.param(scenario, kind, seed, id=f"{scenario.id}-{kind}", marks=marks))
    return out


@pytest.mark.parametrize(("scenario", "kind", "seed"), _params())
def test_apply_under_faults_succeeds_or_stops_clearly_then_converges(scenario, kind, seed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC", "RECONCILE_SANDBOX_GITLAB_URL",
                 "RECONCILE_SANDBOX_ZENDESK_NETLOC", "CI", "RECONCILE_ESCROW_KEY"):
        monkeypatch.delenv(name, raising=False)
    outcome = run_case(scenario, kind, seed, tmp_path)
    OUTCOMES.append(outcome)
    assert outcome.problems == []
    assert outcome.converged and outcome.orphans == 0


def test_the_default_run_covers_every_scenario_and_every_fault_kind():
    quick = cases(full=False)
    assert {s.id for s, _, _ in quick} == {s.id for s in SCENARIOS}
    assert {k for _, k, _ in quick} == set(KINDS)


def test_the_matrix_would_catch_an_apply_that_leaves_the_old_credential(tmp_path, monkeypatch):
    from fault_matrix import Scenario

    from reconciler.kinds import source_kind

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILE_ESCROW_KEY", raising=False)
    monkeypatch.setattr(type(source_kind("gitlab_pipeline_trigger")), "revoke", lambda *a, **k: None)
    outcome = run_case(Scenario("trigger", ("variable",)), "429", 1, tmp_path)
    assert any("orphaned" in p for p in outcome.problems) and outcome.orphans == 1


# the first write of each kind that creates or replaces something, its answer lost after GitLab or
# Zendesk applied it: the unclear outcome that must never turn into a duplicate or a lost value
LOST_ANSWERS = [
    ("hook recreate: create", ("external", ("hook_recreate",)), "POST", r"/hooks$"),
    ("hook recreate: delete", ("pat", ("hook_recreate",)), "DELETE", r"/hooks/\d+$"),
    ("variable update", ("trigger", ("variable",)), "PUT", r"/variables/"),
    ("trigger create", ("trigger", ("variable",)), "POST", r"/triggers$"),
    ("PAT rotate", ("pat", ("variable", "zd_webhook")), "POST", r"/rotate$"),
    ("project token rotate", ("project_token", ("hook",)), "POST", r"/rotate$"),
    ("group token create", ("group_token", ("variable",)), "POST", r"/access_tokens$"),
    ("OAuth token create", ("oauth_token", ("variable",)), "POST", r"/oauth/tokens"),
    ("client secret", ("client_secret", ("variable",)), "PUT", r"/generate_secret"),
    ("app setting", ("pat", ("app_setting",)), "PUT", r"/apps/installations/"),
    ("webhook credential", ("pat", ("zd_webhook",)), "PATCH", r"/webhooks/"),
]


@pytest.mark.parametrize(("what", "setup", "method", "path"), LOST_ANSWERS, ids=[w for w, *_ in LOST_ANSWERS])
def test_a_lost_answer_on_each_risky_write_still_converges(what, setup, method, path, tmp_path, monkeypatch):
    from fault_matrix import Scenario

    from reconciler_sandbox.core import FaultRule

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILE_ESCROW_KEY", raising=False)
    rule = FaultRule(kind="timeout", nth=(1,), method=method, path=path, after=True)
    outcome = run_case(Scenario(*setup), "timeout", 1, tmp_path, custom=[rule])
    OUTCOMES.append(outcome)
    assert outcome.injected == 1, f"the rule never matched a {method} {path}"
    assert outcome.problems == []
