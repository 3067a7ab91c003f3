"""Apply: execute a plan. Rotate, escrow, deliver, verify, revoke, and never lose a value.

`apply_plan(session, ...)` holds the state lock for the whole run, re-reads the ledger and the
escrow under it, observes, plans (a saved plan is only accepted when the inventory and the live
state it was computed from are unchanged), and then works token by token:

1. Resume first. Tokens with work left by an interrupted apply go before the others: a value in
   the escrow is delivered (the planner sees it as `recover_from: escrow`, so it is never minted
   again), a webhook whose recreate stopped between delete and create is created again from the
   copy saved before the delete, old and orphaned live tokens of an interrupted overlap are
   revoked once every consumer is verified, and a rotation whose answer never arrived is
   reported as such.
2. The plan's action. Overlap: mint beside the old one -> escrow -> deliver to every consumer ->
   verify -> revoke the old one once quiet (reconciler.quiet: a token its provider reports used
   after the delivery is kept, recorded in the ledger, and a later apply revokes it). In place: rotate -> escrow -> deliver -> verify. Progress is
   persisted between steps: the token's in-flight record in the ledger (`InFlight`: ids and
   times, never a value) before the mint/rotate call, the escrow entry right after it, a ledger
   record after each consumer write.

Before the first change, apply sets aside every due token whose new value a person supplies
(a `Supplied` kind) and has not supplied to this run: it is "waiting for a person", left as it is
and reported on a line of its own with what to do (`how_to_supply`), not as a failure, so an
unattended run on the schedule finishes everything else and exits 0.

Rotate calls (GitLab's token reuse detection): never retried automatically. After an unclear
outcome (timeout, 5xx, dropped connection) the token is looked up by name before anything else.
If it was not rotated, the token fails and nothing else happens. If it was, its new value is lost
(the answer never arrived, so it was never escrowed) and the consumers hold a revoked value. The
only way forward is another rotate, of the NEW token, authenticated with the provider's own
credential, which apply first proves is still valid (`GET /personal_access_tokens/self`): a
request authenticated by a revoked token on a rotate path is what makes GitLab revoke the whole
family, and the old token is never used for anything after it was revoked. That second rotate
happens at most once per token and apply; another unclear outcome stops the token.

Interruptions (reconciler/interrupt.py): a signal stops the run at the next safe point, between
tokens or between the consumer writes of a value already kept (escrowed, or held by the readable
consumer written first), never between a mint and its escrow; the result then lists what is
escrowed and what the next apply finishes, and the lock is released.

Without an escrow key, in-place rotation is refused unless a readable consumer can hold the new
value (it is then written first); overlap needs no escrow but uses it when a key is set, so a
crash after minting never forces a second mint either.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, cast

import requests
from gitlab import exceptions as gl_errors

from reconciler.clients import CredentialRefused, GitLabApi
from reconciler.errors import ReconcileError
from reconciler.interrupt import Interrupted, Interrupts, StopNow, signal_name
from reconciler.inventory.model import Consumer, Token
from reconciler.kinds import (
    AttributeWritable,
    Creator,
    FetchError,
    Grant,
    GrantRefused,
    LastUse,
    ListKey,
    ListVerifiable,
    Mintable,
    Minted,
    Readable,
    Recoverable,
    Recreatable,
    Refreshable,
    Renewable,
    Revocable,
    Supplied,
    UseRecorded,
    VerifiableAlone,
    Verifying,
    capable,
    consumer_kind,
    extract,
    source_kind,
)
from reconciler.observed import LiveToken, Observed, SourceObservation
from reconciler.plan import ConsumerPlan, Plan, TokenPlan
from reconciler.plan_model import expiry_words
from reconciler.quiet import KEPT, in_use, since_delivery, since_quiet_period
from reconciler.schedule import Job, Scheduler
from reconciler.secret import REDACTED, Parts, Secret
from reconciler.state import StateError, StateStore, open_escrow
from reconciler.state.ledger import InFlight, KeptUntilQuiet, Ledger, LedgerRecord

if TYPE_CHECKING:
    from reconciler.engine import Session


class ApplyRefused(ReconcileError):
    """Apply will not start (stale saved plan, lock held, ...): one line, exit 1, nothing changed."""


class StepFailed(ReconcileError):
    """One token's work stopped: `message` says why, `next_apply` (when known) what the next
    apply will do about it, or what to do before it."""

    def __init__(self, message: str, *, next_apply: str | None = None) -> None:
        super().__init__(message + (f"; {next_apply}" if next_apply else ""))
        self.message = message
        self.next_apply = next_apply


@dataclass(frozen=True)
class ApplyFailure:
    """One failure of an apply, of one token. Printed as `line` (its `str()`), e.g.
    "deploy-token: revoking #12 failed: GitLab answered 500: ...; the next apply tries again"."""

    token: str
    message: str
    next_apply: str | None = None  # what the next apply will do about it, when known

    @property
    def text(self) -> str:
        """The failure without its token, as the progress output shows it under the token."""
        return self.message + (f"; {self.next_apply}" if self.next_apply else "")

    @property
    def line(self) -> str:
        return f"{self.token}: {self.text}"

    def __str__(self) -> str:
        return self.line

    def __contains__(self, text: str) -> bool:
        """`"was not rotated" in failure`: the printed line contains the text."""
        return text in self.line


@dataclass(frozen=True)
class Waiting:
    """A due token whose new value a person supplies and has not supplied to this run: apply
    leaves it as it is and does the rest; not a failure (an unattended run cannot do better)."""

    token: str
    why: str  # e.g. "$X is not set: ..."
    how: str  # what the person does (the kind's `how_to_supply`)

    @property
    def line(self) -> str:
        return f"Waiting for a person: {self.token}: {self.why}; {self.how}."


@dataclass(frozen=True)
class Step:
    """One line of apply output. Never a value."""

    token: str
    message: str
    ok: bool = True


class Reporter(Protocol):
    def start(self, total: int) -> None: ...
    def step(self, step: Step) -> None: ...
    def token_done(self, name: str, ok: bool) -> None: ...
    def finish(self) -> None: ...


class NullReporter:
    def __init__(self) -> None:
        self.steps: list[Step] = []

    def start(self, total: int) -> None:
        pass

    def step(self, step: Step) -> None:
        self.steps.append(step)

    def token_done(self, name: str, ok: bool) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class ApplyResult:
    plan: Plan | None = None
    rotated: list[str] = field(default_factory=list)  # tokens renewed, minted anew or given a supplied value
    created: list[str] = field(default_factory=list)  # of those, the tokens the plan said to create
    recreated: int = 0  # of the consumer writes, those that deleted the place and created it again
    revoked: int = 0  # live tokens revoked (old ones, orphans, state: absent)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (token, live id) kept until quiet
    delivered: int = 0  # consumer writes
    verified: int = 0  # consumers read back / authenticated
    recorded: int = 0  # write-only consumers: recorded in the ledger, not verifiable
    resumed: list[str] = field(default_factory=list)  # tokens whose interrupted work was finished
    failed: list[ApplyFailure] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)  # due, value not supplied: left for a person
    nothing_to_do: bool = False
    # a signal ended the apply early: which, whether at a safe point, and what is left
    interrupted: str | None = None
    stopped_at_once: bool = False
    not_started: list[str] = field(default_factory=list)  # tokens of the plan not begun
    unfinished: list[str] = field(default_factory=list)  # tokens with work the next apply finishes
    escrowed: list[tuple[str, str]] = field(default_factory=list)  # (token, token id) in the escrow
    lock_note: str | None = None  # a stale lock taken over at the start

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    def interruption_lines(self) -> list[str]:
        """What an interrupted apply prints: done, escrowed, left for the next apply. No value."""
        how = "at once (second signal)" if self.stopped_at_once else "at a safe point"
        counts = (f"{len(self.rotated)} rotated, {self.delivered} delivered, {self.verified} verified, "
                  f"{self.revoked} revoked, {len(self.failed)} failed")
        lines = [f"Apply interrupted by {self.interrupted}, stopped {how}. Done: {counts}."]
        if self.escrowed:
            held = ", ".join(f"{token} (#{token_id})" for token, token_id in self.escrowed)
            lines.append(f"Escrowed (encrypted in the state until every consumer has it): {held}.")
        else:
            lines.append("Escrowed: nothing.")
        if self.unfinished:
            lines.append(f"The next apply first finishes: {', '.join(self.unfinished)}.")
        if self.not_started:
            lines.append(f"Not started (the next apply does them): {', '.join(self.not_started)}.")
        lines += self.waiting_lines()
        lines.append("The state lock was released.")
        return lines

    def token_counts(self) -> str:
        """Tokens done, counted as the plan counts them ("N to create, M to rotate")."""
        rotated = f"{len(self.rotated) - len(self.created)} rotated"
        return f"{len(self.created)} created, {rotated}" if self.created else rotated

    def waiting_lines(self) -> list[str]:
        """One line per token left waiting for a person, printed beside the summary."""
        return [w.line for w in self.waiting]

    def summary_line(self) -> str:
        recreated = f" ({self.recreated} by recreate)" if self.recreated else ""
        counts = (f"{self.token_counts()}, {self.delivered} delivered{recreated}, {self.verified} verified, "
                  f"{self.recorded} recorded write-only, {self.revoked} revoked, {len(self.failed)} failed")
        if self.kept:
            counts += f", {len(self.kept)} {KEPT}"
        if self.waiting:
            counts += f", {len(self.waiting)} waiting for a person"
        if self.resumed:
            counts += f" ({len(self.resumed)} resumed: {', '.join(self.resumed)})"
        return f"Apply complete: {counts}." if self.ok else f"Apply complete with failures: {counts}."


# --- entry point ------------------------------------------------------------------------------


def apply_plan(
    session: Session,
    *,
    saved: Plan | None = None,
    confirm: Callable[[Plan], bool] | None = None,
    reporter: Reporter | None = None,
    lock_timeout: float = 0.0,
    owner: str | None = None,
    interrupts: Interrupts | None = None,
    notice: Callable[[str], None] | None = None,
    force_revoke: Collection[str] = (),
) -> ApplyResult:
    """Execute the plan for `session` (reconciler.engine.Session) under the state lock.

    `saved`: a plan from `reconcile plan --out`; refused (ApplyRefused) when the inventory or the
    live state changed since. `confirm(plan) -> bool` is asked before any token or consumer is
    changed (False: none is). Two repairs of an interrupted apply run before it, because the
    plan to confirm depends on them: a GitLab webhook an interrupted recreate deleted is created
    again (without its secret, `_Run.restore_recreates`), and escrowed values of tokens no longer
    live are dropped from the state (`_Run.drop_stale_escrow`). Raises ApplyRefused when apply
    cannot start; failures of single tokens are in the result.

    `interrupts` (reconciler.interrupt) carries the signals received: apply stops at the next
    safe point and the result says what is left (`interrupted`); before any token began, it
    raises Interrupted. `notice` gets one-line notes (a stale lock taken over).

    Before revoking a live token of a kind that records its last use, apply checks that it is
    quiet (reconciler.quiet) and otherwise keeps it, recorded in the ledger, for a later apply;
    `force_revoke` names the tokens whose live tokens are revoked without that check."""
    unknown = sorted(set(force_revoke) - set(session.inventory.tokens))
    if unknown:
        raise ApplyRefused(f"--force-revoke {unknown[0]}: the inventory has no token of that name")
    reporter = reporter or NullReporter()
    interrupts = interrupts or Interrupts()
    lock = None
    try:
        with interrupts.critical():  # a second signal waits for the answer: a lock granted is released
            lock = session.store.acquire(owner, wait=lock_timeout, stop=lambda: interrupts.requested)
    except StopNow:
        if lock is not None:
            lock.release()
        raise
    except StateError as err:
        if interrupts.signum is not None:
            raise Interrupted(interrupts.signum) from None
        raise ApplyRefused(str(err)) from None
    with lock:
        if lock.taken_over and notice is not None:
            notice(lock.taken_over)
        try:
            run = _Run(session, reporter, interrupts)
            run.force_revoke = frozenset(force_revoke)
            try:
                return run.execute(saved, confirm)
            finally:
                session.store.compact_ledger(run.ledger)  # still under the lock
        except StateError as err:
            raise ApplyRefused(str(err)) from None


# --- one apply --------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str:
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rendered(consumer: Consumer, value: Secret) -> Secret:
    """What the consumer receives: the value through its kind's template of it."""
    return value.render(consumer_kind(consumer.kind).template(consumer))


