"""Replay zenpy's recordings of real Zendesk webhook traffic against the sandbox: 0 mismatched."""

from __future__ import annotations

from reconciler_sandbox.replay_common import summary
from reconciler_sandbox.replay_zendesk import replay_cassette


def test_every_recorded_webhook_interaction_matches(oracles):
    cassettes = sorted((oracles / "recordings" / "zendesk-webhooks").glob("*.json"))
    assert len(cassettes) == 17
    outcomes = [outcome for cassette in cassettes for outcome in replay_cassette(cassette)]
    mismatched = [str(o) for o in outcomes if o.result != "matched"]
    assert not mismatched, "\n".join(mismatched)
    assert summary(outcomes) == "56 matched, 0 mismatched, 0 skipped (not modeled)"
