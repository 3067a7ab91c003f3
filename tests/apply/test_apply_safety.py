"""Rotate calls and reuse detection, the lock, saved plans, the escrow key, and secrets.

- A 5xx or a timeout injected on the rotate answer AFTER GitLab applied it: apply looks the token
  up by name, says the value was lost, rotates the successor once with the provider credential,
  and never sends a rotate for the revoked token (request log + the sandbox's token family).
- The same fault BEFORE GitLab applied it: nothing rotated, nothing else done, no retry.
- Two applies at once: one holds the lock, the other fails naming it; one rotation in all.
- No escrow key: in-place rotation refused with a clear message, nothing changed.
"""

from __future__ import annotations

import re
import sys
import threading

from apply_world import Scenario

from reconciler.apply import ApplyRefused
from reconciler.progress import LineReporter
from reconciler_sandbox.core import FaultRule, known_secrets

ROTATE = r"/personal_access_tokens/\d+/rotate$"


def rotate_calls(live) -> list[str]:
    return [e.path for e in live.gitlab.log.snapshot() if e.method == "POST" and re.search(ROTATE, e.path)]


def test_a_lost_rotate_answer_is_looked_up_and_never_retried_with_the_old_token(live_world):
    for kind in ("502", "timeout"):
        live = live_world(Scenario("pat", ("variable", "zd_webhook")))
        live.gitlab.faults.timeout_seconds = 0.3
        live.gitlab.faults.configure(rules=[FaultRule(kind, nth=(1,), path=r"/rotate$", after=True)])
        old = live.gl.token_by_value(live.old)
        result = live.apply()
        assert result.ok, result.failed
        calls = rotate_calls(live)
        # first the original (answer lost), then the successor: never the old (revoked) id again
        assert calls[0] == f"/api/v4/personal_access_tokens/{old['id']}/rotate" and len(calls) == 2
        assert calls[1] != calls[0]
        lost = live.gl.token(int(calls[1].split("/")[-2]))
        assert lost["revoked"] and lost["previous_id"] == old["id"]
        held = live.held("variable")
        assert live.works(held) and live.held("zd_webhook") == held
        family = live.gl.token_by_value(held)
        assert family["active"] and family["previous_id"] == lost["id"]  # the family was not revoked
        assert not live.plan().has_changes


def test_lost_value_is_reported_clearly(live_world, capsys):
    live = live_world(Scenario("pat", ("variable",)))
    live.gitlab.faults.configure(rules=[FaultRule("504", nth=(1,), path=r"/rotate$", after=True)])
    result = live.apply(reporter=LineReporter(sys.stdout))
    out = capsys.readouterr().out
    assert result.ok
    assert "unclear outcome" in out and "WAS rotated" in out and "it is lost" in out
    assert "with the provider credential (not the revoked token)" in out


def test_a_rotate_refused_before_it_happened_is_not_retried(live_world):
    live = live_world(Scenario("pat", ("variable",)))
    live.gitlab.faults.configure(rules=[FaultRule("503", nth=(1,), path=r"/rotate$")])
    result = live.apply()
    assert not result.ok and "was not rotated" in result.failed[0]
    assert len(rotate_calls(live)) == 1 and live.works(live.old)
    assert live.held("variable") == live.old  # nothing else was done
    live.gitlab.faults.clear()
    assert live.apply().ok and live.works(live.held("variable")) and not live.works(live.old)
    assert len(rotate_calls(live)) == 2


def test_a_second_lost_answer_stops_without_a_third_rotate(live_world):
    live = live_world(Scenario("pat", ("variable",)))
    live.gitlab.faults.configure(rules=[FaultRule("502", nth=(1, 2), path=r"/rotate$", after=True)])
    result = live.apply()
    assert not result.ok and "lost a second time" in result.failed[0]
    assert len(rotate_calls(live)) == 2
    live.gitlab.faults.clear()
    assert live.apply().ok and live.works(live.held("variable"))
    assert not live.plan().has_changes


def test_two_applies_at_once_one_fails_on_the_lock_and_one_rotation_happens(live_world):
    live = live_world(Scenario("pat", ("variable", "zd_webhook")))
    live.gitlab.faults.configure(latency=0.05)  # keep the first apply busy while the second starts
    outcomes: list[object] = []

    def one() -> None:
        try:
            outcomes.append(live.apply())
        except ApplyRefused as err:
            outcomes.append(err)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [o for o in outcomes if isinstance(o, ApplyRefused)]
    assert len(refused) == 1 and "locked" in str(refused[0]) and "held by" in str(refused[0])
    assert len(rotate_calls(live)) == 1
    live.gitlab.faults.clear()
    assert not live.plan().has_changes


def test_a_second_apply_waits_for_the_lock_and_finds_nothing_to_do(live_world):
    live = live_world(Scenario("pat", ("variable",)))
    live.gitlab.faults.configure(latency=0.05)
    results = []
    threads = [threading.Thread(target=lambda: results.append(live.apply(lock_timeout=10))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.nothing_to_do for r in results) == [False, True]
    assert len(rotate_calls(live)) == 1


def test_in_place_rotation_without_an_escrow_key_is_refused(live_world):
    live = live_world(Scenario("pat", ("hidden_variable", "zd_webhook"), escrow_key=False))
    before = live.plan()
    assert [f.code for f in before.warnings if f.code == "no_escrow"] == ["no_escrow"] and not before.errors
    result = live.apply()
    assert not result.ok and "RECONCILE_ESCROW_KEY is not set" in result.failed[0]
    assert not live.mutations() and live.works(live.old)


def test_no_value_in_the_request_log_ledger_or_escrow(live_world, workdir):
    live = live_world(Scenario("trigger", ("variable", "hook_recreate", "app_setting", "zd_endpoint")))
    live.gitlab.faults.crash_after(3)  # leave an escrowed value and an in-flight record behind
    assert not live.apply().ok
    state = b"".join(p.read_bytes() for p in (workdir / ".reconcile").rglob("*") if p.is_file())
    log = repr(live.gitlab.log.snapshot() + live.zendesk.log.snapshot()).encode()
    assert b"ciphertext" in state and b"in_flight" in state
    for secret in known_secrets():
        if len(secret) >= 8:
            assert secret.encode() not in state and secret.encode() not in log
    live.gitlab.faults.recover()
    assert live.apply().ok and not live.plan().has_changes
