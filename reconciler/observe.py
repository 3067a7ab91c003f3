"""Gather the live state the inventory refers to, across all providers, as plain data.

Batched: the kinds name the list calls they need (`ListKey`: provider, resource, scope); the keys
of the whole inventory are deduplicated and each is fetched once, so a project's triggers are
listed once however many tokens live there. A dataflow (`Flow`): a kind may need a call that
depends on an earlier one (a user id before its PATs, a schedule's detail after the schedule
list), so as soon as a call's answer arrives the sources and consumers waiting on it are asked
again (`needs()`) for what they need next, and the values a token's consumers hold are
identified as soon as that token's own calls are in: no round waits for the slowest call of
another. Once they are identified too, the token's observations are final and, when no other
token's value or observation completes them, handed to `settled` (the pipeline plans it then).

Concurrent: one thread pool; each provider has its own queue and hands out up to twice its
`Throttle`'s concurrency (reconciler.clients) of calls at once, deeper calls first (they finish a
chain): the Throttle lets its concurrency of them send at a time, and a call waiting at it takes
a slot the moment one frees, so every provider's slots stay busy until its work is done; the
Throttle pauses when its rate-limit budget runs low.

Identification of what readable consumers hold, cheapest first: (1) the ledger: the fingerprint
equals the ledger record's and the record's token id is the live token's: no request; (2) the
source kind's `identify`: compare with a list already fetched (owned triggers), or authenticate
with the value (GitLab `GET /personal_access_tokens/self`, Zendesk `GET /oauth/tokens/current`),
once per distinct value, at the token's own provider only. A token that uses a provider outside
the trusted set (reconciler.trust) is not observed at all: its consumers are not read, and its
plan carries the refusal as an error. Values are dropped afterwards: `Observed` holds fingerprints only.

A provider that cannot be reached or refuses its credential raises `ProviderError` (one line
naming the provider and the environment variable); a list that fails for one project (404, 403)
becomes that source's or consumer's error in the plan.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

from reconciler.clients import Api, Clients, ProviderError
from reconciler.inventory.model import Consumer, Inventory, Token
from reconciler.kinds import (
    Creator,
    Identifying,
    Identity,
    ListKey,
    Reading,
    consumer_kind,
    fetcher_of,
    source_kind,
)
from reconciler.kinds._discovery import is_own_credential
from reconciler.observed import (
    ConsumerObservation,
    LiveToken,
    Observed,
    SourceObservation,
    record_is_of,
)
from reconciler.secret import Secret

if TYPE_CHECKING:
    from reconciler.plan_model import Plan, TokenPlan
    from reconciler.planner import Deliveries

# told a token and its final source and consumer observations (`observe(settled=...)`)
Settled = Callable[[Token, SourceObservation, list[ConsumerObservation]], None]
MAX_ROUNDS = 4  # calls that depend on calls: at most this deep
MAX_WORKERS = 16
MAX_FLOW_WORKERS = 96
AHEAD = 2  # calls in flight per provider, in Throttle budgets


def needed_keys(tokens: list[Token], lists: dict[ListKey, Any]) -> set[ListKey]:
    keys: set[ListKey] = set()
    for token in tokens:
        if token.source.provider:
            keys.update(source_kind(token.source.kind).needs(token, lists))
        for consumer in token.consumers:
            keys.update(consumer_kind(consumer.kind).needs(consumer, lists))
    return keys


def fetch_list(api: Api, key: ListKey) -> Any:
    """One list call through the provider's fetcher, within its throttle. A failure comes back as
    a scope-level FetchError, or raises ProviderError when the whole provider is unusable."""
    fetch = fetcher_of(api.provider.kind, key.resource)
    with api.throttle:
        try:
            return fetch(api, key.scope)
        except Exception as exc:  # noqa: BLE001 - classified: scope-level error or ProviderError
            return api.classify(exc)


def fetch_lists(tokens: list[Token], clients: Clients, max_workers: int | None = None, *,
                creators: Mapping[str, Api] | None = None,
                known: Mapping[ListKey, Any] | None = None) -> dict[ListKey, Any]:
    """Every list call the tokens need, each once, concurrently within each provider's bounds;
    `known`: lists already fetched. A call made with another token's value (`ListKey.credential`)
    goes through that token's handle in `creators`, and is left out while it has none."""
    flow = Flow(clients, dict(known or {}), creators=creators, max_workers=max_workers)
    flow.observe(tokens)
    return flow.lists


