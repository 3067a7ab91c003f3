"""Tokens planned while the others are still observed (`pipeline.EarlyPlans`) get the plan they
get when everything is planned after observing: tokens created with another's value, a migration
(`replaces`), a mode-recreate hook whose detail the write needs. Real engine, real sandboxes."""

from __future__ import annotations

from typing import Any

import pytest
from apply_world import Scenario
from test_api_token_migration import CONSUMERS, Migration

from reconciler import pipeline
from reconciler.engine import open_session


def without_last_use(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: without_last_use(v) for k, v in data.items() if k != "last_used_at"}
    if isinstance(data, list):
        return [without_last_use(v) for v in data]
    return data


# (world, the tokens planned in the flow): a creator, what it creates and a token replacing
# another are planned after observing
SCENARIOS = [
    (Scenario("project_token", ("variable", "hook_recreate"), chain="aged"), set()),
    (Scenario("project_token", ("variable", "hook_recreate"), chain="person"), set()),
    (Scenario("oauth_token", ("variable", "hook_recreate", "zd_webhook")), {"subject"}),
    (Scenario("project_token", ("variable", "hook_recreate")), {"subject"}),
    (Scenario("project_token", ("variable", "zd_webhook")), {"subject"}),
    (Scenario("oauth_token", ("variable", "app_setting")), {"subject"}),
    (Migration("oauth_token", CONSUMERS), {"legacy"}),
]


@pytest.mark.parametrize(("scenario", "planned_early"), SCENARIOS,
                         ids=[s.id + ("-migration" if isinstance(s, Migration) else "") for s, _ in SCENARIOS])
def test_a_token_planned_in_the_flow_is_planned_as_after_observing(workdir, monkeypatch, scenario, planned_early):
    early: list[str] = []
    settled = pipeline.EarlyPlans.settled

    def recorded(self: pipeline.EarlyPlans, token: Any, *rest: Any) -> None:
        settled(self, token, *rest)
        early.append(token.name)

    monkeypatch.setattr(pipeline.EarlyPlans, "settled", recorded)
    live = scenario.start(workdir)
    try:
        with open_session(live.inventory, sandbox=True, now=live.now, env=live.env) as session:
            seen_in_flow, in_flow = pipeline.observe_and_plan(session)
            seen = pipeline.observe_session(session)
            seen, after = pipeline.plan_writes(session.inventory, seen, session.clients, session.ledger, session.now,
                                               **pipeline._plan_inputs(session, None, None))
    finally:
        live.stop()
    assert set(early) == planned_early and len(early) == len(planned_early)
    assert in_flow.has_changes
    # observing again moves only the times of last use (identifying a value authenticates with it)
    assert without_last_use(in_flow.to_json()) == without_last_use(after.to_json())
    assert seen_in_flow.digest() == seen.digest() == in_flow.observed_digest
