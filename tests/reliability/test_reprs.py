"""`repr()` and `str()` of every object the engine builds hold no credential value.

Objects come from a real run against the demo world (every source and consumer kind): the
inventory model, the session, the clients, the raw lists fetched (which carry values as `Secret`),
each reading's held value, the observation, the ledger, the plan and its parts. Each object is
walked (dataclass fields, mappings, sequences, attributes) and the repr and str of everything
reached is searched for every value the sandboxes seeded or minted.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, open_session
from reconciler.kinds import consumer_kind
from reconciler.observe import fetch_lists, observe
from reconciler.plan import Plan, plan
from reconciler.secret import Secret
from reconciler.state import Ledger, LedgerRecord
from reconciler_sandbox.core import known_secrets
from reconciler_sandbox.world import DEFAULT_SEED, start_world

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
MAX_OBJECTS = 20_000


def reachable(root: Any) -> list[Any]:
    """Every object reachable from `root` through fields, items and attributes (bounded)."""
    seen: set[int] = set()
    out: list[Any] = []
    stack = [root]
    while stack and len(out) < MAX_OBJECTS:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, bool | int | float | type):
            continue
        seen.add(id(obj))
        out.append(obj)
        if isinstance(obj, str | bytes | Secret):
            continue
        if dataclasses.is_dataclass(obj):
            # a field kept out of the repr (the environment of a session) is not shown: not walked
            stack.extend(getattr(obj, f.name) for f in dataclasses.fields(obj) if f.repr)
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("reconciler"):
            stack.extend(vars(obj).values())
    return out


def leaks_in(objects: list[Any], values: set[str]) -> list[str]:
    found = []
    for obj in objects:
        if isinstance(obj, str):
            continue  # a str is itself; what matters is whether a container's repr shows it
        for text in (repr(obj), str(obj)):
            hits = [v for v in values if v in text]
            if hits:
                found.append(f"{type(obj).__module__}.{type(obj).__qualname__}")
                break
    return found


@pytest.fixture
def world(tmp_path, monkeypatch):
    (tmp_path / "inventory").symlink_to(ROOT / "inventory")
    monkeypatch.chdir(tmp_path)
    w = start_world(DEFAULT_SEED, now=NOW)
    env = {**w.credentials, SANDBOX_ENV_GITLAB: w.gitlab.url, SANDBOX_ENV_ZENDESK: w.endpoints.zendesk_netloc}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield w
    w.stop()


def test_no_repr_or_str_of_any_engine_object_shows_a_value(world):
    with open_session("inventory", sandbox=True, now="2026-11-22T12:00:00Z") as session:
        tokens = list(session.inventory.tokens.values())
        lists = fetch_lists(tokens, session.clients)
        readings = [consumer_kind(c.kind).observe(t, c, lists) for t in tokens for c in t.consumers]
        observed = observe(session.inventory, session.clients, session.ledger, session.now)
        result = plan(session.inventory, observed, session.ledger, session.now, escrow_available=True)
        reread = Plan.from_json(result.to_json())
        ledger = Ledger([LedgerRecord(consumer=c.identity, token=t.name, token_id="1",
                                      token_created_at="2026-01-01T00:00:00Z",
                                      fingerprint=Secret(next(iter(known_secrets()))).fingerprint(),
                                      delivered_at="2026-01-02T00:00:00Z", verified=True)
                         for t in tokens for c in t.consumers])
        roots = [session, session.inventory, session.clients, session.store, session.ledger, lists, readings, observed, result,
                 reread, ledger]
        objects = [o for root in roots for o in reachable(root)]
    values = {s for s in known_secrets() if len(s) >= 8}
    held = [r.held for r in readings if getattr(r, "held", None) is not None]
    # the walk reached the values themselves (so it looked where they are), and no repr showed one
    assert held and any(isinstance(o, Secret) and o.reveal() in values for o in objects)
    assert len(objects) > 500
    assert leaks_in(objects, values) == []
    for text in (result.dumps(), observed.digest(), repr(observed.to_json())):
        assert not any(v in text for v in values)  # never show the value in a failure


def test_the_walk_would_see_a_value_that_escaped_its_secret():
    @dataclasses.dataclass
    class Holder:
        inner: dict

    value = "glpat-" + "v" * 24
    leaky = Holder(inner={"token": [value]})
    assert leaks_in(reachable(leaky), {value}) == [f"{__name__}.test_the_walk_would_see_a_value_that_escaped_its_secret.<locals>.Holder",
                                                   "builtins.dict", "builtins.list"]
    safe = Holder(inner={"token": [Secret(value)]})
    assert leaks_in(reachable(safe), {value}) == []


def test_the_session_repr_shows_no_credential(world):
    with open_session("inventory", sandbox=True, now="2026-11-22T12:00:00Z") as session:
        text = repr(session) + str(session)
    assert not any(len(v) >= 8 and v in text for v in known_secrets())