class _Asker:
    """A source or consumer in the dataflow: what it needs (`ask(lists)`) and which of those calls
    are still out."""

    __slots__ = ("ask", "pending", "done")

    def __init__(self, ask: Callable[[Mapping[ListKey, Any]], list[ListKey]], done: Callable[[], None]) -> None:
        self.ask = ask
        self.pending: set[ListKey] = set()
        self.done = done


class Flow:
    """The calls of an observation as a dataflow (see the module docstring). `observe(tokens)`
    fetches what the tokens need into `lists`; with a `ledger` it also identifies the values their
    consumers hold and keeps each token's source observation (`sources`) and consumer readings
    (`readings`), and the identifications (`identified`)."""

    def __init__(self, clients: Clients, lists: dict[ListKey, Any], *, creators: Mapping[str, Api] | None = None,
                 max_workers: int | None = None, ledger: Deliveries | None = None, identify: bool = False,
                 settled: Settled | None = None, alone: Collection[str] = ()) -> None:
        self.clients = clients
        self.settled, self.alone = settled, set(alone)
        self.unsettled: dict[str, int] = {}  # token name -> its identifications still out
        self.lists = lists
        self.creators = creators or {}
        self.ledger = ledger
        self.identify = identify
        # twice each provider's budget in flight: a call waiting at the Throttle takes a slot the
        # moment one frees, without waiting for this thread to hand it out
        budgets = {name: AHEAD * api.throttle.concurrency for name, api in clients.apis.items()}
        self.workers = max_workers or min(MAX_FLOW_WORKERS, max(1, sum(budgets.values())))
        self.limits = {name: min(budget, self.workers) for name, budget in budgets.items()}
        self.queues: dict[str, list[tuple[int, int, Callable[[], Any], Callable[[Any], None]]]] = {}
        self.inflight: dict[str, int] = dict.fromkeys(budgets, 0)
        self.running = 0  # calls handed to the pool and not handled yet
        self.answers: SimpleQueue[tuple[Future[Any], str, Callable[[Any], None]]] = SimpleQueue()
        self.order = itertools.count()
        self.depth: dict[ListKey, int] = dict.fromkeys(lists, 0)
        self.waiting: dict[ListKey, list[tuple[_Asker, int]]] = {}
        self.sources: dict[str, SourceObservation] = {}
        self.readings: dict[str, list[tuple[Token, Reading]]] = {}
        self.final: dict[str, list[ConsumerObservation]] = {}  # of the tokens `settled` was told about
        self.identified: dict[tuple[str, str], Identity | None] = {}

    # the work -----------------------------------------------------------------------------

    def observe(self, tokens: list[Token]) -> None:
        for token in tokens:
            self.start(token)
        self.run()

    def start(self, token: Token) -> None:
        """Ask the token's source and each consumer for their calls; once all are in, `ready`."""
        askers: list[Callable[[Mapping[ListKey, Any]], list[ListKey]]] = []
        if token.source.provider:
            askers.append(partial(source_kind(token.source.kind).needs, token))
        askers += [partial(consumer_kind(c.kind).needs, c) for c in token.consumers]
        left = [len(askers)]

        def one_done() -> None:
            left[0] -= 1
            if left[0] == 0:
                self.ready(token)

        if not askers:
            self.ready(token)
        for ask in askers:
            self.ask(_Asker(ask, one_done), 1)

    def ask(self, asker: _Asker, depth: int) -> None:
        """What `asker` needs now; calls not asked for yet go to their provider's queue at `depth`
        (up to MAX_ROUNDS calls deep); done when nothing it needs is still out."""
        missing = {k for k in asker.ask(self.lists) if k not in self.lists
                   and (not k.credential or k.credential in self.creators)
                   and (k in self.depth or depth <= MAX_ROUNDS)}
        for key in missing - asker.pending:
            self.waiting.setdefault(key, []).append((asker, depth))
            if key not in self.depth:
                self.fetch(key, depth)
        asker.pending = missing
        if not missing:
            asker.done()

    def fetch(self, key: ListKey, depth: int) -> None:
        self.depth[key] = depth
        api = self.creators[key.credential] if key.credential else self.clients[key.provider]
        self.queue(key.provider, depth, partial(fetch_list, api, key), partial(self.fetched, key))

    def fetched(self, key: ListKey, data: Any) -> None:
        self.lists[key] = data
        for asker, depth in self.waiting.pop(key, ()):
            if key in asker.pending:
                self.ask(asker, depth + 1)

    def ready(self, token: Token) -> None:
        """The token's calls are in: its source observation and readings, and the identification
        of each value its consumers hold that the ledger does not prove."""
        if not self.identify:
            return
        source = source_kind(token.source.kind).observe(token, self.lists)
        readings = [(token, consumer_kind(c.kind).observe(token, c, self.lists)) for c in token.consumers]
        self.sources[token.name], self.readings[token.name] = source, readings
        wanted = identifications(readings, {token.name: source}, self.ledger)
        for key, value in sorted(wanted.items()):
            self.identified[key] = None
            self.queue(str(token.source.provider), MAX_ROUNDS + 1,
                       partial(identify_one, self.clients, token, value, self.lists), partial(self.found, token, key))
        self.unsettled[token.name] = len(wanted)
        self.settle(token)

    def found(self, token: Token, key: tuple[str, str], identity: Identity | None) -> None:
        self.identified[key] = identity
        self.unsettled[token.name] -= 1
        self.settle(token)

    def settle(self, token: Token) -> None:
        """Once a token's identifications are in, its observations are final unless another
        token's value is involved (`alone`: the tokens whose are not): told to `settled`."""
        if self.settled is None or token.name not in self.alone or self.unsettled[token.name]:
            return
        source = self.sources[token.name]
        final = self.final[token.name] = self.final_of(token, source.current)
        # its readings go: the values they hold are no longer needed, and they are most of what a
        # consumer costs in memory while the others are observed
        del self.readings[token.name]
        self.settled(token, source, final)

    def final_of(self, token: Token, current: LiveToken | None) -> list[ConsumerObservation]:
        """`token`'s consumer observations, each with what the ledger proves or identification
        found it holds (`current`: the token's live instance)."""
        return [final_observation(token, reading, current, self.ledger, self.identified)
                for _, reading in self.readings[token.name]]

    # the scheduling -----------------------------------------------------------------------

    def queue(self, provider: str, depth: int, work: Callable[[], Any], then: Callable[[Any], None]) -> None:
        heapq.heappush(self.queues.setdefault(provider, []), (-depth, next(self.order), work, then))

    def run(self) -> None:
        """Until nothing is queued or in flight; each answer is handled here, in this thread."""
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="observe") as pool:
            self.dispatch(pool)
            while self.running:
                finished = [self.answers.get()]
                while not self.answers.empty():
                    finished.append(self.answers.get())
                for _, provider, _ in finished:
                    self.running -= 1
                    self.inflight[provider] -= 1
                self.dispatch(pool)  # the freed slots first, then what the answers lead to
                for future, _, then in finished:
                    then(future.result())  # a ProviderError ends the observation
                self.dispatch(pool)

    def dispatch(self, pool: ThreadPoolExecutor) -> None:
        for provider, queue in self.queues.items():
            limit = self.limits.get(provider, 1)
            while queue and self.inflight.get(provider, 0) < limit:
                _, _, work, then = heapq.heappop(queue)
                self.inflight[provider] = self.inflight.get(provider, 0) + 1
                self.running += 1
                pool.submit(work).add_done_callback(partial(self._answered, provider, then))

    def _answered(self, provider: str, then: Callable[[Any], None], future: Future[Any]) -> None:
        self.answers.put((future, provider, then))  # in the worker: the answer goes to `run`


