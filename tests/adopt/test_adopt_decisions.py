"""What adopt decides for each consumer, from a plan and an observation built by hand (no HTTP):
what it records, what it reports, and which assertions refuse the command."""

from __future__ import annotations

from engine.engine_helpers import NOW, held, inventory, live, observed, token, variable

from reconciler.adopt import token_decisions
from reconciler.kinds.gitlab_pipeline_trigger import GitLabPipelineTrigger
from reconciler.observed import ConsumerObservation, Observed, SourceObservation
from reconciler.plan import plan
from reconciler.state.ledger import InFlight, Ledger

TRIGGER = GitLabPipelineTrigger(provider="gl", project="g/p", description="sync")
READ, HIDDEN = variable("READ"), variable("HIDDEN")
TOK = token("sync", TRIGGER, (READ, HIDDEN))


def decide(obs: Observed, led: Ledger | None = None, asserted: set[str] = frozenset()):
    led = led if led is not None else Ledger()
    tp = plan(inventory(TOK), obs, led, NOW).tokens[0]
    return {d.outcome.identity: d for d in token_decisions(TOK, tp, obs, led, set(asserted), NOW)}


def healthy() -> Observed:
    return observed([(TOK, live("7"))], [held(READ, TOK, holds="7"), held(HIDDEN, TOK, readable=False)])


def test_read_back_and_identified_is_recorded_verified_write_only_only_when_asserted():
    found = decide(healthy())
    assert found[READ.identity].outcome.outcome == "verified"
    record = found[READ.identity].record
    assert (record.token_id, record.fingerprint, record.established, record.verified) == ("7", "sha256:aa",
                                                                                          "verified", True)
    assert found[HIDDEN.identity].outcome.outcome == "unverifiable" and found[HIDDEN.identity].record is None

    found = decide(healthy(), asserted={HIDDEN.identity})
    record = found[HIDDEN.identity].record
    assert (record.established, record.verified, record.fingerprint) == ("asserted", False, "")
    assert found[HIDDEN.identity].refusal is None


def test_a_value_of_another_token_is_never_recorded_and_cannot_be_asserted():
    obs = observed([(TOK, live("7"))], [held(READ, TOK, holds="6"), held(HIDDEN, TOK, readable=False)])
    found = decide(obs, asserted={READ.identity})
    assert found[READ.identity].outcome.outcome == "not matching" and found[READ.identity].record is None
    assert "holds token #6, not the current one" in found[READ.identity].refusal


def test_untrusted_provider_nothing_is_adopted_and_an_assertion_refuses():
    why = "provider gl (https://gitlab.example.com, credential $GL) is not in the trusted provider set"
    obs = Observed(observed_at=NOW,
                   sources={"sync": SourceObservation(token="sync", identity=TRIGGER.identity, error=why)},
                   consumers={c.identity: ConsumerObservation(identity=c.identity, token="sync", state="error",
                                                              readable=False, error=why) for c in (READ, HIDDEN)})
    found = decide(obs, asserted={HIDDEN.identity})
    assert {d.outcome.outcome for d in found.values()} == {"not adopted"}
    assert all(d.record is None for d in found.values())
    assert "not in the trusted provider set" in found[HIDDEN.identity].refusal


def test_a_token_with_unfinished_apply_work_is_left_to_apply():
    led = Ledger(in_flight={"sync": InFlight().overlapping(["6"], "2026-11-22T11:00:00Z")})
    found = decide(healthy(), led)
    assert {d.outcome.outcome for d in found.values()} == {"not adopted"}
    assert "reconcile apply" in found[READ.identity].outcome.why


def test_no_usable_live_token_nothing_to_compare_with():
    found = decide(observed([(TOK, live("7", revoked=True, active=False))], [held(READ, TOK, holds="7"),
                                                                            held(HIDDEN, TOK, readable=False)]))
    assert {d.outcome.outcome for d in found.values()} == {"not adopted"}