def _verify_keys(consumer: Consumer) -> list[ListKey]:
    ckind = consumer_kind(consumer.kind)
    return ckind.verify_keys(consumer) if isinstance(ckind, ListVerifiable) else []


def read_alone(consumers: Iterable[Consumer], observed_lists: Mapping[ListKey, Any]) -> set[str]:
    """The consumers (of one token, written and readable) to read back one request each instead
    of through their lists: those of a list that, as observe read it, has more pages than the
    token has consumers in it (a Zendesk instance's webhooks are several pages: one token's
    webhook is one GET). A list whose consumers cannot all be read alone is read whole."""
    by_key: dict[ListKey, list[Consumer]] = {}
    for consumer in consumers:
        for key in _verify_keys(consumer):
            by_key.setdefault(key, []).append(consumer)
    cheaper: set[ListKey] = set()
    for key, there in by_key.items():
        kinds = [consumer_kind(c.kind) for c in there]
        listed = observed_lists.get(key)
        if not isinstance(listed, list) or not all(isinstance(k, VerifiableAlone) for k in kinds):
            continue
        page = min(cast(VerifiableAlone, k).list_page_size for k in kinds)
        if math.ceil(len(listed) / page) > len(there):
            cheaper.add(key)
    return {c.identity for key in cheaper for c in by_key[key] if set(_verify_keys(c)) <= cheaper}


def unclear(exc: BaseException) -> bool:
    """The request may have been applied: no answer, or a 5xx (a proxy's timeout after the
    backend committed)."""
    if isinstance(exc, requests.RequestException | gl_errors.GitlabConnectionError | TimeoutError | ConnectionError):
        return True
    code = getattr(exc, "response_code", None) or getattr(exc, "status", None)
    return isinstance(code, int) and code >= 500


def describe_error(exc: BaseException, values: Iterable[Secret | None] = ()) -> str:
    """One line for an exception, with any value in play blanked (an API may echo input)."""
    if isinstance(exc, gl_errors.GitlabError):
        code = getattr(exc, "response_code", None)
        text = f"GitLab answered {code}: {exc.error_message}" if code else f"{type(exc).__name__}: {exc.error_message}"
    elif isinstance(exc, requests.RequestException):
        text = f"no answer ({type(exc).__name__})"
    elif hasattr(exc, "status") and hasattr(exc, "message"):
        text = f"Zendesk answered {exc.status}: {exc.message}"
    else:
        text = str(exc) or type(exc).__name__
    for value in values:
        for secret in value.secret_texts() if value is not None else ():
            if len(secret) >= 4:
                text = text.replace(secret, REDACTED)
    return text.replace("\n", " ")[:300]


