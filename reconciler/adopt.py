"""`reconcile adopt`: take over a working estate without changing anything live.

A first plan against credentials that already exist finds consumers the ledger has never seen.
Adopt records what each of them holds, so that later plans know it:

- a consumer whose value observation read back and the token's provider identified as the live
  token (a readable place, and a source kind that is `Identifying`: GitLab tokens authenticate
  as themselves, an owned trigger is compared with its project's list, a Zendesk OAuth token
  shows itself) is recorded as `verified`;
- a consumer nothing can identify (write-only, or a value its provider cannot tell) is recorded
  only when a person asserts that it holds the current value (`--assert-write-only IDENTITY`),
  as `asserted`;
- a consumer that holds another value, is missing or could not be observed is reported and never
  recorded; so is every consumer of a token without a usable live token, of a token an
  interrupted apply left unfinished, and of a token whose provider is outside the trusted set
  (reconciler.trust: such a token is not observed at all).

Nothing is written to a provider: observation only reads (and authenticates with held values at
the token's own trusted provider, as `plan` does). The only write is the ledger, under the state
lock. An assertion that cannot be honoured (an unknown consumer, one outside `--target`, or one
whose value was read and is not the live token's) refuses the whole command: exit 1 and nothing
recorded.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from reconciler.errors import ReconcileError
from reconciler.inventory.model import Token
from reconciler.inventory.schema import suggestion
from reconciler.kinds import Supplied, source_kind
from reconciler.observed import ConsumerObservation, LiveToken, Observed
from reconciler.plan_model import ConsumerPlan, TokenPlan
from reconciler.state.ledger import Established, Ledger, LedgerRecord

if TYPE_CHECKING:
    from reconciler.engine import Session

COMMAND = "reconcile adopt"
ASSERT_OPTION = "--assert-write-only"

# What adopt did with one consumer, in the order the report lists the counts.
OUTCOMES = ("verified", "asserted", "already recorded", "not matching", "unverifiable", "not adopted")


class AdoptError(ReconcileError):
    """Adopt refused its input (one line per problem, exit 1); nothing was recorded."""


@dataclass(frozen=True)
class Outcome:
    """One consumer: what adopt did with it (`OUTCOMES`) and why, in words."""

    token: str
    identity: str
    label: str
    outcome: str
    why: str


class Decision(NamedTuple):
    outcome: Outcome
    record: LedgerRecord | None = None  # what to record in the ledger
    refusal: str | None = None  # why an assertion cannot be honoured


@dataclass
class AdoptReport:
    outcomes: list[Outcome]
    ledger_where: str
    recorded: int = 0
    notes: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    def lines(self) -> list[str]:
        out: list[str] = []
        for token in dict.fromkeys(o.token for o in self.outcomes):
            out.append(f"token {token}")
            out += [f"    {o.outcome}: {o.label}: {o.why}" for o in self.outcomes if o.token == token]
        counts = ", ".join(f"{self.count(name)} {name}" for name in OUTCOMES)
        where = f"recorded in the ledger at {self.ledger_where}" if self.recorded else "nothing recorded"
        out.append(f"Adopt: {counts}; {where}. Nothing live was changed.")
        return out + self.notes


def adopt(session: Session, asserted: Sequence[str]) -> AdoptReport:
    """Observe the session's (targeted) tokens and record in the ledger what their consumers are
    shown, or asserted, to hold. Raises AdoptError for an assertion it cannot honour."""
    inventory = session.inventory
    chosen = [t for name, t in sorted(inventory.tokens.items()) if not session.targets or name in session.targets]
    check_names(asserted, chosen, inventory.tokens.values())
    with session.store.acquire():  # an apply must not write the ledger between our read and our save
        ledger = session.store.load_ledger()
        decisions = decide(session, chosen, ledger, set(asserted))
        refused = [d.refusal for d in decisions if d.refusal]
        if refused:
            raise AdoptError("reconcile adopt: nothing recorded:\n" + "\n".join(f"  {r}" for r in refused))
        records = [d.record for d in decisions if d.record is not None]
        for rec in records:
            ledger.record(rec)
        if records:
            session.store.compact_ledger(ledger)  # the whole ledger: adopt ends here
    report = AdoptReport([d.outcome for d in decisions], session.store.where, recorded=len(records))
    if report.count("unverifiable"):
        report.notes.append(f"A consumer nothing can read is recorded only on a person's word: {COMMAND} "
                            f"{ASSERT_OPTION} 'IDENTITY' (repeatable) for each one that holds the current value.")
    return report


def decide(session: Session, chosen: list[Token], ledger: Ledger, asserted: set[str]) -> list[Decision]:
    """Observe and plan as `reconcile plan` does (with the ledger read under the lock), then
    decide for every consumer of the chosen tokens."""
    from reconciler.pipeline import observe_and_plan

    observed, plan = observe_and_plan(session, ledger=ledger)
    by_name = {tp.name: tp for tp in plan.tokens}
    return [d for token in chosen
            for d in token_decisions(token, by_name[token.name], observed, ledger, asserted, session.now)]


def check_names(asserted: Sequence[str], chosen: Collection[Token], every: Collection[Token]) -> None:
    """Each asserted name is the identity of a consumer of a chosen token; else AdoptError naming it."""
    in_scope = {c.identity for t in chosen for c in t.consumers}
    anywhere = {c.identity: t.name for t in every for c in t.consumers}
    problems = []
    for name in dict.fromkeys(asserted):
        if name in in_scope:
            continue
        if name in anywhere:
            problems.append(f"{ASSERT_OPTION} {name!r}: a consumer of {anywhere[name]}, which --target leaves out")
        else:
            problems.append(f"{ASSERT_OPTION} {name!r}: no consumer has this identity (the plan's warnings and "
                            f"`reconcile plan --format json` name each one){suggestion(name, anywhere)}")
    if problems:
        raise AdoptError("reconcile adopt: nothing recorded:\n" + "\n".join(f"  {p}" for p in problems))


def _iso(moment: datetime) -> str:
    """To the second, as apply writes the ledger's times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_decisions(token: Token, tp: TokenPlan, observed: Observed, ledger: Ledger, asserted: set[str],
                    now: datetime) -> list[Decision]:
    """What adopt does with each consumer of `token`."""
    sobs = observed.sources.get(token.name)
    live = sobs.current if sobs is not None else None
    supplied = isinstance(source_kind(token.source.kind), Supplied)
    blocked = _blocked(token, tp, live, ledger, supplied)
    planned = {cp.identity: cp for cp in tp.consumers}  # none when the token could not be observed
    decisions = []
    for consumer in sorted(token.consumers, key=lambda c: c.identity):
        named, cp = consumer.identity in asserted, planned.get(consumer.identity)
        if blocked is not None or cp is None:
            why = blocked or "not in the plan"
            outcome = Outcome(token.name, consumer.identity, consumer.label, "not adopted", why)
            decisions.append(Decision(outcome, refusal=f"{consumer.label}: cannot be asserted: {why}" if named else None))
            continue
        obs = observed.consumers.get(cp.identity)
        adopted = Adoption(token, cp, obs, live, ledger.get(cp.identity), _iso(now))
        decisions.append(adopted.decide(named))
    return decisions


