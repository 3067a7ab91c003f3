"""Property-based tests of the pure planner (hypothesis, derandomized, modest example counts).

A small pure MODEL of the live world stands in for GitLab, Zendesk and the ledger: token instances
per inventory token (id, created, expiry, scopes, access level, revoked), what each consumer holds
(an instance id, a foreign value, or nothing: the place is missing) and its managed attributes.
`observe()` turns the model into the `Observed` the real observe would build (readable consumers
show a fingerprint, identifying kinds name the instance they hold or mark it invalid, the ledger
proves what it recorded, write-only consumers show nothing); `apply()` executes a plan on the model
as apply promises to (mint or rotate, write the chosen value and the declared attributes to each
consumer that the plan updates or creates, record the delivery, revoke the old and the orphans).

Properties:
- convergence: for any inventory and live state whose plan has no errors, applying the plan and
  planning again gives a plan without changes;
- determinism: the same input gives byte-identical JSON, whatever the order of the mappings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reconciler.inventory.model import Inventory, Position, Rotation, Token
from reconciler.kinds import consumer_kind, source_kind
from reconciler.kinds.gitlab_access_token import GitLabProjectAccessToken
from reconciler.kinds.gitlab_ci_variable import GitLabCiVariable
from reconciler.kinds.gitlab_personal_access_token import GitLabPersonalAccessToken
from reconciler.kinds.gitlab_pipeline_trigger import GitLabPipelineTrigger
from reconciler.kinds.gitlab_webhook import GitLabWebhook, WebhookSecretField
from reconciler.kinds.zendesk_app_setting import ZendeskAppSetting
from reconciler.kinds.zendesk_oauth_token import ZendeskOAuthToken
from reconciler.kinds.zendesk_webhook import ZendeskWebhook, ZendeskWebhookAuth
from reconciler.observed import ConsumerObservation, LiveToken, Observed, SourceObservation, record_is_of
from reconciler.plan import Plan, plan
from reconciler.state import Ledger, LedgerRecord
from tests.engine.engine_helpers import NOW, PROVIDERS  # the planner tests' clock and providers

SETTINGS = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
FOREIGN = -1  # a consumer holding a value that is no token instance (pasted by hand, long revoked)


def at(line: int) -> Position:
    return Position("inventory/tokens.yaml", line, 3)


def fingerprint(instance: int) -> str:
    return "sha256:" + hashlib.sha256(f"value-{instance}".encode()).hexdigest()


# --- the model of the live world ---------------------------------------------------------------


@dataclass
class Instance:
    id: int
    created_at: datetime
    expires_at: date | None
    scopes: tuple[str, ...]
    access_level: int | None
    revoked: bool = False

    @property
    def usable(self) -> bool:
        return not self.revoked and (self.expires_at is None or self.expires_at > NOW.date())


@dataclass
class World:
    instances: dict[str, list[Instance]]  # by token name, oldest first
    held: dict[str, int | None]  # by consumer identity: instance id, FOREIGN, or None (missing)
    attributes: dict[str, dict[str, Any]]  # by consumer identity
    ledger: dict[str, tuple[int, str]] = field(default_factory=dict)  # identity -> (instance id, fingerprint)
    next_id: int = 1000

    def current(self, name: str) -> Instance | None:
        items = self.instances.get(name, [])
        usable = [i for i in items if i.usable]
        return (usable or items or [None])[-1]

    def find(self, name: str, instance: int) -> Instance | None:
        return next((i for i in self.instances.get(name, []) if i.id == instance), None)

    def created(self, instance: int) -> str:
        """The recorded creation time of an instance (the ledger names an instance by id and time)."""
        found = next((i for items in self.instances.values() for i in items if i.id == instance), None)
        return "2026-01-01T00:00:00Z" if found is None else found.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")

    def ledger_object(self) -> Ledger:
        return Ledger([LedgerRecord(consumer=k, token=k, token_id=str(v[0]), token_created_at=self.created(v[0]),
                                    fingerprint=v[1], delivered_at="2026-11-22T12:00:00Z", verified=True)
                       for k, v in sorted(self.ledger.items())])


def readable(c: Any) -> bool:
    return isinstance(c, GitLabCiVariable) and not c.hidden


def live_token(token: Token, inst: Instance) -> LiveToken:
    src = token.source
    owned = isinstance(src, GitLabPipelineTrigger)  # our own triggers show their full value
    return LiveToken(id=str(inst.id), name=getattr(src, "name", None) or getattr(src, "description", "x"),
                     where="model", created_at=inst.created_at, expires_at=inst.expires_at, revoked=inst.revoked,
                     active=inst.usable or inst.revoked, scopes=inst.scopes, access_level=inst.access_level,
                     owned=True if owned else None, fingerprint=fingerprint(inst.id) if owned else None)


def observe(inventory: Inventory, world: World, ledger: Ledger) -> Observed:
    sources, consumers = {}, {}
    for name, token in inventory.tokens.items():
        current = world.current(name)
        others = [i for i in world.instances.get(name, []) if i.usable and current is not None and i.id != current.id]
        cur_live = live_token(token, current) if current else None
        sources[name] = SourceObservation(token=name, identity=token.source.identity, current=cur_live,
                                          others=tuple(live_token(token, i) for i in others))
        identifies = source_kind(token.source.kind).identifies_values
        for c in token.consumers:
            held = world.held.get(c.identity)
            base = {"identity": c.identity, "token": name, "readable": readable(c),
                    "attributes": dict(world.attributes.get(c.identity, {}))}
            if held is None:
                consumers[c.identity] = ConsumerObservation(**{**base, "attributes": {}}, state="missing", exists=False,
                                                            details={"creatable": True})
                continue
            if not readable(c):
                consumers[c.identity] = ConsumerObservation(**base, state="unverifiable", live_id="1")
                continue
            fp = fingerprint(held)
            obs = ConsumerObservation(**base, state="unverifiable", live_id="1", fingerprint=fp)
            record = ledger.get(c.identity)
            if record is not None and record.fingerprint == fp and record_is_of(record, cur_live):
                obs = replace(obs, holds_token_id=cur_live.id, by_ledger=True)
            elif identifies:
                inst = world.find(name, held)
                if inst is not None and inst.usable:
                    obs = replace(obs, holds_token_id=str(inst.id))
                else:
                    obs = replace(obs, holds_invalid=True)
            consumers[c.identity] = obs
    return Observed(observed_at=NOW, sources=sources, consumers=consumers)


def apply(inventory: Inventory, world: World, result: Plan) -> World:
    """Execute `result` on a copy of `world`, as apply promises to."""
    w = World(instances={k: [replace(i) for i in v] for k, v in world.instances.items()}, held=dict(world.held),
              attributes={k: dict(v) for k, v in world.attributes.items()}, ledger=dict(world.ledger),
              next_id=world.next_id)
    for tp in result.tokens:
        assert not tp.blocked
        token = inventory.tokens[tp.name]
        old = w.current(tp.name)
        items = w.instances.setdefault(tp.name, [])
        if tp.action == "revoke":
            for inst in items:
                inst.revoked = True
            continue
        new = None
        if tp.action in ("create", "rotate"):
            w.next_id += 1
            src = token.source
            new = Instance(id=w.next_id, created_at=NOW, expires_at=NOW.date() + timedelta(days=365),
                           scopes=tuple(sorted(getattr(src, "scopes", ()))), access_level=getattr(src, "access_level", None))
            items.append(new)
        for cp in tp.consumers:
            if cp.action == "none":
                continue
            c = next(c for c in token.consumers if c.identity == cp.identity)
            if cp.value is not None:
                value = new.id if cp.value == "new" else int(tp.live["id"])  # type: ignore[union-attr,index]
                w.held[cp.identity] = value
                w.ledger[cp.identity] = (value, fingerprint(value))
            w.attributes[cp.identity] = consumer_kind(c.kind).desired_attributes(c)
        if new is not None and old is not None:
            old.revoked = True  # rotate revokes at once; overlap revokes once delivered
        for inst in items:
            if str(inst.id) in tp.orphans:
                inst.revoked = True
    return w


# --- generators --------------------------------------------------------------------------------


SCOPES = st.sampled_from([("api",), ("read_api",), ("api", "read_api")])


@st.composite
def sources(draw: Any, n: int) -> Any:
    kind = draw(st.sampled_from(["trigger", "project_token", "pat", "oauth"]))
    if kind == "trigger":
        return GitLabPipelineTrigger(provider="gl", project="g/p", description=f"trigger {n}", pos=at(5))
    if kind == "project_token":
        return GitLabProjectAccessToken(provider="gl", project="g/p", name=f"bot {n}", scopes=draw(SCOPES),
                                        access_level=draw(st.sampled_from([30, 40])),
                                        strategy=draw(st.sampled_from(["in_place", "overlap"])), pos=at(5))
    if kind == "pat":
        return GitLabPersonalAccessToken(provider="gl", name=f"pat {n}", scopes=draw(SCOPES), pos=at(5))
    return ZendeskOAuthToken(provider="zd", client=f"client{n}", scopes=("read", "write"), pos=at(5))


@st.composite
def consumers(draw: Any, n: int) -> tuple[Any, ...]:
    out = []
    for i in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["variable", "hidden_variable", "app_setting", "zendesk_webhook", "gitlab_webhook"]))
        common = {"pos": at(20 + i)}
        if kind in ("variable", "hidden_variable"):
            out.append(GitLabCiVariable(provider="gl", project="g/p", key=f"T{n}_{i}", masked=draw(st.sampled_from([None, True])),
                                        protected=draw(st.sampled_from([None, True, False])),
                                        hidden=True if kind == "hidden_variable" else None, **common))
        elif kind == "app_setting":
            out.append(ZendeskAppSetting(provider="zd", app=f"App {n}", setting=f"s{i}", **common))
        elif kind == "zendesk_webhook":
            out.append(ZendeskWebhook(provider="zd", webhook=f"hook {n}-{i}",
                                      authentication=ZendeskWebhookAuth(type="bearer_token"), **common))
        else:
            out.append(GitLabWebhook(provider="gl", project="g/p", hook=f"https://h.example/{n}/{i}",
                                     target=WebhookSecretField(field="token"), mode="update", **common))
    return tuple(out)


@st.composite
def worlds(draw: Any) -> tuple[Inventory, World]:
    tokens: dict[str, Token] = {}
    instances: dict[str, list[Instance]] = {}
    held: dict[str, int | None] = {}
    attributes: dict[str, dict[str, Any]] = {}
    ledger: dict[str, tuple[int, str]] = {}
    next_id = 1
    for n in range(draw(st.integers(1, 4))):
        src = draw(sources(n))
        rotation = Rotation(rotate_before=timedelta(days=draw(st.sampled_from([7, 21, 60]))),
                            max_age=draw(st.sampled_from([None, timedelta(days=90), timedelta(days=400)])),
                            not_before=draw(st.sampled_from([None, date(2026, 1, 1), NOW.date()])), pos=at(9),
                            key_pos={k: at(10) for k in ("rotate_before", "max_age", "not_before", "lifetime")})
        name = f"token-{n}"
        cons = draw(consumers(n))
        tokens[name] = Token(name=name, source=src, consumers=cons, rotation=rotation, pos=at(3))
        # live instances: none, or a few (older ones maybe revoked; the last may be expired)
        count = draw(st.integers(1 if isinstance(src, GitLabPersonalAccessToken) else 0, 3))
        items = []
        for k in range(count):
            next_id += 1
            age = draw(st.integers(1, 500))
            expires = None if isinstance(src, GitLabPipelineTrigger | ZendeskOAuthToken) else (
                NOW.date() + timedelta(days=draw(st.integers(-5, 400))))
            items.append(Instance(id=next_id, created_at=NOW - timedelta(days=age), expires_at=expires,
                                  scopes=tuple(sorted(getattr(src, "scopes", ()))) if draw(st.booleans())
                                  else ("read_api",),
                                  access_level=getattr(src, "access_level", None),
                                  revoked=k < count - 1 and draw(st.booleans())))
        if isinstance(src, GitLabPersonalAccessToken):
            items[-1].revoked = False  # a PAT cannot be created by API: the model keeps one
        instances[name] = items
        ids = [i.id for i in items]
        for c in cons:
            choice = draw(st.sampled_from(["current", "old", "foreign", "missing"]))
            if choice == "missing" and isinstance(c, GitLabCiVariable):
                held[c.identity] = None
                continue
            value = (ids[-1] if choice == "current" and ids else ids[0] if choice == "old" and ids else FOREIGN)
            held[c.identity] = value
            wanted = consumer_kind(c.kind).desired_attributes(c)
            attributes[c.identity] = wanted if draw(st.booleans()) else {k: None for k in wanted}
            if isinstance(c, GitLabCiVariable) and c.hidden:
                attributes[c.identity] = {**attributes[c.identity], "hidden": True, "masked": c.masked}
            if draw(st.booleans()) and value != FOREIGN:
                ledger[c.identity] = (value, fingerprint(value))
    inventory = Inventory(providers=PROVIDERS, tokens=tokens, digest="sha256:model")
    return inventory, World(instances=instances, held=held, attributes=attributes, ledger=ledger, next_id=next_id)


# --- properties --------------------------------------------------------------------------------


@SETTINGS
@given(worlds())
def test_applying_the_plan_to_the_model_converges_in_one_step(case: tuple[Inventory, World]):
    inventory, world = case
    ledger = world.ledger_object()
    first = plan(inventory, observe(inventory, world, ledger), ledger, NOW, escrow_available=True)
    assume(not first.errors)
    after = apply(inventory, world, first)
    ledger = after.ledger_object()
    second = plan(inventory, observe(inventory, after, ledger), ledger, NOW, escrow_available=True)
    left = [(t.name, t.action, [(c.identity, c.state, c.action) for c in t.consumers if c.action != "none"], t.orphans)
            for t in second.tokens if t.changes]
    assert not second.has_changes, left
    assert not second.errors
    # and nothing was rotated twice: every token has at most one new instance
    for name in inventory.tokens:
        assert len(after.instances.get(name, [])) - len(world.instances.get(name, [])) <= 1


@SETTINGS
@given(worlds())
def test_planning_is_deterministic_whatever_the_order_of_its_input(case: tuple[Inventory, World]):
    inventory, world = case
    ledger = world.ledger_object()
    observed = observe(inventory, world, ledger)
    once = plan(inventory, observed, ledger, NOW, escrow_available=True).dumps()
    again = plan(inventory, observed, ledger, NOW, escrow_available=True).dumps()
    shuffled_inventory = replace(inventory, tokens=dict(reversed(list(inventory.tokens.items()))))
    shuffled_observed = replace(observed, sources=dict(reversed(list(observed.sources.items()))),
                                consumers=dict(reversed(list(observed.consumers.items()))))
    reordered = plan(shuffled_inventory, shuffled_observed, ledger, NOW.astimezone(), escrow_available=True).dumps()
    assert once == again == reordered
    assert Plan.from_json(__import__("json").loads(once)).dumps() == once


@SETTINGS
@given(worlds())
def test_a_targeted_plan_is_the_full_plan_cut_down_to_its_target(case: tuple[Inventory, World]):
    inventory, world = case
    ledger = world.ledger_object()
    observed = observe(inventory, world, ledger)
    full = {t.name: t for t in plan(inventory, observed, ledger, NOW, escrow_available=True).tokens}
    for name in inventory.tokens:
        targeted = plan(inventory, observed, ledger, NOW, targets={name}, escrow_available=True)
        assert targeted.tokens == (full[name],)
        assert targeted.targets == (name,) and not targeted.findings  # unmanaged tokens: only in full plans
