"""After an interrupted apply (a rotated value waits in the escrow), what `plan` shows and what
`check` says the next apply does agree with what apply then does: one observe -> plan pipeline
for all three, with the escrowed value included."""

from __future__ import annotations

from datetime import timedelta

from apply_world import NOW_TEXT, Scenario
from test_apply_crash import crash_at, recover

from reconciler.check import build_report, run_check
from reconciler.engine import open_session
from reconciler.pipeline import observe_and_plan
from reconciler.plan import plan as make_plan

TOKEN = "subject"
WITHIN = timedelta(days=365)  # the rotated token (180 days left) is in the report


def tokens_of(plan):
    return plan.to_json()["tokens"]


def test_plan_check_and_apply_agree_after_an_interrupted_apply(live_world, workdir):
    live = live_world(Scenario("pat", ("hidden_variable", "zd_webhook")))
    crash_at(live, 2)  # the rotation is applied and escrowed; the first delivery's answer is lost
    assert not live.apply().ok
    recover(live)

    with open_session(live.inventory, sandbox=True, now=NOW_TEXT, env=live.env) as session:
        assert session.escrowed and TOKEN in session.escrowed, "the interrupted apply escrowed no value"
        observed, planned = observe_and_plan(session)
        report = run_check(session, WITHIN)
        # what check said before it shared the pipeline: the escrowed value left out
        unaware = make_plan(session.inventory, observed, session.ledger, session.now,
                            escrow_available=session.escrow_available)
        unaware_report = build_report(session.inventory, observed, unaware, None, session.now, WITHIN)

    token = next(t for t in planned.tokens if t.name == TOKEN)
    assert token.recover_from == "escrow" and token.action not in ("create", "rotate")
    item = next(i for i in report.items if i.token == TOKEN)
    assert item.rotates is False and str(item.next_apply).startswith("not yet"), item.next_apply
    # the scenario is one where leaving the escrowed value out changes the answer: a second rotation
    assert next(t for t in unaware.tokens if t.name == TOKEN).action == "rotate"
    unaware_item = next(i for i in unaware_report.items if i.token == TOKEN)
    assert unaware_item.rotates is True and str(unaware_item.next_apply).startswith("rotates it")

    rotations_before = live.rotations()
    result = live.apply()
    assert result.ok, result.failed
    assert result.plan is not None and tokens_of(result.plan) == tokens_of(planned)
    assert TOKEN not in result.rotated and live.rotations() == rotations_before
    assert not live.plan().has_changes
