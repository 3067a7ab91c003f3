"""The calls only a planned write needs (`ConsumerKind.write_needs`: a mode-recreate hook's detail)
are made for the consumers the plan writes and no other, through the real engine against the
sandboxes; and observe's dataflow reads what the rounds it replaced read."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import generate, minimum  # noqa: E402
from reconciler.clients import connect  # noqa: E402
from reconciler.inventory import load_inventory  # noqa: E402
from reconciler.kinds import ListKey  # noqa: E402
from reconciler.observe import fetch_list, fetch_lists, needed_keys, observe  # noqa: E402
from reconciler.pipeline import plan_writes  # noqa: E402
from reconciler.state import LocalStore  # noqa: E402
from reconciler_sandbox.world import start_world  # noqa: E402

# a tenth-ish of the tokens due (not_before): some mode-recreate hooks are written, most are not
WORLD = generate.Params(tokens=40, consumers=300, projects=3, zendesk=1, seed=11,
                        not_before=generate.NOW.date().isoformat(), not_before_every=4)
HOOK_DETAIL = re.compile(r"/api/v4/(projects|groups)/.+/hooks/\d+")


def plan_world(world_dir: Path, concurrency: int = 4) -> tuple[Any, Any, list[Any]]:
    """(observation, plan, sandbox request log) of a plan as `reconcile plan` makes it."""
    with start_world(world_dir / "world.yaml", now=generate.NOW) as world:
        inventory = load_inventory(world_dir / "inventory")
        ledger = LocalStore(world_dir / "state").load_ledger()
        clients = connect(inventory, env=world.env({}), endpoints=world.endpoints, concurrency=concurrency)
        observed, result = plan_writes(inventory, observe(inventory, clients, ledger, generate.NOW), clients, ledger,
                                       generate.NOW, escrow_available=True)
        return observed, result, world.gitlab.log.snapshot() + world.zendesk.log.snapshot()


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    generate.generate(out, WORLD)
    return out


def recreate_actions(world_dir: Path, result: Any) -> dict[str, str]:
    inventory = load_inventory(world_dir / "inventory")
    hooks = {c.identity for t in inventory.tokens.values() for c in t.consumers
             if c.kind == "gitlab_webhook" and getattr(c, "mode", "") == "recreate"}
    return {cp.identity: cp.action for tp in result.tokens for cp in tp.consumers if cp.identity in hooks}


def add_undeclared_header(world_dir: Path, hook_names: list[str]) -> None:
    """Give the seeded hooks named `hook_names` a custom header the inventory does not declare."""
    path = world_dir / "world.yaml"
    seed = yaml.safe_load(path.read_text())
    for hook in seed["gitlab"]["hooks"]:
        if hook["name"] in hook_names:
            hook["custom_headers"] = {**(hook.get("custom_headers") or {}), "X-Undeclared": "plain"}
    path.write_text(yaml.safe_dump(seed, sort_keys=False))


def test_a_hook_detail_is_read_only_for_a_hook_the_plan_recreates(world_dir: Path, tmp_path: Path) -> None:
    _, first, _ = plan_world(world_dir)
    actions = recreate_actions(world_dir, first)
    written = sorted(i for i, a in actions.items() if a == "recreate")
    kept = sorted(i for i, a in actions.items() if a == "none")
    assert written and kept
    # the same world, one written and one kept hook each holding a header a recreate would lose
    copy = tmp_path / "world"
    copy.mkdir()
    for name in ("world.yaml",):
        (copy / name).write_text((world_dir / name).read_text())
    (copy / "inventory").symlink_to(world_dir / "inventory")
    (copy / "state").symlink_to(world_dir / "state")
    name_of = {i: i.split(":")[4] for i in actions}
    add_undeclared_header(copy, [name_of[written[0]], name_of[kept[0]]])

    observed, result, log = plan_world(copy)
    details = [e.path for e in log if HOOK_DETAIL.fullmatch(e.path)]
    assert len(details) == len(written)  # one per written hook, none for the others
    lost = [f for f in result.errors if f.code == "recreate_loses_values"]
    assert [f.consumer for f in lost] == [written[0]]
    assert "custom header 'X-Undeclared'" in lost[0].message
    assert not [f for f in result.findings if f.consumer == kept[0]]
    assert "custom_header_keys" in observed.consumers[written[0]].details
    assert "custom_header_keys" not in observed.consumers[kept[0]].details
    # the plan's digest is of the observation with the details it read
    assert result.observed_digest == observed.digest()


def test_the_minimum_counts_the_details_of_the_hooks_the_plan_writes(world_dir: Path) -> None:
    """Derived from the files alone (due tokens; ledger records of the hooks), it counts no more
    than the engine reads: a token rotated because a consumer lost its value is the engine's call."""
    _, result, log = plan_world(world_dir)
    m = minimum.compute(world_dir / "inventory", world_dir / "world.yaml", world_dir / "state", now=generate.NOW)
    details = [e for e in log if HOOK_DETAIL.fullmatch(e.path)]
    recreated = [a for a in recreate_actions(world_dir, result).values() if a == "recreate"]
    assert 0 < m.details <= len(details) == len(recreated)


def test_the_dataflow_reads_what_the_rounds_read(world_dir: Path) -> None:
    """Every call the rounds of `needs()` make, once each, whatever the concurrency; the same
    observation at concurrency 1 and 16."""
    inventory = load_inventory(world_dir / "inventory")
    tokens = sorted(inventory.tokens.values(), key=lambda t: t.name)
    with start_world(world_dir / "world.yaml", now=generate.NOW) as world:
        clients = connect(inventory, env=world.env({}), endpoints=world.endpoints, concurrency=4)
        rounds: dict[ListKey, Any] = {}
        for _ in range(4):
            for key in sorted(needed_keys(tokens, rounds) - rounds.keys()):
                rounds[key] = fetch_list(clients[key.provider], key)
        requests = world.requests()
        flowed = fetch_lists(tokens, clients)
        assert flowed == rounds and rounds
        assert world.requests() == 2 * requests
    ledger = LocalStore(world_dir / "state").load_ledger()
    digests = set()
    for concurrency in (1, 16):
        with start_world(world_dir / "world.yaml", now=generate.NOW) as world:
            clients = connect(inventory, env=world.env({}), endpoints=world.endpoints, concurrency=concurrency)
            digests.add(observe(inventory, clients, ledger, generate.NOW).digest())
    assert len(digests) == 1