class _Run:
    def __init__(self, session: Session, reporter: Reporter, interrupts: Interrupts | None = None) -> None:
        self.session = session
        self.interrupts = interrupts or Interrupts()
        self.inventory = session.inventory
        self.clients = session.clients
        self.store: StateStore = session.store
        self.reporter = reporter
        self.now: datetime = session.now
        self.ledger: Ledger = self.store.load_ledger()  # under the lock: what the previous apply left
        self.escrow = open_escrow(self.store, self.inventory.state, session.env)
        self.result = ApplyResult()
        self.values_in_play: list[Secret] = []
        self.lists: dict[ListKey, Any] = {}  # what the last observe fetched
        # the current value of each token others are created with (`created_with`): what observe
        # read back, then what this apply minted or recovered; never from the inventory
        self.creator_values: dict[str, Secret] = {}
        self.finished: dict[str, bool] = {}  # token -> its work in this apply succeeded
        self.working: set[str] = set()  # the tokens this apply works on
        self.force_revoke: frozenset[str] = frozenset()  # tokens revoked without the quiet check
        self.started = time.monotonic()
        # tokens run concurrently (run_tokens): each token's steps are kept in its thread and
        # reported when it is done, in the order of the work
        self.local = threading.local()
        self.mutex = threading.Lock()
        self.places: dict[str, threading.Lock] = {}
        self.pool: ThreadPoolExecutor | None = None  # a token's consumer writes and read-backs

    def clock(self) -> datetime:
        """The apply's time now: its start (`now`, pinned or the clock's) plus the time it has run."""
        return self.now + timedelta(seconds=time.monotonic() - self.started)

    # -- helpers -------------------------------------------------------------------------------

    def say(self, token: str, message: str, ok: bool = True) -> None:
        steps = getattr(self.local, "steps", None)
        if steps is not None:
            steps.append(Step(token, message, ok))
        else:
            self.reporter.step(Step(token, message, ok))

    def count(self, what: str) -> None:
        """One more of `what` (an ApplyResult counter), from any token's thread."""
        with self.mutex:
            setattr(self.result, what, getattr(self.result, what) + 1)

    def place_lock(self, place: str) -> threading.Lock:
        """Writes to one place (a webhook, an app installation) go one at a time, whichever
        token they are of: a write reads the place and puts it back changed."""
        with self.mutex:
            return self.places.setdefault(place, threading.Lock())

    def in_parallel(self, calls: list[Callable[[], Any]]) -> list[Any]:
        """The results of `calls` (which raise nothing), run at once on the shared pool; the
        providers' throttles bound the requests in flight."""
        if len(calls) <= 1 or self.pool is None:
            return [call() for call in calls]
        return [future.result() for future in [self.pool.submit(call) for call in calls]]

    def workers(self) -> int:
        """Threads for tokens (and as many for their writes): twice the providers' budgets in
        all, so every provider's slots stay busy while other tokens wait for theirs; one (one
        thing at a time, in order) when every provider takes one request at a time."""
        budgets = [api.throttle.concurrency for api in self.clients.apis.values()]
        if max(budgets, default=1) <= 1:
            return 1
        return min(32, 2 * sum(budgets))

    def fail(self, token: str, message: str, next_apply: str | None = None) -> None:
        failure = ApplyFailure(token, message, next_apply)
        self.result.failed.append(failure)
        self.say(token, failure.text, ok=False)

    def save_ledger(self, *, durable: bool = True) -> None:
        self.store.save_ledger(self.ledger, durable=durable)

    def targets(self) -> tuple[str, ...]:
        """The session's targets, plus any token with unfinished work (resume comes first)."""
        wanted = set(self.session.targets)
        if not wanted:
            return ()
        pending = set(self.escrow.tokens()) | set(self.ledger.in_flight)
        extra = sorted(t for t in pending - wanted if t in self.inventory.tokens)
        for name in extra:
            self.say(name, "has unfinished work from an interrupted apply: included although not targeted")
        if extra:
            self.session.connect_more(extra)
        return tuple(sorted(wanted | set(extra)))

    def observe(self, targets: tuple[str, ...]) -> tuple[Observed, Plan]:
        """The observation and the plan made from it (it sees the escrow as found: a dead value
        blocks its token), with the reads its writes need (`observe_and_plan`)."""
        from reconciler.pipeline import observe_and_plan

        observed, plan = observe_and_plan(self.session, targets=targets, ledger=self.ledger, escrow=self.escrow,
                                          lists_out=self.lists, values_out=self.creator_values)
        self.values_in_play.extend(self.creator_values.values())  # blanked in any message that echoes one
        return observed, plan

    def observe_source(self, token: Token, *, uses_only: bool = False) -> SourceObservation:
        """The token looked up by name now (one list call), consumers aside. `uses_only`: read
        again only the lists that say when its instances were used (`UseRecorded.use_keys`);
        its others as observe read them this run."""
        from reconciler.observe import fetch_lists

        bare = replace(token, consumers=())
        kind = source_kind(token.source.kind)
        fresh = kind.use_keys(bare) if uses_only and isinstance(kind, UseRecorded) else None
        known = {} if fresh is None else {
            key: self.lists[key] for key in kind.needs(bare, self.lists)
            if key not in fresh and key in self.lists and not isinstance(self.lists[key], FetchError)}
        lists = fetch_lists([bare], self.clients, known=known)
        return kind.observe(bare, lists)

    # -- the run -------------------------------------------------------------------------------

    def execute(self, saved: Plan | None, confirm: Callable[[Plan], bool] | None) -> ApplyResult:
        self.interrupts.checkpoint()
        targets = tuple(saved.targets) if saved is not None else self.targets()
        observed, current = self.observe(targets)
        if saved is not None:
            self.check_saved(saved, observed)
        for name in [n for n in self.pending_tokens() if n not in self.inventory.tokens]:
            self.say(name, "the state holds unfinished work for a token no longer in the inventory: left as it is "
                           "(`reconcile state show`)", ok=False)
        if self.restore_recreates(observed):
            observed, current = self.observe(targets)
        self.drop_stale_escrow(observed)
        self.result.plan = current
        pending = set(self.pending_tokens())
        work = self.set_aside_waiting([t for t in current.tokens if t.changes or t.name in pending])
        if not work:
            self.result.nothing_to_do = not self.result.waiting
            return self.result
        self.interrupts.checkpoint()
        if confirm is not None:
            with self.interrupts.immediate():
                if not confirm(current):
                    raise ApplyRefused("apply cancelled: nothing was changed")
        # resume first: tokens with escrowed values or interrupted work, then the rest; a token
        # waits for the token it is created with (`waits_for`)
        work.sort(key=lambda t: (t.name not in pending and t.recover_from != "escrow", t.name))
        self.run_tokens(creators_first(work), observed, pending)
        return self.result

    def set_aside_waiting(self, work: list[TokenPlan]) -> list[TokenPlan]:
        """The work without the tokens waiting for a person (`Waiting`), worked out before the
        first change, so an unattended run finishes everything else and does not fail for them;
        and without the tokens created with a token whose value is not at hand (`Waiting` too)."""
        kept = []
        planned = {tp.name: tp for tp in work}
        for tp in work:
            waiting = self.waiting_for(tp) or self.waiting_for_creator(tp, planned)
            if waiting is None:
                kept.append(tp)
            else:
                self.result.waiting.append(waiting)
        return kept

    def waiting_for(self, tp: TokenPlan) -> Waiting | None:
        """A due token of a kind whose value a person supplies, with no value supplied."""
        token = self.inventory.tokens.get(tp.name)
        if token is None or tp.blocked or tp.action not in ("create", "rotate"):
            return None
        kind = source_kind(token.source.kind)
        if not isinstance(kind, Supplied):
            return None
        try:
            kind.supplied_value(token.source, self.session.env)
        except ValueError as err:
            return Waiting(tp.name, str(err), kind.how_to_supply(token.source))
        return None  # read again when the token's turn comes

    def waiting_for_creator(self, tp: TokenPlan, planned: dict[str, TokenPlan]) -> Waiting | None:
        """A token created with another whose current value this apply will not have: observe
        found none, and that token is not rotated, created or delivered again now."""
        creator = tp.created_with
        if creator is None or creator in self.creator_values:
            return None
        work = planned.get(creator)
        if work is not None and not work.blocked and (work.action in ("create", "rotate") or work.recover_from):
            return None
        return Waiting(tp.name, f"it is created with {creator}, whose current value is not at hand (no consumer of it "
                                "can be read back and shown to hold it, and it is not rotated now)",
                       f"rotate {creator} (set rotation.not_before to today) or deliver it to a readable consumer, then "
                       "run apply again")

    def waits_for(self, tp: TokenPlan) -> str | None:
        """The token whose work in this apply must finish before `tp`'s: the one it is created
        with, when that one is being worked on too."""
        creator = tp.created_with
        return creator if creator is not None and creator in self.working else None

    def run_tokens(self, work: list[TokenPlan], observed: Observed, pending: set[str]) -> None:
        """The tokens of `work`, several at once (reconciler.schedule): each within its providers'
        budgets, a token that may be a provider's own credential alone, a token after those
        its `prerequisites` name. A signal stops new tokens from starting; those in flight stop
        at their own next safe point."""
        self.reporter.start(len(work))
        self.working = {tp.name for tp in work}
        by_name = {tp.name: tp for tp in work}
        alone = self.run_alone(work, observed)
        jobs = [Job(tp.name, frozenset(self.prerequisites(tp)), tp.name in alone) for tp in work]
        outcomes: dict[str, _TokenOutcome] = {}

        def done(name: str, outcome: _TokenOutcome) -> None:
            outcomes[name] = outcome
            for step in outcome.steps:
                self.reporter.step(step)
            if outcome.ok is not None:
                self.reporter.token_done(name, outcome.ok)

        workers = self.workers()
        stop_now: StopNow | None = None
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile-write") as self.pool:
                never = Scheduler[_TokenOutcome](jobs, workers).run(
                    lambda name: self.token_task(by_name[name], observed, resumed=name in pending),
                    stop=lambda: self.interrupts.requested, done=done)
        except StopNow as stop:  # raised again by the scheduler once nothing is in flight
            stop_now, never = stop, [name for name in by_name if name not in outcomes]
        finally:
            self.pool = None
            self.reporter.finish()
        self.after_signal(work, outcomes, never, stop_now)

    def after_signal(self, work: list[TokenPlan], outcomes: dict[str, _TokenOutcome], never: list[str],
                     stop_now: StopNow | None) -> None:
        """When a signal stopped the run: what it left (`stopped`)."""
        signums = [o.signum for o in outcomes.values() if o.signum is not None]
        signum = stop_now.signum if stop_now is not None else signums[0] if signums else self.interrupts.signum
        if signum is None:
            return
        at_once = stop_now is not None or any(o.at_once for o in outcomes.values())
        not_begun = set(never) | {name for name, o in outcomes.items() if not o.started}
        self.stopped(signum, [tp.name for tp in work if tp.name in not_begun], at_once=at_once)

    def token_task(self, tp: TokenPlan, observed: Observed, *, resumed: bool) -> _TokenOutcome:
        """One token in a worker thread: its steps kept for `done`, a signal's stop caught."""
        outcome = _TokenOutcome()
        self.local.steps = outcome.steps
        try:
            self.interrupts.checkpoint()  # a safe point: the token has not begun
            outcome.started = True
            outcome.ok = self.finished[tp.name] = self.run_token(tp, observed, resumed=resumed)
        except Interrupted as stop:
            outcome.signum = stop.signum
        except StopNow as stop:  # a second signal, at the end of a critical section of this token
            outcome.signum, outcome.at_once = stop.signum, True
        finally:
            self.local.steps = None
        return outcome

    def prerequisites(self, tp: TokenPlan) -> tuple[str, ...]:
        """The tokens that must be done before `tp` starts: the one it is created with, when this
        apply works on that one too (`waits_for`)."""
        creator = self.waits_for(tp)
        return (creator,) if creator is not None else ()

    def run_alone(self, work: list[TokenPlan], observed: Observed) -> set[str]:
        """The tokens that are (or may be) a provider's own credential: renewing one changes what
        every request to that provider authenticates with, and a GitLab rotate sent with a
        revoked token revokes its whole family, so such a token runs with nothing else in
        flight. The providers' credential ids are asked once (only where a token of a kind a
        credential can be has work, and only when there is more than one token)."""
        maybe: dict[str, list[str]] = {}  # provider -> tokens of a kind its credential can be
        for tp in work:
            token = self.inventory.tokens.get(tp.name)
            if token is not None and token.source.provider and source_kind(token.source.kind).can_be_credential:
                maybe.setdefault(token.source.provider, []).append(tp.name)
        if len(work) < 2 or self.workers() == 1 or not maybe:
            return set()
        ids = self.own_credential_ids(sorted(maybe))
        if ids is None:  # not known: every candidate runs alone
            return {name for names in maybe.values() for name in names}

        def live_ids(name: str) -> set[str]:
            sobs = observed.sources.get(name)
            return {t.id for t in (sobs.current, *sobs.others) if t is not None} if sobs else set()

        return {name for provider, names in maybe.items() for name in names
                if provider in ids and ids[provider] in live_ids(name)}

    def own_credential_ids(self, providers: list[str]) -> dict[str, str] | None:
        """provider -> its own credential's live id, asked only where observation did not;
        None when it cannot be told."""
        from reconciler.observe import credential_ids

        try:
            known = {p: self.clients[p].known_credential_id for p in providers}  # observe may have asked
            ids = credential_ids([p for p, own in known.items() if own is None], self.clients)
        except Exception:  # noqa: BLE001 - the caller runs every candidate alone
            return None
        return {**ids, **{p: own for p, own in known.items() if own is not None}}

    def stopped(self, signum: int, not_started: list[str], *, at_once: bool) -> None:
        """Record what an interrupted apply leaves: the next apply finishes it."""
        self.result.interrupted = signal_name(signum)
        self.result.stopped_at_once = at_once
        self.result.not_started = not_started
        self.result.escrowed = sorted((p.token, p.token_id) for p in self.escrow.pending())
        self.result.unfinished = self.pending_tokens()

    def api_of(self, token: Token) -> Any:
        """The handle `token`'s source is worked through: its provider's, or, for a token created
        with another (`created_with`), one that authenticates with that token's current value
        (sent only to that token's provider, the same as this one's: validation checks it)."""
        if not token.source.provider:
            return None
        api = self.clients[token.source.provider]
        creator = token.source.created_with
        if creator is None:
            return api
        value = self.creator_values.get(creator)
        if value is None:
            raise StepFailed(f"it is created with {creator}, whose current value is not at hand",
                             next_apply=f"the next apply does it once {creator}'s value is")
        return capable(source_kind(self.inventory.tokens[creator].source.kind), Creator).as_creator(api, value, creator)

    def pending_tokens(self) -> list[str]:
        return sorted(set(self.escrow.tokens()) | set(self.ledger.in_flight))

    def check_saved(self, saved: Plan, observed: Observed) -> None:
        if saved.inventory_digest != self.inventory.digest:
            raise ApplyRefused("the saved plan is stale: the inventory changed since it was made; run "
                               "`reconcile plan` again")
        if saved.observed_digest != observed.digest():
            raise ApplyRefused("the saved plan is stale: the live state changed since it was made (tokens, "
                               "consumers or the ledger); run `reconcile plan` again")

    def restore_recreates(self, observed: Observed) -> bool:
        """A GitLab webhook recreate that stopped after the delete: create the hook again from the
        copy saved before the delete, always without the secret (`recreate_from(..., None)`: the
        escrow is not read here); the plan made after it then delivers the value to the hook as to
        any stale consumer. Runs before the confirmation (see `apply_plan`)."""
        restored = False
        for name, flight in sorted(self.ledger.in_flight.items()):
            token = self.inventory.tokens.get(name)
            if token is None or not flight.recreating:
                continue
            for identity, saved in sorted(flight.recreating.items()):
                consumer = next((c for c in token.consumers if c.identity == identity), None)
                cobs = observed.consumers.get(identity)
                if consumer is None or cobs is None or cobs.error:
                    continue
                if not cobs.exists:
                    api = self.clients[consumer.provider]
                    try:
                        hook_id = capable(consumer_kind(consumer.kind), Recreatable).recreate_from(api, consumer, saved,
                                                                                                   None)
                    except Exception as exc:  # noqa: BLE001 - reported; the next apply tries again
                        self.fail(name, f"{consumer.label}: could not restore the webhook an interrupted recreate "
                                        f"deleted: {describe_error(exc)}")
                        continue
                    self.say(name, f"{consumer.label}: restored the webhook an interrupted recreate deleted "
                                   f"(now #{hook_id}); it receives the value below")
                    restored = True
                self.ledger.in_flight[name] = self.ledger.in_flight[name].recreated(identity)
                self.save_ledger()
        return restored

    def drop_stale_escrow(self, observed: Observed) -> None:
        """An escrowed value that is not the value of a live instance can never be delivered
        usefully: dropped from the state, never written. Either its token is no longer live, or
        a live token has its id but another creation time (an OAuth client's secret regenerated
        by hand, a state restored from an older version: the plan blocks that token in this run,
        `planner.escrow_not_live`). Runs before the confirmation (see `apply_plan`)."""
        for pending in self.escrow.pending():
            sobs = observed.sources.get(pending.token)
            if sobs is None or sobs.error:
                continue
            live = [t for t in (sobs.current, *sobs.others) if t is not None and t.usable]
            if any(pending.is_of(t) for t in live):
                continue
            self.escrow.drop(pending.token)
            same_id = next((t for t in live if t.id == pending.token_id), None)
            if same_id is None:
                self.say(pending.token, f"dropped the escrowed value of #{pending.token_id}: that token is no longer "
                                        "live")
                continue
            changed = _iso(same_id.created_at) if same_id.created_at else "an unknown time"
            self.say(pending.token, f"dropped the escrowed value of #{pending.token_id} (minted {pending.minted_at}) "
                                    f"without writing it anywhere: #{pending.token_id} changed at {changed}, so that "
                                    "value is no longer its value; this token is left as it is in this apply, and "
                                    "the next plan shows what its consumers need", ok=False)

    # -- one token -----------------------------------------------------------------------------

    def run_token(self, tp: TokenPlan, observed: Observed, *, resumed: bool) -> bool:
        if tp.blocked:
            for f in tp.findings:
                if f.severity == "error":
                    self.fail(tp.name, f"not applied: {f.message}")
            return False
        token = self.inventory.tokens[tp.name]
        creator = self.waits_for(tp)
        if creator is not None and not self.finished.get(creator):
            self.fail(tp.name, f"not applied: it is created with {creator}, whose work in this apply did not finish",
                      next_apply=f"the next apply does it after {creator}")
            return False
        try:
            TokenApply(self, token, tp, observed, resumed=resumed).run()
        except Interrupted:
            raise  # a safe point inside the token: what it leaves is in the ledger and the escrow
        except StepFailed as err:
            self.fail(tp.name, err.message, err.next_apply)
        except Exception as exc:  # noqa: BLE001 - one token's failure must not stop the others
            self.fail(tp.name, describe_error(exc, self.values_in_play))
        ok = not any(f.token == tp.name for f in self.result.failed)  # other tokens fail meanwhile
        if ok and resumed:
            self.result.resumed.append(tp.name)
        return ok