def observe(
    inventory: Inventory,
    clients: Clients,
    ledger: Deliveries | None,
    now: datetime | None = None,
    *,
    targets: Collection[str] | None = None,
    lists_out: dict[ListKey, Any] | None = None,
    values_out: dict[str, Secret] | None = None,
    settled: Settled | None = None,
) -> Observed:
    """The live state of every (targeted) token and consumer of `inventory`. `lists_out`, when
    given, receives the fetched lists (apply reuses what observe read instead of reading again);
    `values_out` the current values found of the tokens others are created with (`created_with`;
    apply creates with them); `settled` each token's final observations as soon as they are,
    while the rest is observed, except those of the tokens created with another's value or
    replacing another, and of their creators (`observed_alone`). Targeting a token observes its
    creators too."""
    wanted = with_creators(inventory.tokens, targets or inventory.tokens)
    chosen = [t for name, t in sorted(inventory.tokens.items()) if name in wanted]
    tokens, refused_sources, refused_consumers = split_untrusted(chosen, clients)
    flow = Flow(clients, {}, ledger=ledger, identify=True, settled=settled, alone=observed_alone(tokens))
    flow.observe(tokens)
    lists, identified = flow.lists, flow.identified

    sources = {t.name: flow.sources[t.name] for t in tokens}
    sources.update(refused_sources)
    readings = [reading for t in tokens for reading in flow.readings.get(t.name, ())]
    values = creator_values(tokens, readings, sources, ledger, identified)
    lists = observe_as_creators(tokens, values, clients, lists, sources, readings, ledger, identified)
    if lists_out is not None:
        lists_out.clear()
        lists_out.update(lists)
    if values_out is not None:
        values_out.update({name: value for name, (value, _) in values.items()})
    consumers: dict[str, ConsumerObservation] = {}
    for token in tokens:
        final = flow.final[token.name] if token.name in flow.final else flow.final_of(token, sources[token.name].current)
        consumers.update((obs.identity, obs) for obs in final)
    consumers.update(refused_consumers)

    unmanaged: list[LiveToken] = []
    unmanaged_kinds: dict[LiveToken, str] = {}
    for kind_name in sorted({t.source.kind for t in inventory.tokens.values()}):
        same_kind = [t for t in inventory.tokens.values() if t.source.kind == kind_name]
        found = source_kind(kind_name).unmanaged(same_kind, lists)
        unmanaged.extend(found)
        unmanaged_kinds.update(dict.fromkeys(found, kind_name))
    unmanaged = not_own_credentials(unmanaged, unmanaged_kinds, clients)
    return Observed(
        observed_at=now or datetime.now(UTC),
        sources=sources,
        consumers=consumers,
        unmanaged=tuple(unmanaged),
        unmanaged_kinds=unmanaged_kinds,
        requests=clients.requests(),
    )


