"""What every engine command (plan, apply, check, discover) does before its own work: load the
inventory, start the sandbox world when `--sandbox` is given, read the trusted provider set from
the environment, read credentials, build the clients (only for trusted providers), open the state,
and fix the current time. `Session` is that bundle; `open_session` a context
manager that stops the sandboxes afterwards.

Errors a user can fix come out as a `ReconcileError` with one clear line: `SessionError` (an unknown
target, a bad `--now`, a sandbox that cannot start), the clients' `ProviderError` (a missing
credential variable), the state's `StateError` (an unreadable state); `InventoryError` keeps its
diagnostics.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.clients import Clients, Endpoints, connect, used_providers
from reconciler.errors import ReconcileError
from reconciler.inventory.model import Inventory
from reconciler.trust import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, trust_from_env

if TYPE_CHECKING:
    from reconciler.state import StateStore
    from reconciler.state.escrow import EscrowPending
    from reconciler.state.ledger import Ledger
    from reconciler_sandbox.world import World


class SessionError(ReconcileError):
    """A problem the user fixes (one line, exit 1)."""


@dataclass
class Session:
    inventory: Inventory
    clients: Clients
    store: StateStore
    ledger: Ledger
    env: Mapping[str, str] = field(repr=False)  # the whole environment: credentials never in a repr
    now: datetime
    escrow_available: bool
    targets: tuple[str, ...]
    world: World | None = None  # sandbox mode: the sandboxes this session started
    escrowed: dict[str, EscrowPending] | None = None  # token name -> what an interrupted apply escrowed
    endpoints: Endpoints | None = None  # sandbox mode: where the providers are reached

    def connect_more(self, tokens: Sequence[str]) -> None:
        """Clients for the providers `tokens` use that are not connected yet (apply widens its
        targets to tokens with unfinished work)."""
        self.clients.connect(used_providers(self.inventory, tokens))


def parse_now(text: str | None) -> datetime | None:
    """`--now` / RECONCILE_NOW: an ISO date (midnight UTC) or timestamp (naive = UTC)."""
    if not text:
        return None
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SessionError(f"--now / RECONCILE_NOW: {text!r} is not an ISO date or timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@contextmanager
def open_session(
    inventory_path: str | Path,
    *,
    sandbox: bool = False,
    sandbox_seed: str | Path | None = None,
    sandbox_reset: bool = False,
    now: str | None = None,
    targets: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[Session]:
    from reconciler.inventory import load_inventory
    from reconciler.state import LocalStore, escrow_available, open_escrow, open_store

    env = dict(os.environ if env is None else env)
    inventory = load_inventory(inventory_path)
    unknown = sorted(set(targets) - set(inventory.tokens))
    if unknown:
        from reconciler.inventory.schema import suggestion

        raise SessionError(f"--target: no token named {', '.join(unknown)} in {inventory_path}"
                           f"{suggestion(unknown[0], inventory.tokens) if len(unknown) == 1 else ''}")
    pinned = parse_now(now)
    world: World | None = None
    endpoints: Endpoints | None = None
    try:
        if sandbox:
            from reconciler_sandbox.world import STATE_DIR, WorldError, start_world

            if env.get(SANDBOX_ENV_GITLAB) and env.get(SANDBOX_ENV_ZENDESK):
                # a `reconcile sandbox` is serving: use it, with the credentials it printed
                endpoints = Endpoints.from_env(env)
            else:
                try:
                    world = start_world(sandbox_seed, state_dir=STATE_DIR, now=pinned, reset=sandbox_reset,
                                        escrow_env=inventory.state.escrow_key_env)
                except WorldError as err:
                    raise SessionError(str(err)) from None
                endpoints = world.endpoints
                env = world.env(env)
        # trust from the environment, never from the inventory under review (reconciler.trust);
        # without --sandbox, the environment's endpoint overrides say only where trusted providers are
        clients = connect(inventory, env=env, endpoints=endpoints, targets=targets or None,
                          trust=trust_from_env(env, sandbox=endpoints is not None))
        store = LocalStore(STATE_DIR) if sandbox else open_store(inventory.state, inventory.providers, env,
                                                                 clients=clients)
        ledger = store.load_ledger()  # kept even when empty of records: it may hold in-flight work
        has_escrow = escrow_available(inventory.state, env)
        escrowed = {p.token: p for p in open_escrow(store, inventory.state, env).pending()}
        current = pinned or (world.clock.now() if world is not None else datetime.now(UTC))
        yield Session(inventory=inventory, clients=clients, store=store, ledger=ledger, env=env,
                      now=current, escrow_available=has_escrow, targets=tuple(targets), world=world,
                      escrowed=escrowed, endpoints=endpoints)
    finally:
        if world is not None:
            world.stop()
