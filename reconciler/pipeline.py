"""Observe -> plan for a session: the one wiring plan, apply, check, adopt and discover share, so
that what `plan` and `check` say the next apply will do is what apply does. `observe_and_plan`
observes and plans, makes the calls only a planned write needs (`plan_writes`) and plans the
tokens they concern again: those calls are made for what the plan writes, not for every consumer.
A token whose observations are final while others are still observed is planned then, and its
write calls sent at once (`EarlyPlans`), so planning overlaps the network; the plan is the one
planning after observing would make.

The planner's inputs besides the inventory and the observation are the ledger, the time, the
targets and the escrow (whether a key is set, and which tokens hold an escrowed value of an
interrupted apply, of which instance: id and creation time). They come from the session; apply passes the ledger and escrow it re-read
under the state lock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.clients import Clients
    from reconciler.engine import Session
    from reconciler.inventory.model import Inventory, Token
    from reconciler.observe import Settled, WriteReads
    from reconciler.observed import ConsumerObservation, Observed, SourceObservation
    from reconciler.plan import Plan
    from reconciler.plan_model import TokenPlan
    from reconciler.planner import Deliveries
    from reconciler.state.escrow import Escrow, EscrowPending
    from reconciler.state.ledger import Ledger


def observe_session(session: Session, *, targets: Collection[str] | None = None, ledger: Ledger | None = None,
                    lists_out: dict[Any, Any] | None = None, values_out: dict[str, Any] | None = None,
                    settled: Settled | None = None) -> Observed:
    """The live state of the session's (or `targets`') tokens and consumers; `values_out`
    receives the current values observe found of the tokens others are created with."""
    from reconciler.observe import observe

    chosen = session.targets if targets is None else targets
    return observe(session.inventory, session.clients, session.ledger if ledger is None else ledger, session.now,
                   targets=tuple(chosen) or None, lists_out=lists_out, values_out=values_out, settled=settled)


def _plan_inputs(session: Session, targets: Collection[str] | None, escrow: Escrow | None) -> dict[str, Any]:
    """The planner's targets and escrow, of the session unless given."""
    chosen = session.targets if targets is None else targets
    if escrow is None:
        available, escrowed = session.escrow_available, dict(session.escrowed or {})
    else:
        available, escrowed = escrow.available, {p.token: p for p in escrow.pending()}
    return {"targets": tuple(chosen) or None, "escrow_available": available, "escrowed": escrowed}


def observe_and_plan(session: Session, *, targets: Collection[str] | None = None, ledger: Ledger | None = None,
                     escrow: Escrow | None = None, lists_out: dict[Any, Any] | None = None,
                     values_out: dict[str, Any] | None = None) -> tuple[Observed, Plan]:
    """What `reconcile plan` and `reconcile check` show, and what apply and adopt act on: the
    observation and the plan apply would make from it (`plan_writes`). Each token whose
    observations are final before the others' is planned at once, and the calls its writes need
    sent (`EarlyPlans`): planning uses the CPU observing leaves idle."""
    lists: dict[Any, Any] = {} if lists_out is None else lists_out

    def observing(settled: Settled) -> Observed:
        return observe_session(session, targets=targets, ledger=ledger, lists_out=lists, values_out=values_out,
                               settled=settled)

    return plan_while_observing(session.inventory, observing, session.clients,
                                session.ledger if ledger is None else ledger, session.now, lists=lists,
                                **_plan_inputs(session, targets, escrow))


def plan_while_observing(inventory: Inventory, observing: Callable[[Settled], Observed], clients: Clients,
                         ledger: Deliveries | None, now: datetime, *, lists: dict[Any, Any],
                         targets: Collection[str] | None, escrow_available: bool,
                         escrowed: Mapping[str, EscrowPending] | None) -> tuple[Observed, Plan]:
    """`plan_writes` of what `observing(settled)` observes (into `lists`), the tokens it tells
    `settled` about planned while it observes the others (`EarlyPlans`)."""
    from reconciler.observe import WriteReads

    inputs: dict[str, Any] = {"targets": targets, "escrow_available": escrow_available, "escrowed": escrowed}
    with WriteReads(inventory, clients, lists) as reads:
        early = EarlyPlans(inventory, ledger, now, reads, **inputs)
        observed = observing(early.settled)
        return plan_writes(inventory, observed, clients, ledger, now, lists=lists, reads=reads, made=early.made,
                           **inputs)


class EarlyPlans:
    """Tokens planned while the others are still observed: each from its own final observations
    (`observe(settled=...)`), its write reads sent at once (`WriteReads`); `plan` takes them as
    `made`, and what spans tokens (creator chains, approvals, findings, the digest) comes after."""

    def __init__(self, inventory: Inventory, ledger: Deliveries | None, now: datetime, reads: WriteReads, *,
                 targets: Collection[str] | None, escrow_available: bool,
                 escrowed: Mapping[str, EscrowPending] | None) -> None:
        from reconciler.planner import TokenPlanner

        self.planner = TokenPlanner(inventory, ledger, now, escrow_available=escrow_available, escrowed=escrowed)
        self.reads, self.now, self.targets = reads, now, set(targets or ())
        self.made: dict[str, TokenPlan] = {}

    def settled(self, token: Token, source: SourceObservation, consumers: list[ConsumerObservation]) -> None:
        from reconciler.observed import Observed

        if self.targets and token.name not in self.targets:
            return
        alone = Observed(observed_at=self.now, sources={token.name: source},
                         consumers={c.identity: c for c in consumers})
        self.made[token.name] = made = self.planner.plan(token.name, alone)
        self.reads.add(made, alone.consumers)


def plan_writes(inventory: Inventory, observed: Observed, clients: Clients, ledger: Deliveries | None, now: datetime,
                *, targets: Collection[str] | None = None, escrow_available: bool = False,
                escrowed: Mapping[str, EscrowPending] | None = None, lists: dict[Any, Any] | None = None,
                reads: WriteReads | None = None, made: Mapping[str, TokenPlan] | None = None) -> tuple[Observed, Plan]:
    """The plan for `observed`, once the consumers it writes are observed as a write needs
    (`ConsumerKind.write_needs`: calls made for those consumers only, e.g. a recreated hook's
    detail) and the tokens whose observations that changed are planned again. Returns the
    observation with those calls and the plan; the calls go into `lists`. `made` and `reads`:
    the tokens planned while observing and their calls (`EarlyPlans`), `reads` writing into
    `lists`."""
    from reconciler.observe import WriteReads, observe_writes
    from reconciler.planner import plan, replan

    lists = {} if lists is None else lists
    # each token's calls go out as soon as it is planned: they overlap the planning of the others
    with reads or WriteReads(inventory, clients, lists) as writes:
        seen = observed
        result = plan(inventory, seen, ledger, now, targets=targets, escrow_available=escrow_available,
                      escrowed=escrowed, planned=lambda tp: writes.add(tp, seen.consumers), made=made)
        observed, changed = writes.finish(observed)
    if changed:
        result = replan(result, inventory, observed, ledger, now, changed, escrow_available=escrow_available,
                        escrowed=escrowed)
        # a second pass finds nothing new: a write a completed observation blocks is dropped, never added
        observed, changed = observe_writes(inventory, observed, result, clients, lists)
        if changed:
            result = replan(result, inventory, observed, ledger, now, changed,
                            escrow_available=escrow_available, escrowed=escrowed)
    return observed, result