def observed_alone(tokens: list[Token]) -> set[str]:
    """The tokens whose observations no other token's value or observation completes: neither
    created with another (`created_with`) nor another's creator, and replacing none."""
    creators = {t.source.created_with for t in tokens}
    return {t.name for t in tokens if t.source.created_with is None and t.name not in creators
            and source_kind(t.source.kind).replaces(t.source) is None}


def with_creators(tokens: Mapping[str, Token], names: Collection[str]) -> set[str]:
    """`names` and every token they are created with, down the chain (`created_with`)."""
    found: set[str] = set()
    todo = [n for n in names if n in tokens]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        creator = tokens[name].source.created_with
        if creator is not None and creator in tokens:
            todo.append(creator)
    return found


def creator_values(tokens: list[Token], readings: list[tuple[Token, Reading]], sources: dict[str, SourceObservation],
                   ledger: Deliveries | None,
                   identified: dict[tuple[str, str], Identity | None]) -> dict[str, tuple[Secret, str]]:
    """token name -> (current value, `consumer:IDENTITY` it was read from) of each token another
    is created with: a value one of its consumers holds that is its current live token (the
    ledger proves it, or identification named it). Never from the inventory."""
    wanted = {t.source.created_with for t in tokens if t.source.created_with}
    found: dict[str, tuple[Secret, str]] = {}
    for token, reading in readings:
        obs, value = reading.observation, reading.token_value
        current = sources[token.name].current
        if token.name not in wanted or token.name in found or value is None or obs.error:
            continue
        if current is None or not current.usable:
            continue
        identity = identified.get((token.name, value.fingerprint()))
        if _proven(obs, current, ledger) or (identity is not None and identity.token_id == current.id):
            found[token.name] = (value, f"consumer:{obs.identity}")
    return found


