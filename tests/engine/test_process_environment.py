"""Pointing zenpy at the Zendesk sandbox changes nothing in the process environment: each Zendesk
session sends what zenpy addresses to the instance to the sandbox instead."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, open_session
from reconciler.pipeline import observe_and_plan
from reconciler_sandbox.world import DEFAULT_SEED, start_world

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def test_a_sandbox_run_with_zendesk_leaves_the_process_environment_alone(tmp_path, monkeypatch):
    (tmp_path / "inventory").symlink_to(ROOT / "inventory")
    monkeypatch.chdir(tmp_path)
    for name in ("ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC", SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, "CI"):
        monkeypatch.delenv(name, raising=False)
    with start_world(DEFAULT_SEED, now=NOW) as world:
        env = {**world.credentials, SANDBOX_ENV_GITLAB: world.gitlab.url,
               SANDBOX_ENV_ZENDESK: world.endpoints.zendesk_netloc}
        before = dict(os.environ)
        with open_session("inventory", sandbox=True, now="2026-11-22T12:00:00Z", env=env) as session:
            zendesk = [name for name, p in session.inventory.providers.items() if p.kind == "zendesk"]
            observed, _ = observe_and_plan(session)
            assert zendesk and all(session.clients.throttle(name).requests > 0 for name in zendesk)
            webhooks = [c for c in observed.consumers.values() if c.identity.startswith("zendesk_webhook:")]
            assert webhooks and not any(c.error for c in webhooks)  # zenpy lists webhooks: it reached the sandbox
            assert not any(s.error for s in observed.sources.values())
        assert dict(os.environ) == before