def creators_first(work: list[TokenPlan]) -> list[TokenPlan]:
    """`work` in its order, except that a token created with another that is in `work` too comes
    after it (validation rules out cycles)."""
    by_name = {tp.name: tp for tp in work}
    ordered: list[TokenPlan] = []

    def place(tp: TokenPlan, chain: tuple[str, ...] = ()) -> None:
        if tp in ordered:
            return
        creator = by_name.get(tp.created_with or "")
        if creator is not None and creator.name not in chain:
            place(creator, (*chain, tp.name))
        ordered.append(tp)

    for tp in work:
        place(tp)
    return ordered


@dataclass
class _TokenOutcome:
    """How one token's task ended: its steps, ok (None: stopped by a signal), and whether it began."""

    steps: list[Step] = field(default_factory=list)
    ok: bool | None = None
    started: bool = False
    signum: int | None = None
    at_once: bool = False


@dataclass(frozen=True)
class _Delivery:
    """What one consumer write did (run on the pool; the token's thread reports it)."""

    failure: str | None = None  # a failure's text
    write_failed: bool = False  # the failure is of the write itself
    updated: bool = False  # only attributes were written
    out: Secret | None = None  # the rendered value written
    new_id: str | None = None  # the place's new id after a recreate
    skipped: bool = False  # a signal came before it began