def observe_as_creators(tokens: list[Token], values: dict[str, tuple[Secret, str]], clients: Clients,
                        lists: dict[ListKey, Any], sources: dict[str, SourceObservation],
                        readings: list[tuple[Token, Reading]], ledger: Deliveries | None,
                        identified: dict[tuple[str, str], Identity | None]) -> dict[ListKey, Any]:
    """Observe again, with their creators' values, the tokens created with them (a trigger's list
    shows the full token only to its owner), and identify their consumers' values again; each
    creator's observation records where its value was read (`value_at`). The lists, with those
    calls added."""
    if not values:
        return lists
    creators: dict[str, Api] = {}
    by_name = {t.name: t for t in tokens}
    for name, (value, where) in values.items():
        creator = by_name[name]
        kind = source_kind(creator.source.kind)
        if isinstance(kind, Creator):  # validation allows no other creator
            creators[name] = kind.as_creator(clients[str(creator.source.provider)], value, name)
        sources[name] = replace(sources[name], value_at=where)
    created = [t for t in tokens if t.source.created_with in creators]
    lists = fetch_lists(created, clients, creators=creators, known=lists)
    for token in created:
        observed = source_kind(token.source.kind).observe(token, lists)
        sources[token.name] = replace(observed, credential=token.source.created_with)
    again = [(t, r) for t, r in readings if t.source.created_with in creators]
    identified.update(identify_values(again, sources, ledger, clients, lists))
    return lists


def not_own_credentials(found: list[LiveToken], kinds: dict[LiveToken, str], clients: Clients) -> list[LiveToken]:
    """`found` without each provider's own credential (`is_own_credential`, the rule `check`
    uses): its id is asked (one request) only of a provider where a token of a kind a credential
    can be was found."""
    def provider(t: LiveToken) -> str:
        return t.where.split(":", 1)[0]

    def capable(t: LiveToken) -> bool:
        return source_kind(kinds[t]).can_be_credential

    ids = credential_ids(sorted({provider(t) for t in found if capable(t)}), clients)
    return [t for t in found if not is_own_credential(ids, provider(t), t.id, capable(t))]


def credential_ids(providers: Collection[str], apis: Any) -> dict[str, str]:
    """provider -> the live id of its own credential (`credential_id()`: GitLab `GET
    /personal_access_tokens/self`, Zendesk `GET /api/v2/oauth/tokens/current`, with the
    credential); a provider whose credential cannot read itself (a job token, a Zendesk API
    token) is left out."""
    found: dict[str, str] = {}
    for name in providers:
        api = apis[name]
        try:
            with api.throttle:
                own = api.credential_id()
        except ProviderError:
            raise
        except Exception:  # noqa: BLE001 - not a PAT (a job token...): it is simply not excluded
            continue
        if own is not None:
            found[name] = own
    return found


