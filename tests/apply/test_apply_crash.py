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
from apply_world import PAIR_SOURCES, Scenario

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
    Scenario("oauth_client", ("variable", "app_setting", "zd_webhook")),  # a credential pair, by overlap
    Scenario("oauth_client", ("variable", "zd_webhook"), escrow_key=False),  # the new secret only in memory
    Scenario("external", ("variable", "hook_recreate")),  # a person's value
    # a trigger created with the project token's value (a bot owns it): the token rotates first,
    # then the trigger is renewed with the new value
    Scenario("project_token", ("variable",), chain="aged"),
    Scenario("project_token", ("variable",), escrow_key=False, chain="aged"),  # the variable holds the bot value first
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
    kept = scenario.escrow_key or scenario.source not in PAIR_SOURCES  # a readable consumer keeps a whole value
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
                if not kept and rotate_at is not None and k >= rotate_at:
                    # without an escrow key a new pair lives only in memory until delivered: a crash
                    # after its creation costs one more client (the interrupted one is deleted)
                    assert rotations <= 2, f"k={k}: {rotations} rotations"
                elif rotate_at is not None and k > rotate_at:
                    assert rotations == 1, f"k={k}: a second rotation although the first value was kept"
                elif k == rotate_at:
                    assert rotations <= 2, f"k={k}: {rotations} rotations"  # the answer itself was lost
                else:
                    assert rotations == 1, f"k={k}: {rotations} rotations"
            if scenario.chain:
                bot_triggers = live.bot_triggers()
                assert len(bot_triggers) == 1, f"k={k}: {len(bot_triggers)} bot triggers"
                assert bot_triggers[0]["owner_id"] == live.bot_id(), f"k={k}: the trigger is not the bot's"
                assert live.trigger_works(live.held_trigger()), f"k={k}: the trigger variable does not work"
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
        "oauth_client": r"/api/v2/oauth/clients(\.json)?$",
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


# --- the refreshable OAuth grant ---------------------------------------------------------------


@pytest.mark.parametrize("fallback", [True, False], ids=["client-credentials-fallback", "no-fallback"])
def test_every_crash_point_of_a_grant_refresh_converges_or_says_how_to_authorise_again(fallback, workdir):
    """A refresh spends the refresh token: from the moment Zendesk answered it, only the answer
    holds the grant. Every crash after the new refresh token was kept converges with that one
    refresh; a crash that loses the refresh answer itself loses the grant, and the next apply falls
    back to client_credentials where declared, or says how to authorise the client again."""
    from datetime import timedelta

    from grant_world import GrantWorld

    from reconciler.apply import apply_plan
    from reconciler.engine import open_session
    from reconciler.pipeline import observe_and_plan

    def started(directory):
        w = GrantWorld.start(directory, fallback=fallback)
        w.clock.advance(timedelta(minutes=30))  # the access token has expired: the apply refreshes
        return w

    def session(w):
        return open_session(w.zendesk_inventory, sandbox=True, now=w.now, env=w.env)

    def apply(w):
        with session(w) as s:
            return apply_plan(s)

    def track_refresh(w, order):
        """Record, in order across both servers, whether each applied mutation was the refresh."""
        for server in (w.gitlab, w.zendesk):
            original = server.service.handle

            def handle(request, original=original, server=server):
                response = original(request)
                if server.service.is_mutating(request) and 200 <= response.status < 300:
                    order.append("refresh" if request.path.startswith("/oauth/tokens") else request.method)
                return response

            server.service.handle = handle

    clean_dir = workdir / "clean"
    clean_dir.mkdir()
    clean = started(clean_dir)
    clean.zendesk_inventory = clean_dir / "inventory"
    order: list[str] = []
    track_refresh(clean, order)
    result = apply(clean)
    assert result.ok, result.failed
    total = len(order)
    assert total == len(clean.gitlab.log.mutations() + clean.zendesk.log.mutations())
    refresh_at = order.index("refresh") + 1
    clean.stop()
    assert total >= 3
    points = 0
    for k in range(1, total + 1):
        sub = workdir / f"grant-k{k}"
        sub.mkdir()
        w = started(sub)
        w.zendesk_inventory = sub / "inventory"
        try:
            os.chdir(sub)
            crash_at(w, k)
            assert not apply(w).ok, f"k={k}: the crashed apply reported success"
            recover(w)
            again = apply(w)
            if k == refresh_at and not fallback:
                assert not again.ok
                assert any("authorise OAuth client 'sync-app' again" in f.line for f in again.failed), again.failed
                continue
            assert again.ok, (k, again.failed)
            with session(w) as s:
                after = observe_and_plan(s)[1]
            assert not after.has_changes and not after.errors, k
            held = w.held()
            assert held["variable"] == held["webhook"] and w.works(held["variable"]), f"k={k}"
            assert not w.works(w.access), f"k={k}: the old access token still works"
            expected = 2 if k == refresh_at else 1  # a lost answer: the fallback grant after it
            assert w.refreshes() == expected, f"k={k}: {w.refreshes()} grants"
            points += 1
        finally:
            w.stop()
    CRASH_POINTS["zendesk_oauth_grant" + ("-fallback" if fallback else "")] = points
    assert points == total - (0 if fallback else 1)
