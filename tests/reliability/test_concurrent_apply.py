"""Crashes and faults with several tokens in flight: apply runs tokens concurrently, so a crash
or an injected fault finds more than one token between its steps. The demo world (six due tokens
of six source kinds, `on_unverifiable: rotate`) is applied through the engine at concurrency 4,
crashed at its k-th change (the change applied, its answer lost, every later connection to
either sandbox dropped, as if the process had died there) or run with one fault kind at 10% of
requests; then a clean apply must converge: it succeeds, the plan after it has no change (no
stale consumer, no orphaned credential left to revoke), and no token whose new value was kept
(escrowed) is rotated again.

(Kept beside the fault matrix; no conftest.py here, see test_fault_matrix.py.)"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fault_matrix import HOLD, KINDS, rules, short_client_timeouts

from reconciler.apply import apply_plan
from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, open_session
from reconciler.errors import ReconcileError
from reconciler.pipeline import observe_and_plan
from reconciler_sandbox.world import DEFAULT_SEED, STATE_DIR, start_world

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-22T12:00:00Z"
CRASH_POINTS = (1, 2, 3, 5, 8, 12)  # the demo apply makes about 25 changes; these fall among its first tokens


class Demo:
    def __init__(self, directory: Path) -> None:
        shutil.copytree(ROOT / "inventory", directory / "inventory")
        policy = directory / "inventory" / "policy.yaml"
        policy.write_text(policy.read_text().replace("max_age: 180d}", "max_age: 180d, on_unverifiable: rotate}", 1))
        self.dir = directory
        self.now = NOW  # the sandboxes' clock is pinned at apply's: uses are compared with deliveries
        self.world = start_world(DEFAULT_SEED, now=datetime.fromisoformat(NOW.replace("Z", "+00:00")))
        self.env = {**os.environ, **self.world.credentials, SANDBOX_ENV_GITLAB: self.world.gitlab.url,
                    SANDBOX_ENV_ZENDESK: self.world.endpoints.zendesk_netloc or ""}
        self.env.pop("CI", None)
        self.env["RECONCILE_CONCURRENCY"] = "4"
        self.servers = (self.world.gitlab, self.world.zendesk)

    def apply(self):
        with open_session(self.dir / "inventory", sandbox=True, now=self.now, env=self.env) as session:
            return apply_plan(session)

    def plan(self):
        with open_session(self.dir / "inventory", sandbox=True, now=self.now, env=self.env) as session:
            return observe_and_plan(session)[1]

    def after_quiet(self) -> None:
        """Two days pass with no use on both sandboxes' clock and apply's; apply then revokes
        what an earlier apply kept until quiet (identifying a held value is a use of it)."""
        self.world.gitlab.service.clock.advance(timedelta(days=2))  # the clock both sandboxes share
        self.now = (datetime.fromisoformat(NOW.replace("Z", "+00:00")) + timedelta(days=2)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        later = self.apply()
        assert later.ok and not later.kept and not later.rotated, ([f.line for f in later.failed], later.kept)

    def escrowed(self) -> set[str]:
        path = self.dir / STATE_DIR / "escrow.json"
        return set(json.loads(path.read_text())["entries"]) if path.exists() else set()

    def stop(self) -> None:
        self.world.stop()


def crash_at(demo: Demo, k: int) -> None:
    state = {"count": 0}
    for server in demo.servers:
        original = server.faults.count_mutation

        def count(original=original) -> bool:
            original()
            state["count"] += 1
            if state["count"] == k:
                for s in demo.servers:
                    s.faults.crashed = True
                return True
            return False

        server.faults.count_mutation = count


def recover(demo: Demo) -> None:
    for server in demo.servers:
        del server.faults.count_mutation
        server.faults.recover()


def converges(demo: Demo, kept: set[str], first_rotated: set[str]) -> None:
    again = demo.apply()
    assert again.ok, [f.line for f in again.failed]
    assert not kept & set(again.rotated), "a token whose new value was escrowed was rotated again"
    assert not (first_rotated - kept) & set(again.rotated), "a finished token was rotated again"
    if again.kept:
        demo.after_quiet()
    after = demo.plan()
    assert not after.has_changes and not after.errors, [t.name for t in after.tokens if t.changes or t.blocked]


@pytest.mark.parametrize("k", CRASH_POINTS)
def test_a_crash_with_several_tokens_in_flight_converges(k, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo = Demo(tmp_path)
    try:
        crash_at(demo, k)
        crashed = demo.apply()
        assert not crashed.ok
        recover(demo)
        kept = demo.escrowed()
        in_flight = {f.token for f in crashed.failed} | kept
        assert len(in_flight) >= 2, "the crash should find several tokens in flight"
        converges(demo, kept, set(crashed.rotated) - in_flight)
    finally:
        demo.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_faults_with_several_tokens_in_flight_then_a_clean_apply_converges(kind, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo = Demo(tmp_path)
    try:
        for server in demo.servers:
            server.faults.configure(rules=rules(kind), seed=20261204)
            server.faults.timeout_seconds = HOLD
        with short_client_timeouts():
            try:
                first = demo.apply()
                messages = [f.line for f in first.failed]
                rotated = set(first.rotated)
            except ReconcileError as err:  # a provider unreachable during observe: nothing changed
                messages, rotated = [str(err)], set()
        assert all("\n" not in m.strip() and "Traceback" not in m for m in messages)
        for server in demo.servers:
            server.faults.clear()
        kept = demo.escrowed()
        failed = {m.split(":", 1)[0] for m in messages}
        converges(demo, kept, rotated - failed - kept)
    finally:
        demo.stop()