def untrusted(token: Token, clients: Clients) -> str | None:
    """Why `token` is not observed: a provider it uses (its source's or a consumer's) is outside
    the trusted set (reconciler.trust)."""
    names = [token.source.provider or "", *(c.provider for c in token.consumers)]
    return next((why for name in names if name and (why := clients.refusal(name)) is not None), None)


def split_untrusted(tokens: list[Token], clients: Clients) -> tuple[list[Token], dict[str, SourceObservation],
                                                                      dict[str, ConsumerObservation]]:
    """The tokens to observe, and the observations of those that use an untrusted provider: the
    refusal as the error of their source and of each consumer. Their consumers are not read, so
    no value of theirs is ever sent to an untrusted provider; the plan shows the refusal as the
    token's error."""
    kept: list[Token] = []
    sources: dict[str, SourceObservation] = {}
    consumers: dict[str, ConsumerObservation] = {}
    for token in tokens:
        why = untrusted(token, clients)
        if why is None:
            kept.append(token)
            continue
        sources[token.name] = SourceObservation(token=token.name, identity=token.source.identity, error=why)
        consumers.update({c.identity: ConsumerObservation(identity=c.identity, token=token.name, state="error",
                                                          readable=False, error=why) for c in token.consumers})
    return kept, sources, consumers


def _proven(obs: ConsumerObservation, current: LiveToken | None, ledger: Deliveries | None) -> bool:
    """The ledger's record shows `obs` holds the current live token: no request needed. A record a
    person asserted proves nothing here: the plan shows it as asserted, not verified."""
    record = ledger.get(obs.identity) if ledger is not None else None
    return (record is not None and record.established != "asserted" and record.fingerprint == obs.fingerprint
            and record_is_of(record, current))


def identifications(readings: list[tuple[Token, Reading]], sources: Mapping[str, Any],
                    ledger: Deliveries | None) -> dict[tuple[str, str], Secret]:
    """(token name, value fingerprint) -> the value, of each distinct held value of an identifying
    kind that the ledger does not prove."""
    wanted: dict[tuple[str, str], Secret] = {}
    for token, reading in readings:
        obs, value = reading.observation, reading.token_value
        if obs.fingerprint is None or obs.error or value is None:
            continue
        if not isinstance(source_kind(token.source.kind), Identifying) or _proven(obs, sources[token.name].current, ledger):
            continue
        wanted.setdefault((token.name, value.fingerprint()), value)
    return wanted


def identify_one(clients: Clients, token: Token, value: Secret, lists: Mapping[ListKey, Any]) -> Identity | None:
    """Which live token `value` is, asked of the token's own provider (trusted, or ProviderError)."""
    api = clients[str(token.source.provider)]
    kind = source_kind(token.source.kind)
    assert isinstance(kind, Identifying)  # only identifying kinds' values are wanted
    try:
        return kind.identify(api, token.source, value, lists)
    except Exception as exc:  # noqa: BLE001 - a provider-level failure raises ProviderError
        api.classify(exc)
        return None


def identify_values(readings: list[tuple[Token, Reading]], sources: dict[str, Any], ledger: Deliveries | None, clients: Clients,
                    lists: dict[ListKey, Any], max_workers: int = MAX_WORKERS) -> dict[tuple[str, str], Identity | None]:
    """Which token each distinct held value is, for the values the ledger does not prove: once
    per (token, value fingerprint), concurrently (each provider's Throttle bounds its share)."""
    by_name = {token.name: token for token, _ in readings}
    wanted = identifications(readings, sources, ledger)

    def one(item: tuple[tuple[str, str], Secret]) -> tuple[tuple[str, str], Identity | None]:
        key, value = item
        return key, identify_one(clients, by_name[key[0]], value, lists)

    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="identify") as pool:
        return dict(pool.map(one, sorted(wanted.items(), key=lambda kv: kv[0])))


