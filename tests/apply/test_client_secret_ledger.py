"""A Zendesk OAuth client keeps its id when its secret is regenerated, so the ledger proves what a
consumer holds only when the recorded instance's creation time is also the current secret's: a
rotation that died before a write-only consumer was written must not leave it "verified" (and
the escrowed value dropped)."""

from __future__ import annotations

from datetime import timedelta

import requests
from apply_world import SUB, ZD_HOST, Scenario


def regenerate_behind_our_back(live) -> None:
    """The secret regenerated (as by a rotation that crashed before delivery), an hour later."""
    live.zendesk.service.clock.advance(timedelta(hours=1))
    client = live.zd.instance(SUB).client("portal")
    answer = requests.put(f"http://127.0.0.1:{live.zendesk.port}/api/v2/oauth/clients/{client['id']}/generate_secret.json",
                          headers={"Authorization": f"Bearer {live.env['ZD_TOKEN']}", "Host": ZD_HOST}, timeout=5)
    assert answer.status_code == 200


def test_a_regenerated_secret_is_not_proved_by_the_ledger(live_world):
    live = live_world(Scenario("client_secret", ("hidden_variable", "variable")))
    assert live.apply().ok
    before = {c.label: c.state for c in live.plan().tokens[0].consumers}
    assert set(before.values()) == {"verified"}, before

    regenerate_behind_our_back(live)
    token = live.plan().tokens[0]
    states = {c.identity: c.state for c in token.consumers}
    assert all(state == "stale" for state in states.values()), states
    assert token.action != "none"