def _written_words(cp: ConsumerPlan, new_id: str | None) -> str:
    """How a consumer write went, named as the plan named its action."""
    value = f"the {'new' if cp.value == 'new' else 'current'} value"
    if cp.action == "recreate":
        was = f"#{cp.live_id}" if cp.live_id else "the old one"
        return f"recreated with {value}: deleted {was}, created {f'#{new_id}' if new_id else 'a copy'} (its id changed)"
    return f"{'created' if cp.action == 'create' else 'wrote'} {value}"


class TokenApply:
    """The work of one token: obtain the value, deliver, verify, revoke, clean up."""

    def __init__(self, run: _Run, token: Token, tp: TokenPlan, observed: Observed, *, resumed: bool) -> None:
        self.run_ = run
        self.token = token
        self.tp = tp
        self.src = token.source
        self.kind = source_kind(self.src.kind)
        self.api = run.api_of(token)
        self.observed = observed
        self.sobs = observed.sources.get(token.name) or SourceObservation(token=token.name, identity=self.src.identity)
        self.live = self.sobs.current
        self.resumed = resumed
        self.renewed_once = False
        self.value_kept = True  # False while a new value is only in memory (not yet escrowed)
        # the old tokens of an overlap an interrupted apply began (its value is delivered now)
        self.interrupted_old_ids = set(self.flight().old_ids)

    # -- plumbing ------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        self.run_.say(self.token.name, message)

    @property
    def ledger(self) -> Ledger:
        return self.run_.ledger

    def flight(self) -> InFlight:
        """The token's in-flight record (an empty one when none is kept)."""
        return self.ledger.in_flight.get(self.token.name) or InFlight()

    def persist(self, flight: InFlight) -> None:
        """Keep `flight` as the token's in-flight record, saved before the next step."""
        with self.ledger.mutex:
            self.ledger.in_flight[self.token.name] = flight
            self.save()

    def save(self, *, durable: bool = True) -> None:
        self.run_.save_ledger(durable=durable)

    def expires_at(self) -> date | None:
        lifetime = self.token.rotation.lifetime
        return (self.run_.now + lifetime).date() if lifetime else None

    def _live_ids(self) -> set[str]:
        return {t.id for t in (self.live, *self.sobs.others) if t is not None and t.usable}

    # -- the steps -----------------------------------------------------------------------------

    def run(self) -> None:
        tp = self.tp
        self.report_interrupted()
        if tp.action == "revoke":
            self.revoke([t for t in (self.live, *self.sobs.others) if t is not None and t.usable], keep=None)
            self.finish()
            return
        value, value_live, old = self.obtain()
        written = self.deliver(value, value_live)
        self.verify(value, value_live, written)
        delivered_at = self.run_.clock()  # the new value has reached its last consumer
        old_ids = set(self.flight().old_ids)
        to_revoke = [t for t in (*old, *self.sobs.others) if t is not None and t.usable]
        to_revoke += [t for t in (self.live, *self.sobs.others) if t is not None and t.usable and t.id in old_ids]
        if self.failed():
            # the old value keeps working where the new one did not arrive; escrow and in-flight
            # record stay, so the next apply finishes delivery before revoking
            if to_revoke:
                self.say("not revoking the old token: not every consumer has the new value; the next apply "
                         "finishes delivery first")
            return
        self.save()  # the ledger is durable before any revoke
        self.revoke(to_revoke, keep=value_live.id if value_live else None, delivered=(old, delivered_at))
        self.retire_replaced(delivered_at)
        self.finish()

    def failed(self) -> bool:
        return any(f.token == self.token.name for f in self.run_.result.failed)

    def creates_others(self) -> bool:
        """Another token of the inventory is created with this one (`created_with`)."""
        return any(t.source.created_with == self.token.name for t in self.run_.inventory.tokens.values())

    def report_interrupted(self) -> None:
        flight = self.flight()
        if flight.op == "rotate" and self.live is not None:
            old_id = str(flight.old_id)
            escrowed = {p.token: p.token_id for p in self.run_.escrow.pending()}.get(self.token.name)
            if self.live.id != old_id and escrowed != self.live.id and self.tp.recover_from is None:
                self.say(f"a previous apply rotated #{old_id} (now #{self.live.id}) but the new value was lost before "
                         "it could be escrowed or delivered: consumers hold a revoked value; rotating again")
        elif (flight.op == "overlap" and flight.new_id and self.tp.recover_from is None
              and self.tp.action in ("create", "rotate")):
            self.say(f"a previous apply minted #{flight.new_id} and stopped before delivering it everywhere; its "
                     "value is not recoverable: minting anew and revoking the interrupted one")

    def obtain(self) -> tuple[Secret | None, LiveToken | None, list[LiveToken]]:
        """(value to deliver, the live token it is, old tokens to revoke after delivery). The
        tokens created with this one (`created_with`) are created with that value from now on."""
        value, value_live, old = self._obtain()
        if value is not None and self.creates_others():
            self.run_.creator_values[self.token.name] = value
        return value, value_live, old

    def _obtain(self) -> tuple[Secret | None, LiveToken | None, list[LiveToken]]:
        tp = self.tp
        if tp.action in ("create", "rotate"):
            if tp.strategy == "external":
                return self.external_value(), None, []
            if tp.strategy == "overlap":
                minted = self.mint()
                old = [t for t in (self.live,) if t is not None and t.usable and t.id != minted.live.id]
                return minted.value, minted.live, old
            minted = self.rotate_in_place()
            return minted.value, minted.live, []
        needs_value = any(c.action != "none" and c.value is not None for c in tp.consumers)
        if not needs_value:
            return None, self.live, []
        return self.recover(), self.live, []

    def external_value(self) -> Secret:
        try:
            value = capable(self.kind, Supplied).supplied_value(self.src, self.run_.session.env)
        except ValueError as err:
            raise StepFailed(str(err)) from None
        self.run_.values_in_play.append(value)
        self.run_.result.rotated.append(self.token.name)  # the plan counts it "to rotate"
        self.say("took the new value a person supplied")
        return value

    def escrow_put(self, minted: Minted) -> bool:
        """Escrow the new value; False when it is only in memory (no key, or the save failed)."""
        escrow = self.run_.escrow
        if not escrow.available:
            return False
        try:
            escrow.put(self.token.name, minted.live.id, minted.value, _iso(minted.live.created_at or self.run_.now))
        except Exception as exc:  # noqa: BLE001 - the value is in memory: deliver it anyway
            self.run_.fail(self.token.name, f"could not escrow the new value ({describe_error(exc)}); delivering it "
                                            "anyway")
            return False
        self.say(f"escrowed the value of #{minted.live.id} until every consumer has it")
        return True

    def mint(self) -> Minted:
        with self.run_.interrupts.critical():  # no signal between the mint and its escrow
            return self._mint()

    def _mint(self) -> Minted:
        assert self.api is not None
        self.persist(self.flight().overlapping(self._live_ids(), started_at=_iso(self.run_.now)))
        try:
            minted = capable(self.kind, Mintable).mint(self.api, self.src, expires_at=self.expires_at())
        except Exception as exc:
            # whatever was created is found by name next time and revoked after delivery
            raise StepFailed(f"creating the new {self.kind.noun} failed: {describe_error(exc)}",
                             next_apply="the next apply revokes anything it left") from None
        self.run_.values_in_play.append(minted.value)
        self.run_.result.rotated.append(self.token.name)
        if self.tp.action == "create":
            self.run_.result.created.append(self.token.name)
        shown = minted.value.shown if isinstance(minted.value, Parts) else {}  # a pair's plain parts may be named
        self.say(f"created {self.kind.noun} #{minted.live.id} beside the old one"
                 + "".join(f" ({name} {text})" for name, text in shown.items())
                 + (f" ({expiry_words(minted.live.expires_at, self.run_.now)})" if minted.live.expires_at else ""))
        self.value_kept = self.escrow_put(minted)
        self.persist(self.flight().minted(minted.live.id))
        return minted

    # -- a refreshable grant ---------------------------------------------------------------------

    def refresh_grant(self, kind: Refreshable) -> Minted:
        """Refresh the grant: the refresh spends the refresh token, and the one it answers is
        the grant from then on, so it is kept (sealed in the state, one save) before anything
        else happens; only then is the new access token read, escrowed and delivered. A crash
        before that save loses the grant (the next apply says how to authorise again); after it,
        the next apply refreshes again with the kept token."""
        escrow = self.run_.escrow
        if not escrow.available:
            raise StepFailed(f"a refreshable grant needs {escrow.key_env}: its refresh token is kept sealed in the "
                             "state", next_apply="set it (`reconcile state keygen` makes one) and run apply again")
        try:  # before the refresh spends the refresh token whose successor must be sealed
            escrow.check_key(f"keep the refresh token of {self.token.name}")
        except StateError as err:
            raise StepFailed(f"{err}: the grant was not refreshed", next_apply="the next apply refreshes it once "
                             f"{escrow.key_env} is the key the state was sealed with") from None
        self.persist(self.flight().rotating(self.live.id if self.live else "none", started_at=_iso(self.run_.now)))
        grant, seed = self.grant(kind)
        self.run_.values_in_play += [v for v in (grant.access_token, grant.refresh_token) if v is not None]
        escrow.keep_grant(self.token.name, grant.refresh_token, _iso(self.run_.now), seed=seed)
        self.say("kept the new refresh token (sealed in the state)" if grant.refresh_token is not None
                 else "the grant answered no refresh token: none is kept")
        try:
            live = kind.live_of(self.api, self.src, grant.access_token)
        except Exception as exc:  # noqa: BLE001 - the refresh token is kept: the next apply refreshes again
            raise StepFailed(f"the new access token could not be read back ({describe_error(exc, [grant.access_token])})",
                             next_apply="the next apply refreshes again with the kept refresh token") from None
        minted = Minted(live=live, value=grant.access_token)
        expiry = f" ({expiry_words(live.expires_at, self.run_.now)})" if live.expires_at else ""
        self.say(f"refreshed the {self.kind.noun}: access token #{live.id}{expiry}; the old pair is dead")
        self.run_.result.rotated.append(self.token.name)
        self.value_kept = self.escrow_put(minted)
        self.persist(self.flight().minted(live.id))
        return minted

    def grant(self, kind: Refreshable) -> tuple[Grant, Secret | None]:
        """A new grant: from a refresh token a person supplied and reconcile has not taken in
        yet, else from the one kept in the state, else (where declared) `client_credentials`.
        The supplied one is returned too, to be recorded as taken in with the grant it gave."""
        env, lifetime, name = self.run_.session.env, self.token.rotation.lifetime, self.token.name
        seed = kind.initial_refresh_token(self.src, env)
        if seed is not None and self.run_.escrow.seed_taken(name, seed):
            seed = None  # spent by an earlier apply: never sent again
        refused: list[str] = []
        unspent: list[str] = []  # refused for another reason than the refresh token being spent
        for held, whence in ((seed, "the supplied refresh token"), (self.run_.escrow.grant(name), "the kept refresh token")):
            if held is None:
                continue
            try:
                return kind.refresh(self.api, self.src, held, lifetime=lifetime, env=env), seed
            except GrantRefused as err:
                refused.append(f"{whence} was refused: {err}")
                if not err.spent:
                    unspent.append(whence)
            except Exception as exc:
                if unclear(exc):
                    raise StepFailed(f"the refresh with {whence} had an unclear outcome ({describe_error(exc)}): that "
                                     "refresh token may be spent", next_apply="the next apply tries it again; if "
                                     f"Zendesk refuses it: {kind.how_to_reauthorise(self.src)}") from None
                raise StepFailed(f"the refresh with {whence} failed: {describe_error(exc)}") from None
        why = "; ".join(refused) or "no refresh token is held or supplied"
        if unspent:  # the fallback's grant has no refresh token: it would replace one that may still work
            raise StepFailed(f"{why}: Zendesk did not say {unspent[0]} is spent, so it is kept and nothing falls back",
                             next_apply="the next apply refreshes with it again; fix what Zendesk refused first")
        try:
            fallback = kind.client_credentials(self.api, self.src, lifetime=lifetime, env=env)
        except GrantRefused as err:
            raise StepFailed(f"{why}; the client_credentials fallback was refused too: {err}",
                             next_apply=kind.how_to_reauthorise(self.src)) from None
        if fallback is None:
            raise StepFailed(f"{why}: the grant is lost", next_apply=kind.how_to_reauthorise(self.src))
        self.say(f"{why}: fell back to the client_credentials grant (an access token without a refresh token)")
        return fallback, seed

    def escrow_consumer_identity(self) -> str | None:
        """The readable consumer the plan names to hold the new value (`escrow: consumer:<id>`)."""
        escrow = self.tp.escrow
        return escrow.split(":", 1)[1] if escrow and escrow.startswith("consumer:") else None

    def escrow_consumer(self) -> str | None:
        if self.run_.escrow.available:
            return None
        identity = self.escrow_consumer_identity()
        if identity is not None:
            return identity
        raise StepFailed(f"in-place rotation refused: {self.run_.escrow.key_env} is not set and no readable consumer "
                         "can hold the new value until every consumer has it (the old value dies at once)",
                         next_apply="set it (`reconcile state keygen` makes one) and run apply again")

    def rotate_in_place(self) -> Minted:
        with self.run_.interrupts.critical():  # no signal between the rotate and its escrow
            return self._rotate_in_place()

    def _rotate_in_place(self) -> Minted:
        assert self.api is not None
        if isinstance(self.kind, Refreshable):
            return self.refresh_grant(self.kind)
        live = self.live
        if live is None:
            raise StepFailed(f"no live {self.kind.noun} to rotate")
        self.escrow_consumer()  # refuse before anything changes
        self_id = self.credential_check()
        self.persist(self.flight().rotating(live.id, started_at=_iso(self.run_.now)))
        minted = self.renew(live)
        if self_id is not None and self_id == live.id:
            # the provider's own credential was rotated: use the new one from here on, in the
            # state store too when it keeps the state with that credential (escrow and saves follow)
            api = self.api
            assert isinstance(api, GitLabApi)  # only a GitLab credential reports its id (credential_check)
            revoked = api.continue_with(minted.value)
            self.run_.store.continue_with(revoked, minted.value)
            self.say("the provider's own credential was rotated: continuing with the new value")
        self.run_.values_in_play.append(minted.value)
        self.run_.result.rotated.append(self.token.name)
        self.value_kept = self.escrow_put(minted)
        self.persist(self.flight().minted(minted.live.id))
        return minted

    def credential_check(self) -> str | None:
        """The provider's check of its own credential before a rotate (never a rotate
        authenticated with a revoked token): its live id, to see a self-rotation."""
        assert self.api is not None
        try:
            return self.api.credential_before_rotate()
        except CredentialRefused as refused:
            raise StepFailed(f"{refused.what} is refused (revoked or expired): no rotate is sent with it; set a "
                             "valid one and run apply again") from None

    def renew(self, live: LiveToken) -> Minted:
        assert self.api is not None
        try:
            minted = capable(self.kind, Renewable).renew(self.api, self.src, live, expires_at=self.expires_at())
        except Exception as exc:
            if not unclear(exc):
                raise StepFailed(f"rotating #{live.id} was refused: {describe_error(exc)}") from None
            return self.after_unclear_rotate(live, exc)
        self.say(f"rotated {self.kind.noun} #{live.id} in place: now #{minted.live.id}"
                 + (f" ({expiry_words(minted.live.expires_at, self.run_.now)})" if minted.live.expires_at else "")
                 + "; the old value is dead")
        return minted

    def after_unclear_rotate(self, live: LiveToken, exc: BaseException) -> Minted:
        self.say(f"the rotate call for #{live.id} had an unclear outcome ({describe_error(exc)}): looking the "
                 "token up by name before anything else")
        try:
            now = self.run_.observe_source(self.token)
        except Exception as err:  # noqa: BLE001
            raise StepFailed(f"cannot tell whether #{live.id} was rotated ({describe_error(err)}); nothing else was "
                             "done", next_apply="the next apply looks again before anything else") from None
        current = now.current
        if now.error or current is None:
            raise StepFailed(f"cannot tell whether #{live.id} was rotated ({now.error or 'no live token'}); nothing "
                             "else was done")
        if current.id == live.id and current.usable and current.created_at == live.created_at:
            raise StepFailed(f"#{live.id} was not rotated (the token is unchanged); nothing else was done",
                             next_apply="run apply again")
        if not current.usable:
            raise StepFailed(f"#{live.id} is no longer usable and no rotated successor is live; nothing else was done")
        # (an OAuth client keeps its id: its secret's time moved instead)
        self.say(f"#{live.id} WAS rotated (now #{current.id}), but its new value never arrived: it is lost, and every "
                 "consumer still holds the revoked value")
        if self.renewed_once:
            raise StepFailed(f"the new value of #{current.id} was lost a second time; stopping (no further rotate in "
                             "this apply)", next_apply="run apply again")
        self.renewed_once = True
        # The way forward: rotate the successor, authenticated with the provider credential
        # (checked valid again), never with the revoked token.
        self.credential_check()
        self.persist(self.flight().rotating_again(current.id))
        self.say(f"rotating #{current.id} once more with the provider credential (not the revoked token) to get a "
                 "value that can be delivered")
        return self.renew(current)

    def recover(self) -> Secret:
        """The current value, to deliver again without minting: from the escrow, the source API, or
        a readable consumer that holds it."""
        where = self.tp.recover_from
        live = self.live
        value: Secret | None = None
        if where == "escrow":
            entry = self.run_.escrow.get(self.token.name)
            if entry is not None and entry.is_of(live):  # never a value of another instance
                value = entry.value
        elif where == "source" and live is not None and self.api is not None and isinstance(self.kind, Recoverable):
            value = self.kind.recover(self.api, self.src, live)
        elif where and where.startswith("consumer:"):
            identity = where.split(":", 1)[1]
            consumer = next(c for c in self.token.consumers if c.identity == identity)
            ckind = consumer_kind(consumer.kind)
            held = ckind.read(self.run_.clients[consumer.provider], consumer) if isinstance(ckind, Readable) else None
            template = ckind.template(consumer)
            value = extract(template, held) if "${token}" in template else held
        if value is None:
            raise StepFailed(f"the current value could not be read back from {where or 'anywhere'}",
                             next_apply="the next apply re-plans")
        self.run_.values_in_play.append(value)
        self.say(f"read the current value of #{live.id if live else '?'} from {where}")
        return value

    # -- consumers -----------------------------------------------------------------------------

    def consumers(self) -> list[tuple[ConsumerPlan, Consumer]]:
        by_id = {c.identity: c for c in self.token.consumers}
        pairs = [(cp, by_id[cp.identity]) for cp in self.tp.consumers if cp.action != "none" and cp.identity in by_id]
        first = self.escrow_consumer_identity()
        if first and not self.run_.escrow.available:
            pairs.sort(key=lambda p: p[1].identity != first)  # the readable consumer holds the value first
        return pairs

    def deliver(self, value: Secret | None, value_live: LiveToken | None) -> list[tuple[Consumer, Secret]]:
        """Write every consumer the plan changes: the readable consumer that holds the new value
        in place of the escrow first, then the others at once (reported in the plan's order)."""
        written: list[tuple[Consumer, Secret]] = []
        escrow_first = None if self.run_.escrow.available else self.escrow_consumer_identity()
        pairs = self.consumers()
        for batch in ([p for p in pairs if p[1].identity == escrow_first],
                      [p for p in pairs if p[1].identity != escrow_first]):
            if not batch:
                continue
            if self.value_kept:  # a safe point: the value is escrowed (or is not new)
                self.run_.interrupts.checkpoint()
            kept = self.value_kept
            deliveries: list[_Delivery] = self.run_.in_parallel(
                [partial(self.deliver_one, cp, consumer, value, kept) for cp, consumer in batch])
            for (cp, consumer), delivery in zip(batch, deliveries, strict=True):
                self.settle(cp, consumer, delivery, value_live, escrow_first, written)
            if any(d.skipped for d in deliveries):
                self.run_.interrupts.checkpoint()
        return written

    def deliver_one(self, cp: ConsumerPlan, consumer: Consumer, value: Secret | None, kept: bool) -> _Delivery:
        """One consumer's write (its requests only; `settle` reports and records it)."""
        if kept and self.run_.interrupts.requested:
            return _Delivery(skipped=True)  # the next safe point is before this write
        ckind = consumer_kind(consumer.kind)
        capi = self.run_.clients[consumer.provider]
        cobs = self.observed.consumers.get(consumer.identity)
        if cobs is None:
            return _Delivery(failure=f"{consumer.label}: not observed")
        with self.run_.place_lock(ckind.place(consumer)):
            if cp.value is None:
                try:
                    if isinstance(ckind, AttributeWritable) and ckind.write_attributes(capi, consumer, cobs):
                        return _Delivery(updated=True)
                except Exception as exc:  # noqa: BLE001
                    return _Delivery(failure=f"{consumer.label}: {describe_error(exc, self.run_.values_in_play)}")
                if value is None:
                    return _Delivery(failure=f"{consumer.label}: its attributes change only with the value, which is "
                                             "not at hand")
            assert value is not None
            out = rendered(consumer, value)
            try:
                new_id = self.write(ckind, capi, consumer, out, cobs)
            except Exception as exc:  # noqa: BLE001 - the others are still written; old is kept
                return _Delivery(failure=f"{consumer.label}: write failed: "
                                         f"{describe_error(exc, [*self.run_.values_in_play, out])}", write_failed=True)
        return _Delivery(out=out, new_id=new_id)

    def settle(self, cp: ConsumerPlan, consumer: Consumer, delivery: _Delivery, value_live: LiveToken | None,
               escrow_first: str | None, written: list[tuple[Consumer, Secret]]) -> None:
        """Report one consumer's write and record it in the ledger."""
        if delivery.skipped:
            return
        if delivery.failure is not None:
            self.run_.fail(self.token.name, delivery.failure)
            if consumer.identity == escrow_first and delivery.write_failed:
                raise StepFailed("the consumer holding the new value as escrow could not be written: stopping "
                                 "before any other consumer")
            return
        if delivery.updated:
            self.say(f"{consumer.label}: updated {', '.join(ch.attribute for ch in cp.changes)}")
            return
        assert delivery.out is not None
        self.record(consumer, delivery.out, value_live, verified=False)
        if consumer.identity == escrow_first:
            self.value_kept = True  # the readable consumer holds it now
        self.run_.count("delivered")
        self.say(f"{consumer.label}: {_written_words(cp, delivery.new_id)}")
        written.append((consumer, delivery.out))

    def write(self, ckind: Any, capi: Any, consumer: Consumer, out: Secret, cobs: Any) -> str | None:
        """Write `out`; the place's new id when the write created it again."""
        if not isinstance(ckind, Recreatable):
            ckind.write(capi, consumer, out, cobs)
            return None
        # the place as observe read it (a hook's url, or a recreate's detail): not read again
        listed = ckind.listed(consumer, cobs, self.run_.lists)
        if ckind.recreates(consumer):
            def keep_copy(copy: dict[str, Any]) -> None:
                # persisted before the delete: a crash before the create must not lose the hook
                with self.ledger.mutex:
                    self.persist(self.flight().keeping(consumer.identity, copy))

            created: list[str] = []
            ckind.write(capi, consumer, out, cobs, before_delete=keep_copy, listed=listed, after_create=created.append)
            with self.ledger.mutex:
                if self.token.name in self.ledger.in_flight:  # saved with the ledger record that follows
                    self.ledger.in_flight[self.token.name] = self.flight().recreated(consumer.identity)
            self.run_.count("recreated")
            return created[0] if created else None
        ckind.write(capi, consumer, out, cobs, listed=listed)
        return None

    def record(self, consumer: Consumer, out: Secret, value_live: LiveToken | None, *, verified: bool) -> None:
        self.ledger.record(LedgerRecord(
            consumer=consumer.identity,
            token=self.token.name,
            token_id=value_live.id if value_live is not None else "external",
            token_created_at=_iso(value_live.created_at if value_live and value_live.created_at else self.run_.now),
            fingerprint=out.fingerprint(),
            delivered_at=_iso(self.run_.now),
            verified=verified,
        ))
        self.save(durable=False)  # durable before the revoke (`run`); until then the escrow has the value

    def verify(self, value: Secret | None, value_live: LiveToken | None, written: list[tuple[Consumer, Secret]]) -> None:
        if value is not None and value_live is not None and self.api is not None and written:
            try:
                works = (self.kind.verify_value(self.api, self.src, value_live, value)
                         if isinstance(self.kind, Verifying) else None)
            except Exception as exc:  # noqa: BLE001
                raise StepFailed(f"could not check that the value is #{value_live.id} "
                                 f"({describe_error(exc, self.run_.values_in_play)}): the old token is kept",
                                 next_apply="the next apply finishes") from None
            if works is False:
                raise StepFailed(f"the value delivered does not authenticate as #{value_live.id}: the old token is "
                                 "kept")
            if works:
                self.say(f"the value authenticates as #{value_live.id}")
        changed = False
        lists, alone = self.reads_after(written)
        results = self.run_.in_parallel([partial(self.check_one, consumer, out, lists, alone=consumer.identity in alone)
                                         for consumer, out in written])
        for (consumer, out), result in zip(written, results, strict=True):
            if isinstance(result, Exception):
                self.run_.fail(self.token.name, f"{consumer.label}: verification failed: "
                                                f"{describe_error(result, [*self.run_.values_in_play, out])}")
                continue
            if result is False:
                self.run_.fail(self.token.name, f"{consumer.label}: read back a different value after writing")
            elif result is None:
                self.run_.count("recorded")
                self.say(f"{consumer.label}: write-only; recorded in the ledger")
            else:
                self.run_.count("verified")
                record = self.ledger.get(consumer.identity)
                if record is not None:
                    self.ledger.record(replace(record, verified=True))
                    changed = True
                self.say(f"{consumer.label}: verified (read back)")
        if changed:
            self.save(durable=False)

    def check_one(self, consumer: Consumer, out: Secret, lists: dict[ListKey, Any], *,
                  alone: bool = False) -> bool | None | Exception:
        """Whether `consumer` holds `out` (None: it cannot be read); the exception when the check
        failed. `alone`: read by itself (`read_alone`), not from its lists."""
        ckind = consumer_kind(consumer.kind)
        try:
            if self.write_only(consumer):
                return None
            if alone:
                api = self.run_.clients[consumer.provider]
                return capable(ckind, VerifiableAlone).verify_alone(api, consumer, out,
                                                                    self.observed.consumers[consumer.identity])
            if isinstance(ckind, ListVerifiable) and ckind.verify_keys(consumer):
                return ckind.verify_listed(consumer, out, lists)
            return ckind.verify(self.run_.clients[consumer.provider], consumer, out)
        except Exception as exc:  # noqa: BLE001 - reported by the token's thread
            return exc

    def write_only(self, consumer: Consumer) -> bool:
        """Observe found the place and it does not return its value (a hidden CI/CD variable, a
        secure app setting): a read-back would show nothing, so none is made. Neither can become
        readable (GitLab sets `hidden` only at creation; `secure` is the app's definition)."""
        cobs = self.observed.consumers.get(consumer.identity)
        return cobs is not None and cobs.exists and not cobs.readable and not cobs.error

    def reads_after(self, written: list[tuple[Consumer, Secret]]) -> tuple[dict[ListKey, Any], set[str]]:
        """The lists verification reads, and the consumers it reads alone instead (`read_alone`)."""
        alone = read_alone([c for c, _ in written if not self.write_only(c)], self.run_.lists)
        return self.read_back([(c, out) for c, out in written if c.identity not in alone]), alone

    def read_back(self, written: list[tuple[Consumer, Secret]]) -> dict[ListKey, Any]:
        """Each list verification reads, fetched once after the last write of this token: one per
        (provider, resource, scope) however many of its consumers live there (a GET per consumer
        was most of apply's reads). Still before the old token is revoked."""
        from reconciler.observe import fetch_list

        def fetch(key: ListKey) -> Any:
            try:
                return fetch_list(self.run_.clients[key.provider], key)
            except Exception as exc:  # noqa: BLE001 - each consumer there reports it as not verified
                return FetchError(0, describe_error(exc, self.run_.values_in_play))

        keys = sorted({k for c, _ in written if not self.write_only(c) for k in _verify_keys(c)})
        return dict(zip(keys, self.run_.in_parallel([partial(fetch, key) for key in keys]), strict=True))

    def retire_replaced(self, delivered_at: datetime) -> None:
        """The way off a retiring credential: once this token's consumers all hold its value (the
        plan's `retire`), the live credential of the token it `replaces` is revoked by that
        token's own kind, through the same path as any old token (so only once it is quiet:
        unused since this token's value reached its last consumer)."""
        name = self.kind.replaces(self.src)
        sobs = self.observed.sources.get(name) if name is not None and self.tp.retire else None
        if name is None or sobs is None:
            return
        owner = self.run_.inventory.tokens[name]  # validation guarantees it
        retiring = [t for t in (sobs.current, *sobs.others) if t is not None and t.id in self.tp.retire]
        self.revoke(retiring, keep=None, delivered=(retiring, delivered_at), owner=owner)

    def revoke(self, tokens: list[LiveToken], keep: str | None,
               delivered: tuple[list[LiveToken], datetime] | None = None, owner: Token | None = None) -> None:
        """Revoke each of `tokens` (but `keep`) that is quiet (reconciler.quiet); keep the others,
        recorded in the ledger. The tokens are old instances of this token, or those of `owner`,
        the token this one replaces. `delivered`: the old tokens of this apply's overlap and when
        the new value reached its last consumer: they, and those of an overlap an interrupted
        apply began, must be unused since; the others for the quiet period."""
        subject = owner if owner is not None else self.token
        kind = source_kind(subject.source.kind)
        api = self.run_.clients[subject.source.provider] if owner is not None and subject.source.provider else self.api
        candidates = list({t.id: t for t in tokens if t.id != keep}.values())
        last_uses = self.last_uses(subject, candidates)
        for t in candidates:
            last = last_uses.get(t.id)
            why = None if last is None else self.still_in_use(subject, t, last, delivered)
            if why is not None and last is not None:
                self.keep_until_quiet(subject, t, why, last)
                continue
            try:
                capable(kind, Revocable).revoke(api, subject.source, t)
            except Exception as exc:
                if getattr(exc, "response_code", None) == 404 or getattr(exc, "status", None) == 404:
                    self.release(subject, t)
                    continue  # already gone
                raise StepFailed(f"revoking #{t.id} failed: {describe_error(exc)}",
                                 next_apply="the next apply tries again") from None
            self.release(subject, t)
            self.run_.count("revoked")
            forced = " (--force-revoke: its last use was not checked)" if self.forced(subject) else ""
            of = f" of {owner.name}" if owner is not None else ""
            self.say(f"{kind.revoke_verb} {kind.noun} #{t.id}{of}{forced}")

    def forced(self, subject: Token) -> bool:
        return subject.name in self.run_.force_revoke

    def last_uses(self, subject: Token, tokens: list[LiveToken]) -> dict[str, LastUse]:
        """When each of `tokens` (live instances of `subject`) was last used, read again now (the
        delivery just made may have moved things): only for a kind that records it, and not when
        `--force-revoke` names the token."""
        kind = source_kind(subject.source.kind)
        if not tokens or self.forced(subject) or not isinstance(kind, UseRecorded):
            return {}
        try:
            fresh = self.run_.observe_source(subject, uses_only=True)
        except Exception as exc:  # noqa: BLE001 - nothing is revoked without the reading
            raise StepFailed(f"could not read when the tokens to revoke were last used ({describe_error(exc)}): "
                             "none was revoked", next_apply="the next apply tries again") from None
        if fresh.error:
            raise StepFailed(f"could not read when the tokens to revoke were last used ({fresh.error}): none was "
                             "revoked", next_apply="the next apply tries again")
        now = {t.id: t for t in (fresh.current, *fresh.others) if t is not None}
        return {t.id: kind.last_use(now.get(t.id, t)) for t in tokens}

    def still_in_use(self, subject: Token, t: LiveToken, last: LastUse,
                     delivered: tuple[list[LiveToken], datetime] | None) -> str | None:
        """Why `t` is kept: used (or possibly used) after the delivery when it is an old token of
        the overlap or the credential being replaced (and not kept before), else within the quiet
        period; None: quiet."""
        old_ids = {o.id for o in delivered[0]} | self.interrupted_old_ids if delivered is not None else set()
        if delivered is not None and t.id in old_ids and t.id not in self.ledger.kept.get(subject.name, {}):
            since, after = since_delivery(delivered[1])
        else:
            since, after = since_quiet_period(self.run_.clock(), subject.rotation.quiet)
        return in_use(last, since, after)

    def keep_until_quiet(self, subject: Token, t: LiveToken, why: str, last: LastUse) -> None:
        """Keep `t` live, recorded in the ledger for a later apply (saved before going on)."""
        self.ledger.keep(subject.name, KeptUntilQuiet(
            token_id=t.id, kept_at=_iso(self.run_.clock()), why=why,
            last_used_at=_iso(last.at) if last.at is not None else None))
        self.save()
        self.run_.result.kept.append((subject.name, t.id))
        noun = source_kind(subject.source.kind).noun
        self.say(f"not revoking {noun} #{t.id}: {why}: {KEPT}; a later apply revokes it once it is "
                 f"quiet (`--force-revoke {subject.name}` revokes it now)")

    def release(self, subject: Token, t: LiveToken) -> None:
        """`t` is revoked (or gone): no longer kept."""
        if t.id in self.ledger.kept.get(subject.name, {}):
            self.ledger.release(subject.name, t.id)
            self.save()

    def finish(self) -> None:
        escrow = self.run_.escrow
        if self.token.name in escrow.tokens():
            escrow.drop(self.token.name)
            self.say("every consumer has the value: dropped it from the escrow")
        with self.ledger.mutex:  # other tokens' threads save the ledger meanwhile
            if self.ledger.in_flight.pop(self.token.name, None) is not None:
                self.save()