def final_observation(token: Token, reading: Reading, current: LiveToken | None, ledger: Deliveries | None,
                      identified: Mapping[tuple[str, str], Identity | None]) -> ConsumerObservation:
    """A consumer's observation with what the ledger proves or identification found it holds."""
    obs = reading.observation
    if obs.fingerprint is None or obs.error:
        return obs
    return _identified(token, obs, reading, current, ledger, identified)


def _identified(token: Token, obs: ConsumerObservation, reading: Reading, current: LiveToken | None, ledger: Deliveries | None,
                identified: Mapping[tuple[str, str], Identity | None]) -> ConsumerObservation:
    if current is not None and _proven(obs, current, ledger):
        return replace(obs, holds_token_id=current.id, by_ledger=True)
    value = reading.token_value
    found = identified.get((token.name, value.fingerprint())) if value is not None else None
    if found is None:
        return obs
    return replace(obs, holds_token_id=found.token_id, holds_invalid=found.invalid)


class WriteReads:
    """The calls only a write needs (`ConsumerKind.write_needs`: a recreated hook's detail), made
    for the consumers a plan writes and no other. `add(token_plan)` sends its calls at once, in
    the background (each provider's Throttle bounds them), so they overlap the planning of the
    tokens after it; `finish(observed)` waits for them and completes the observation. Use it as a
    context manager: the calls not sent yet are dropped on the way out."""

    def __init__(self, inventory: Inventory, clients: Clients, lists: dict[ListKey, Any]) -> None:
        self.inventory, self.clients, self.lists = inventory, clients, lists
        self.wanted: list[tuple[str, Consumer, ConsumerObservation]] = []
        self.calls: dict[ListKey, Future[Any]] = {}
        self.pool = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="write-reads")

    def __enter__(self) -> WriteReads:
        return self

    def __exit__(self, *_: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def add(self, tp: TokenPlan, observed: Mapping[str, ConsumerObservation]) -> None:
        """The calls the writes of `tp` need, its consumers observed as `observed` says."""
        written = {cp.identity for cp in tp.consumers if cp.action != "none"}
        for consumer in self.inventory.tokens[tp.name].consumers if written else ():
            obs = observed.get(consumer.identity)
            if consumer.identity not in written or obs is None:
                continue
            needed = consumer_kind(consumer.kind).write_needs(consumer, obs)
            if needed:
                self.wanted.append((tp.name, consumer, obs))
            for key in sorted(set(needed) - self.lists.keys() - self.calls.keys()):
                self.calls[key] = self.pool.submit(fetch_list, self.clients[key.provider], key)

    def finish(self, observed: Observed) -> tuple[Observed, set[str]]:
        """`observed` with the answers, and the names of the tokens whose observations they
        changed. The answers go into `lists` (apply's writes read them there)."""
        for key, call in sorted(self.calls.items()):
            self.lists[key] = call.result()  # a ProviderError ends the observation
        changed: dict[str, ConsumerObservation] = {}
        for _, consumer, obs in self.wanted:
            now = consumer_kind(consumer.kind).observe_write(consumer, obs, self.lists)
            if now != obs:
                changed[consumer.identity] = now
        if not self.wanted:
            return observed, set()
        names = {name for name, consumer, _ in self.wanted if consumer.identity in changed}
        return observed.with_consumers(changed, self.clients.requests()), names


def observe_writes(inventory: Inventory, observed: Observed, plan: Plan, clients: Clients,
                   lists: dict[ListKey, Any]) -> tuple[Observed, set[str]]:
    """`observed` completed with the calls that only a write of `plan` needs (`WriteReads`), and
    the names of the tokens whose observations that changed."""
    with WriteReads(inventory, clients, lists) as reads:
        for tp in plan.tokens:
            reads.add(tp, observed.consumers)
        return reads.finish(observed)
