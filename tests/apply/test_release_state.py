"""A ledger and an escrow written by an earlier release, by an apply stopped by a crash, are read
by this code and the apply is completed from them.

The fixtures under release_state/ were made with `release_state/make_fixtures.py` by the release
before the in-flight record was typed (see that script): the GitLab and Zendesk sandboxes'
databases as the crash left them, the inventory, and the state directory. Every value in them was
minted by the sandboxes; the escrow is sealed with the key stored beside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from apply_world import NOW, SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, Live, Scenario

from reconciler.inventory.model import StateConfig
from reconciler.state import LocalStore, open_escrow
from reconciler.state.ledger import InFlight
from reconciler_sandbox.core import Clock, SandboxServer
from reconciler_sandbox.gitlab import GitLabService
from reconciler_sandbox.zendesk import ZendeskService

FIXTURES = Path(__file__).parent / "release_state"
SCENARIOS = {
    "rotate-recreate": Scenario("project_token", ("hook_recreate", "app_setting")),
    "overlap": Scenario("group_token", ("hidden_variable", "hook")),
}
HOOK = "gitlab_webhook:gl:project:acme/app:https://hooks.example/recreate:custom_header:X-Token"


def unshelved(path: Path) -> str:
    """A fixture's text with GitLab's token prefix put back (the fixtures spell it apart so that
    no sandbox-minted value in the repository looks like a real credential to a secret scanner)."""
    return path.read_text().replace("__glpat__-", "glpat-")


def restart(name: str, workdir: Path) -> Live:
    """The sandboxes and the working directory as the crashed apply of fixture `name` left them."""
    fixture = FIXTURES / name
    shutil.copytree(fixture / "inventory", workdir / "inventory")
    shutil.copytree(fixture / "state", workdir / ".reconcile" / "sandbox")
    servers = []
    for service in (GitLabService(Clock(NOW)), ZendeskService(Clock(NOW))):
        service.load_state(json.loads(unshelved(fixture / f"{service.name}.sandbox.json")))
        servers.append(SandboxServer(service).start())
    gitlab, zendesk = servers
    saved = json.loads(unshelved(fixture / "env.sandbox.json"))
    env = {**saved["env"], SANDBOX_ENV_GITLAB: gitlab.url, SANDBOX_ENV_ZENDESK: f"127.0.0.1:{zendesk.port}"}
    return Live(SCENARIOS[name], gitlab, zendesk, workdir / "inventory", env, saved["old"], None)


def test_the_release_in_flight_records_read_as_typed_records(workdir):
    rotate = LocalStore(FIXTURES / "rotate-recreate" / "state").load_ledger().in_flight["subject"]
    assert rotate == InFlight(op="rotate", old_id="2", new_id="3", started_at="2026-11-22T12:00:00Z",
                              recreating={HOOK: rotate.recreating[HOOK]})
    assert rotate.recreating[HOOK]["url"] == "https://hooks.example/recreate"
    overlap = LocalStore(FIXTURES / "overlap" / "state").load_ledger().in_flight["subject"]
    assert overlap == InFlight(op="overlap", old_ids=("2",), new_id="3", started_at="2026-11-22T12:00:00Z")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_an_apply_stopped_by_the_release_is_completed(name, workdir):
    live = restart(name, workdir)
    try:
        store = LocalStore(workdir / ".reconcile" / "sandbox")
        escrowed = open_escrow(store, StateConfig(), live.env).get("subject")
        assert escrowed is not None and escrowed.token_id == "3" and live.works(escrowed.value.reveal())
        result = live.apply()
        assert result.ok, result.failed
        assert result.resumed == ["subject"] and result.rotated == []
        assert live.rotations() == 0, "the escrowed value was not used: a second rotation"
        after = store.load_ledger()
        assert after.in_flight == {} and open_escrow(store, StateConfig(), live.env).tokens() == []
        assert not live.plan().has_changes
        for consumer in live.scenario.consumers:
            held = live.held(consumer)
            assert held == escrowed.value.reveal(), f"{consumer} does not hold the escrowed value"
        assert not live.works(live.old) and live.live_credentials() == 1
    finally:
        live.stop()
