"""Crash convergence. For each scenario, a clean apply's mutating requests
are counted (N); then for every k in 1..N a fresh world is crashed at its k-th mutating request
(applied, answer lost, and every later connection to either sandbox dropped, as if the process
had died there), recovered, and applied again (and, when it kept an old token until quiet, once
more after the quiet period). Every run must converge: the next plan shows no change, every consumer holds a value that works, no orphaned live credential remains, and no
second rotation happens once the first value was escrowed (or held by a readable consumer).

`CRASH_POINTS` counts the crash points exercised, per scenario."""

from __future__ import annotations

import os
import re

import pytest
from apply_world import Scenario

SCENARIOS = [
    Scenario("pat", ("variable", "zd_webhook")),  # in place, escrow key
    Scenario("pat", ("variable", "app_setting"), escrow_key=False),  # in place, a readable consumer as escrow
    Scenario("project_token", ("hook_recreate", "app_setting")),  # in place; webhook delete + create
    Scenario("group_token", ("hidden_variable", "hook")),  # overlap; revoke after delivery
    # overlap; identifying the variable's value used the old token, so a use after delivery cannot
    # be excluded: it is kept until quiet (recorded in the ledger) and a later apply revokes it
    Scenario("group_token", ("variable", "hook")),
    Scenario("service_account", ("variable", "zd_webhook")),  # overlap; the account keeps both tokens a while
    Scenario("service_account_in_place", ("hidden_variable", "app_setting")),  # rotated; escrow key
    Scenario("trigger", ("zd_endpoint", "app_setting", "hook_recreate")),  # overlap; recoverable from the source
    Scenario("oauth_token", ("variable", "zd_webhook")),  # overlap on Zendesk
    Scenario("client_secret", ("hidden_variable", "app_setting")),  # in place on Zendesk
    Scenario("external", ("variable", "hook_recreate")),  # a person's value
]

CRASH_POINTS: dict[str, int] = {}


def crash_at(live, k: int) -> None:
    """Crash both sandboxes at the k-th mutating request counted across them."""
    servers = [live.gitlab, live.zendesk]
    state = {"count": 0}

    for server in servers:
        original = server.faults.count_mutation

        def count(original=original) -> bool:
            original()
            state["count"] += 1
            if state["count"] == k:
                for s in servers:
                    s.faults.crashed = True
                return True
            return False

        server.faults.count_mutation = count


def recover(live) -> None:
    for server in (live.gitlab, live.zendesk):
        del server.faults.count_mutation  # back to the class method
        server.faults.recover()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id + ("-no-escrow-key" if not s.escrow_key else ""))
def test_every_crash_point_converges(scenario, live_world, workdir):
    clean = live_world(scenario)
    order: list[str] = []
    track(clean, order)
    result = clean.apply()
    assert result.ok, result.failed
    total = len(order)
    assert total == len(clean.mutations()) and total >= 2
    rotate_at = next((i + 1 for i, what in enumerate(order) if what == "rotation"), None)
    clean.stop()
    points = 0
    for k in range(1, total + 1):
        sub = workdir / f"k{k}"
        sub.mkdir()
        live = scenario.start(sub)
        try:
            os.chdir(sub)
            crash_at(live, k)
            crashed = live.apply()
            assert not crashed.ok, f"k={k}: the crashed apply reported success"
            recover(live)
            again = live.apply()
            assert again.ok, (k, again.failed)
            live.after_quiet()  # an old token kept until quiet: revoked by a later apply
            after = live.plan()
            assert not after.has_changes and not after.errors, (k, [t.name for t in after.tokens if t.changes])
            for consumer in scenario.consumers:
                held = live.held(consumer)
                assert held is not None and live.works(held), f"k={k}: {consumer} holds a value that does not work"
            if scenario.source != "external":
                assert not live.works(live.old), f"k={k}: the old value still works"
                assert live.live_credentials() == 1, f"k={k}: an orphaned live credential remains"
                rotations = live.rotations()
                if rotate_at is not None and k > rotate_at:
                    assert rotations == 1, f"k={k}: a second rotation although the first value was kept"
                elif k == rotate_at:
                    assert rotations <= 2, f"k={k}: {rotations} rotations"  # the answer itself was lost
                else:
                    assert rotations == 1, f"k={k}: {rotations} rotations"
            points += 1
        finally:
            live.stop()
    CRASH_POINTS[scenario.id + ("-no-key" if not scenario.escrow_key else "")] = points
    assert points == total


def track(live, order: list[str]) -> None:
    """Record, in order across both servers, whether each applied mutation was the rotation."""
    patterns = {
        "pat": r"/personal_access_tokens/\d+/rotate$",
        "project_token": r"/access_tokens/\d+/rotate$",
        "group_token": r"/groups/[^/]+/access_tokens$",
        "service_account": r"/service_accounts/\d+/personal_access_tokens$",
        "service_account_in_place": r"/service_accounts/\d+/personal_access_tokens/\d+/rotate$",
        "trigger": r"/triggers$",
        "oauth_token": r"/api/v2/oauth/tokens(\.json)?$",
        "client_secret": r"/generate_secret(\.json)?$",
    }
    pattern = patterns.get(live.scenario.source)
    for server in (live.gitlab, live.zendesk):
        original = server.service.handle

        def handle(request, original=original, server=server):
            response = original(request)
            if server.service.is_mutating(request) and 200 <= response.status < 300:
                hit = pattern is not None and request.method in ("POST", "PUT") and re.search(pattern, request.path)
                order.append("rotation" if hit else request.method)
            return response

        server.service.handle = handle
