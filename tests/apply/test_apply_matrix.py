"""Every source kind x every consumer kind, end to end through python-gitlab and zenpy against the
sandboxes: apply rotates, each consumer holds the new value and that value works where it was
delivered (authenticated over HTTP, or a trigger call), the old value is dead (once quiet: an old
GitLab token whose use after delivery cannot be excluded goes in a later apply), no orphan is left,
and a following plan shows no changes."""

from __future__ import annotations

import pytest
from apply_world import CONSUMERS, SOURCES, Scenario

# each source with each consumer kind; consumers that cannot hold a given value are left out:
# a Zendesk OAuth client secret or token is not a GitLab credential, but any string can be
# delivered anywhere, so the matrix is complete
MATRIX = [Scenario(source, (consumer,)) for source in SOURCES for consumer in CONSUMERS]


@pytest.mark.parametrize("scenario", MATRIX, ids=lambda s: s.id)
def test_apply_delivers_a_working_value_everywhere_and_converges(scenario, live_world):
    live = live_world(scenario)
    before = live.plan()
    assert before.has_changes and not before.errors, [f.message for f in before.errors]
    result = live.apply()
    assert result.ok, result.failed
    assert result.delivered == len(scenario.consumers)
    live.after_quiet()  # an old token kept until quiet is revoked by a later apply
    for consumer in scenario.consumers:
        held = live.held(consumer)
        assert held is not None and held != live.old, f"{consumer} still holds the old value"
        assert live.works(held), f"the value delivered to {consumer} does not work"
    if scenario.source != "external":
        assert not live.works(live.old), "the old value still works"
        assert live.live_credentials() == 1
        assert live.rotations() == 1
    after = live.plan()
    assert not after.has_changes and not after.errors, [t.name for t in after.tokens if t.changes]


def test_several_consumers_of_each_kind_at_once(live_world):
    scenario = Scenario("pat", CONSUMERS)
    live = live_world(scenario)
    result = live.apply()
    assert result.ok, result.failed
    values = {c: live.held(c) for c in CONSUMERS}
    assert len(set(values.values())) == 1 and live.works(values["variable"])
    assert result.verified == 2 and result.recorded == 5  # variable and endpoint read back; the rest write-only
    assert not live.plan().has_changes