def _blocked(token: Token, tp: TokenPlan, live: LiveToken | None, ledger: Ledger, supplied: bool) -> str | None:
    """Why none of the token's consumers can be adopted, or None."""
    observe_failed = [f.message for f in tp.findings if f.code == "observe_failed"]
    if observe_failed:
        return observe_failed[0]
    if token.state == "absent":
        return "the token is declared `state: absent`"
    if token.name in ledger.in_flight:
        return "an interrupted apply left this token's work unfinished: `reconcile apply` finishes it first"
    if not supplied and (live is None or not live.usable):
        return "the token has no usable live instance to compare with (`reconcile plan` shows what apply does)"
    return None


@dataclass(frozen=True)
class Adoption:
    """One consumer of a token that can be adopted, and what the plan found it holds."""

    token: Token
    plan: ConsumerPlan
    observation: ConsumerObservation | None
    live: LiveToken | None  # None: a supplied (external) credential, judged by the ledger alone
    record: LedgerRecord | None
    now: str

    def decide(self, named: bool) -> Decision:
        state = self.plan.state
        if state == "verified":
            return self._verified(named)
        if state == "asserted":
            return self._keep("a person asserted it earlier; the ledger keeps that")
        if state == "unverifiable":
            return self._asserted() if named else self._outcome(
                "unverifiable", f"{self.plan.why}; if it holds the current value: {ASSERT_OPTION} '{self.plan.identity}'")
        if state == "stale":
            return self._stale(named)
        outcome = self._outcome("not adopted", self.plan.why)
        return Decision(outcome.outcome, refusal=f"{self.plan.label}: cannot be asserted: {self.plan.why}" if named else None)

    def _verified(self, named: bool) -> Decision:
        obs = self.observation
        read_back = (obs is not None and obs.readable and obs.fingerprint is not None and not obs.by_ledger
                     and self.live is not None and obs.holds_token_id == self.live.id)
        if not read_back:
            how = self.record.established if self.record is not None else "delivered"
            return self._keep(f"the ledger already records it ({how})")
        assert obs is not None and obs.fingerprint is not None and self.live is not None
        extra = f" ({ASSERT_OPTION} not needed: it was read back)" if named else ""
        rec = self._record(obs.fingerprint, verified=True, established="verified", by=COMMAND)
        return self._outcome("verified", f"holds the current token #{self.live.id} (read back, identified by its "
                                         f"provider){extra}", rec)

    def _asserted(self) -> Decision:
        obs = self.observation
        fingerprint = obs.fingerprint if obs is not None and obs.readable and obs.fingerprint else ""
        rec = self._record(fingerprint, verified=False, established="asserted",
                           by=f"{COMMAND} {ASSERT_OPTION} '{self.plan.identity}'")
        what = f"the current token #{self.live.id}" if self.live is not None else "the current value"
        return self._outcome("asserted", f"recorded on your word that it holds {what}", rec)

    def _stale(self, named: bool) -> Decision:
        obs = self.observation
        read = obs is not None and obs.readable and obs.fingerprint is not None
        if named and not read:
            # write-only: the ledger recorded an older delivery; a person says it holds the live one now
            return self._asserted()
        outcome = self._outcome("not matching", f"{self.plan.why}; not recorded (`reconcile plan` shows what apply "
                                                "does)")
        refusal = (f"{self.plan.label}: cannot be asserted: its value was read and {self.plan.why}" if named else None)
        return Decision(outcome.outcome, refusal=refusal)

    def _keep(self, why: str) -> Decision:
        return self._outcome("already recorded", why)

    def _outcome(self, outcome: str, why: str, record: LedgerRecord | None = None) -> Decision:
        return Decision(Outcome(self.token.name, self.plan.identity, self.plan.label, outcome, why), record)

    def _record(self, fingerprint: str, *, verified: bool, established: Established, by: str) -> LedgerRecord:
        live = self.live
        created = _iso(live.created_at) if live is not None and live.created_at else self.now
        return LedgerRecord(
            consumer=self.plan.identity, token=self.token.name,
            token_id=live.id if live is not None else "external",  # what apply records for a supplied value
            token_created_at=created, fingerprint=fingerprint, delivered_at=self.now, verified=verified,
            established=established, established_by=by,
        )

