"""Observe -> plan for a session: the one wiring plan, apply, check and discover share, so that what
`plan` and `check` say the next apply will do is what apply does.

The planner's inputs besides the inventory and the observation are the ledger, the time, the
targets and the escrow (whether a key is set, and which tokens hold an escrowed value of an
interrupted apply, of which instance: id and creation time). They come from the session; apply passes the ledger and escrow it re-read
under the state lock.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.engine import Session
    from reconciler.observed import Observed
    from reconciler.plan import Plan
    from reconciler.state.escrow import Escrow
    from reconciler.state.ledger import Ledger


def observe_session(session: Session, *, targets: Collection[str] | None = None, ledger: Ledger | None = None,
                    lists_out: dict[Any, Any] | None = None, values_out: dict[str, Any] | None = None) -> Observed:
    """The live state of the session's (or `targets`') tokens and consumers; `values_out`
    receives the current values observe found of the tokens others are created with."""
    from reconciler.observe import observe

    chosen = session.targets if targets is None else targets
    return observe(session.inventory, session.clients, session.ledger if ledger is None else ledger, session.now,
                   targets=tuple(chosen) or None, lists_out=lists_out, values_out=values_out)


def plan_session(session: Session, observed: Observed, *, targets: Collection[str] | None = None,
                 ledger: Ledger | None = None, escrow: Escrow | None = None) -> Plan:
    """The plan for `observed`, with the ledger, escrow and time of the session (or the `ledger`
    and `escrow` given: apply's, read under the lock)."""
    from reconciler.plan import plan

    chosen = session.targets if targets is None else targets
    if escrow is None:
        available, escrowed = session.escrow_available, dict(session.escrowed or {})
    else:
        available, escrowed = escrow.available, {p.token: p for p in escrow.pending()}
    return plan(session.inventory, observed, session.ledger if ledger is None else ledger, session.now,
                targets=tuple(chosen) or None, escrow_available=available, escrowed=escrowed)


def observe_and_plan(session: Session) -> tuple[Observed, Plan]:
    """What `reconcile plan` and `reconcile check` show: the observation and the plan apply would
    make from it."""
    observed = observe_session(session)
    return observed, plan_session(session, observed)
