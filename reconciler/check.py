"""`reconcile check`: the Token Checker report, and its GitLab issue.

The report (`build_report`) is made from what plan already knows (the observation and the plan:
is a token due, will the next apply rotate it, why not) and from the scan of the discovery scopes
(`reconciler.scopes`: unmanaged tokens). One `Item` per token that needs attention, keyed by a
stable `key` (`token:<name>` for inventory tokens, `live:<provider>:<family>:<id>` for others):

- `expiring`: an inventory token that expires within the window; `next_apply` says whether the
  next scheduled apply rotates it, and if not, why not;
- `expired`: an inventory token that is expired, revoked, inactive or missing;
- `unmanaged`: a live token in a discovery scope that no inventory token names (expiry, last use),
  with the inventory YAML that adopts it and the same with `state: absent` that revokes it
  (`Item.ways_out`, from the `source:` its kind proposes);
- `api_token`: every Zendesk API token still in use (inventory or not): days to the 2027-04-30
  cutoff, the 30-day inactivity deactivation, and the inventory change that replaces it with an
  OAuth token;
- `oauth_client`: a local Zendesk OAuth client whose live tokens never expire, while 2027-04-01
  (expiring tokens enforced) is ahead (`DeadlineSource` kinds, from the lists observe and the scan
  fetched); the timestamp of an expiry Zendesk gives to the second is kept, and shown to the minute;
- `credential`: the provider credential reconcile itself uses, when it expires within the window.

`sync_issue` keeps one open GitLab issue (found by label and exact title) in step with the report:
one checklist item per `Item`, with a hidden marker `<!-- reconcile:item:KEY live:ID -->` so that
re-runs keep a ticked box ticked, tick resolved items with a note, add new ones, and close the
issue when nothing is left; a run that changes the items adds one comment on what changed
(`change_note`). Through python-gitlab (`project.issues`, `issue.notes`), with the provider credential.
No value is ever part of a report: only names, ids, dates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TextIO
from urllib.parse import quote

import yaml

from reconciler import markdown as md
from reconciler.errors import ReconcileError
from reconciler.inventory.durations import expires_words
from reconciler.inventory.model import CheckConfig, Inventory, Token
from reconciler.kinds import ListKey, Supplied, noun, source_kind
from reconciler.kinds._discovery import (
    Sunset,
    deadline_sources,
    declared_expiry,
    display_name,
    id_family,
    is_own_credential,
    observed_live,
    sunset,
)
from reconciler.observed import LiveToken, Observed, plain, to_iso
from reconciler.plan import Plan, TokenPlan
from reconciler.plan_model import days_left, days_text, time_left
from reconciler.scopes import ScopeScan, managed_keys

if TYPE_CHECKING:
    from reconciler.engine import Session

Category = Literal["expired", "expiring", "api_token", "oauth_client", "unmanaged", "credential"]
CATEGORY_TITLES: dict[str, str] = {
    "expired": "expired, revoked or missing",
    "expiring": "expiring soon",
    "api_token": "Zendesk API tokens (stop working on 2027-04-30)",
    "oauth_client": "Zendesk OAuth clients with tokens that never expire (expiring tokens required from 2027-04-01)",
    "unmanaged": "unmanaged (live, not in the inventory)",
    "credential": "reconcile's own credentials",
}
CATEGORY_ORDER = list(CATEGORY_TITLES)
# Used within this many days: "in use". GitLab records a token's use at most every ten minutes
# and Zendesk an API token's once a day, so a month tells a living token from a forgotten one.
IN_USE_DAYS = 30

@dataclass(frozen=True, kw_only=True)
class ApiTokenRisk:
    days_to_cutoff: int
    idle_days: int | None  # days since last use
    deactivates_in: int | None  # days until the 30-day inactivity deactivation (<= 0: due now)
    replacement: str  # inventory YAML of the replacement
    cutoff: date  # when it stops working (said in the facts; the JSON has days_to_cutoff)


@dataclass(frozen=True, kw_only=True)
class Item:
    key: str
    category: Category
    provider: str  # provider name ("" for external sources)
    kind: str  # source kind
    name: str  # live name (token name, trigger description, API-token description, OAuth client)
    token: str | None = None  # inventory token name, when managed
    live_id: str | None = None
    where: str = ""
    owner: str | None = None
    state: str = "active"  # active | expired | revoked | inactive | missing
    expires_at: date | None = None  # a whole date, or a time where the provider gives one
    days_left: int | None = None
    minutes_left: int | None = None  # an expiry given as a time: whole minutes left (shown in the unit that fits)
    expiring: str = ""  # what expires when it is not the token itself ("refresh token")
    thing: str = ""  # what the item is when not one token of its kind ("OAuth client")
    last_used_at: datetime | None = None
    next_apply: str | None = None  # managed: what the next apply does about it, and why
    rotates: bool | None = None  # managed: the next apply rotates it
    api_token: ApiTokenRisk | None = None
    at: str = ""  # inventory position
    idle_days: int | None = None  # days since last use
    declaration: dict[str, Any] | None = None  # unmanaged: the inventory `source:` that would declare it
    suggested_name: str | None = None  # unmanaged: a free inventory name for it

    @property
    def title(self) -> str:
        ident = f" #{self.live_id}" if self.live_id else ""
        head = f"`{self.token}`: " if self.token else ""
        return f"{head}{self.thing or noun(self.kind)} {self.name!r}{ident}"

    def facts(self) -> str:
        """One line of facts (never a value)."""
        parts = [self.where] if self.where else []
        if self.state != "active":
            parts.append(self.state)
        expiry = self.expiry_fact()
        if expiry:
            parts.append(expiry)
        if not self.thing:
            parts.append(self.use())
        if self.api_token is not None:
            risk = self.api_token
            parts.append(f"stops working on {risk.cutoff} ({risk.days_to_cutoff} days left)")
            if risk.deactivates_in is not None:
                parts.append(f"deactivated for inactivity in {max(risk.deactivates_in, 0)} days unless used"
                             if risk.deactivates_in > 0 else
                             f"unused for {risk.idle_days} days: Zendesk deactivates it now")
        return "; ".join(parts)

    def use(self) -> str:
        """Whether the token is in use, by its last use."""
        if self.last_used_at is None:
            return "never used"
        ago = {0: "today", 1: "yesterday"}.get(self.idle_days or 0, f"{self.idle_days} days ago")
        state = "in use" if (self.idle_days or 0) <= IN_USE_DAYS else "not in use"
        return f"{state}: last used {self.last_used_at.date()} ({ago})"

    def ways_out(self) -> tuple[str, str] | None:
        """(adopt, revoke): the inventory YAML that declares this unmanaged token, and the same
        with `state: absent`, which makes the next apply revoke it."""
        if self.declaration is None:
            return None
        name = self.suggested_name or self.live_id or "token"
        entry: dict[str, Any] = {"description": f"{noun(self.kind)} {self.name!r}, {self.where}"}
        if self.owner:
            entry["owner"] = self.owner
        entry["source"] = self.declaration

        def dump(extra: dict[str, Any]) -> str:
            return yaml.safe_dump({"tokens": {name: {**entry, **extra}}}, sort_keys=False,
                                  default_flow_style=False, width=120, allow_unicode=True)

        return dump({}), dump({"state": "absent"})

    def expiry_fact(self) -> str:
        """When it expires: to the minute where the provider gives a time, else the date."""
        if self.minutes_left is not None:
            return f"{self.expiring}{expires_words(timedelta(minutes=self.minutes_left))}".strip()
        if self.expiring and self.expires_at is not None:
            return f"{self.expiring} {self.expires_at} ({self.days_left} days left)"
        if self.expires_at is not None:
            if self.days_left is not None and self.days_left <= 0:
                return f"expired {self.expires_at}"
            return f"expires {self.expires_at} ({self.days_left} days left)"
        return "no expiry" if self.state == "active" else ""

    def to_json(self) -> dict[str, Any]:
        out = plain(asdict(self))
        if out["api_token"] is not None:
            del out["api_token"]["cutoff"]
        out["title"] = self.title
        out["in_use"] = self.use()
        ways = self.ways_out()
        if ways is not None:
            out["adopt_yaml"], out["revoke_yaml"] = ways
        for key in ("declaration", "suggested_name"):
            del out[key]
        return out


@dataclass(frozen=True, kw_only=True)
class Report:
    generated_at: datetime
    within_days: int
    items: tuple[Item, ...]
    providers: dict[str, str] = field(default_factory=dict)  # name -> title
    scan_errors: tuple[str, ...] = ()
    checked: int = 0  # inventory tokens looked at
    live_ids: dict[str, str | None] = field(default_factory=dict)  # inventory token -> current live id
    managed_live: dict[str, str] = field(default_factory=dict)  # "provider:family:id" -> token name

    @property
    def needs_attention(self) -> bool:
        return bool(self.items)

    def counts(self) -> dict[str, int]:
        return {c: sum(1 for i in self.items if i.category == c) for c in CATEGORY_ORDER}

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_at": to_iso(self.generated_at),
            "within_days": self.within_days,
            "needs_attention": self.needs_attention,
            "counts": self.counts(),
            "checked_tokens": self.checked,
            "items": [i.to_json() for i in self.items],
            "scan_errors": list(self.scan_errors),
        }


# --- building the report ---------------------------------------------------------------------------


def build_report(inventory: Inventory, observed: Observed, plan: Plan, scan: ScopeScan | None, now: datetime,
                 within: timedelta, lists: Mapping[ListKey, Any] | None = None) -> Report:
    """The report: pure, from what observe (its `lists`), plan and the scope scan saw."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    items, live_ids = _managed_items(inventory, observed, plan, now, within)
    managed = managed_keys(observed, inventory)
    if scan is not None:
        items += _scanned_items(scan, managed, now, within, set(inventory.tokens))
    items += _deadline_items({**(lists or {}), **(scan.lists if scan is not None else {})}, now)
    items += _outside_scopes(observed, scan, {(i.provider, i.live_id, i.name) for i in items}, now)
    items = [replace(i, idle_days=(now - i.last_used_at).days) if i.last_used_at else i for i in items]
    items.sort(key=lambda i: (CATEGORY_ORDER.index(i.category), i.provider, i.days_left if i.days_left is not None
                              else 10**6, i.key))
    return Report(
        generated_at=now, within_days=within.days, items=tuple(items),
        providers={n: p.display for n, p in inventory.providers.items()},
        scan_errors=tuple(scan.errors if scan is not None else ()), checked=len(inventory.tokens),
        live_ids=live_ids, managed_live={f"{p}:{f}:{i}": n for (p, f, i), n in managed.items()},
    )


def _managed_items(inventory: Inventory, observed: Observed, plan: Plan, now: datetime,
                   within: timedelta) -> tuple[list[Item], dict[str, str | None]]:
    """The inventory tokens that need attention, and the live id of each inventory token."""
    plans = {t.name: t for t in plan.tokens}
    items: list[Item] = []
    live_ids: dict[str, str | None] = {}
    for name in sorted(inventory.tokens):
        token = inventory.tokens[name]
        sobs = observed.sources.get(name)
        live = sobs.current if sobs else None
        live_ids[name] = live.id if live else None
        tplan = plans.get(name)
        if token.state == "absent" or tplan is None or (sobs is not None and sobs.error):
            continue
        item = _managed_item(token, live, tplan, now, within)
        if item is not None:
            items.append(item)
    return items, live_ids


def _scanned_items(scan: ScopeScan, managed: Mapping[tuple[str, str, str], str], now: datetime,
                   within: timedelta, taken: set[str]) -> list[Item]:
    """The live tokens of the discovery scopes no inventory token names, and the providers'
    own credentials when they expire soon."""
    items: list[Item] = []
    seen: set[tuple[str, str, str]] = set()
    for st in scan.tokens:
        if st.family_key in managed or st.family_key in seen:
            continue
        seen.add(st.family_key)
        item: Item | None = None
        if is_own_credential(scan.credential_ids, st.provider, st.live.id, st.can_be_credential):
            item = _credential_item(st.provider, st.kind, st.live, now, within)
        elif st.live.usable and not _expired(st.live, now):
            item = _unmanaged_item(st.provider, st.kind, st.live, now, owner=st.owner)
            if item.category == "unmanaged" and st.declaration:
                item = replace(item, declaration=st.declaration, suggested_name=_free_name(st.live, taken))
        if item is not None:
            items.append(item)
    return items


def _deadline_items(lists: Mapping[ListKey, Any], now: datetime) -> list[Item]:
    """What must change before a provider's date (local OAuth clients whose tokens never expire,
    before 2027-04-01), from every list observe and the scan fetched."""
    providers = sorted({key.provider for key in lists})
    items = []
    for kind in deadline_sources():
        for provider in providers:
            for d in kind.deadlines(provider, lists, now):
                items.append(Item(key=f"deadline:{d.key}", category="oauth_client", provider=d.provider,
                                  kind=getattr(kind, "kind", ""), name=d.name, where=d.provider,
                                  expires_at=d.cutoff, days_left=(d.cutoff - now.date()).days,
                                  expiring=d.what, thing=d.thing, next_apply=d.todo))
    return items


def _outside_scopes(observed: Observed, scan: ScopeScan | None, listed: set[tuple[str, str | None, str]],
                    now: datetime) -> list[Item]:
    """Unmanaged tokens plan saw in the lists of inventory tokens, outside the discovery scopes
    (observation has left out the providers' own credentials: `observe.not_own_credentials`)."""
    items: list[Item] = []
    for live in observed.unmanaged:
        provider = live.where.split(":", 1)[0]
        kind = observed.unmanaged_kinds.get(live)
        if kind is None or (provider, live.id, live.name) in listed or not live.usable or _expired(live, now):
            continue
        items.append(_unmanaged_item(provider, kind, live, now, owner=None))
        listed.add((provider, live.id, live.name))
    return items


def _free_name(live: LiveToken, taken: set[str]) -> str:
    """An inventory name for a live token that no inventory token (nor an earlier item) has."""
    from reconciler.discover import inventory_name

    name = inventory_name(live.name)
    if name in taken:
        name = f"{name}-{live.id}"
    taken.add(name)
    return name


def _expired(live: LiveToken, now: datetime) -> bool:
    return live.expires_at is not None and time_left(live.expires_at, now) <= timedelta(0)


def _days_left(expires: date | None, now: datetime) -> int | None:
    return None if expires is None else days_left(expires, now)


def _minutes_left(expires: date | None, now: datetime) -> int | None:
    """Minutes to an expiry given as a time (None for a whole date: it is shown as the date)."""
    return int(time_left(expires, now).total_seconds() // 60) if isinstance(expires, datetime) else None


def _watched_expiry(live: LiveToken | None, src: Any) -> tuple[date | None, str]:
    """What check watches, and what it is called. A refreshable grant's access token expires
    every few minutes and each apply refreshes it: its refresh token is what must not lapse."""
    if live is not None and live.renewal_expires_at is not None:
        return live.renewal_expires_at, "refresh token "
    return (live.expires_at if live is not None else declared_expiry(src)), ""


def _managed_item(token: Token, live: LiveToken | None, tplan: TokenPlan, now: datetime,
                  within: timedelta) -> Item | None:
    src = token.source
    base: dict[str, Any] = {"key": f"token:{token.name}", "provider": src.provider or "", "kind": src.kind,
                            "token": token.name, "owner": token.owner, "at": tplan.at,
                            "name": str(display_name(src) or token.name)}
    retiring = sunset(src.kind)
    if retiring is not None:
        return _sunset_item(base, token, live, tplan, now, retiring)
    expires, expiring = _watched_expiry(live, src)
    days = _days_left(expires, now)
    left = None if expires is None else time_left(expires, now)
    state = _state(live, left, observed_live(src.kind))
    if state != "active":
        category: Category = "expired"
    elif left is not None and left <= within:
        category = "expiring"
    else:
        return None
    return Item(**base, category=category, live_id=live.id if live else None,
                where=live.where if live else ("not found" if observed_live(src.kind) else ""), state=state,
                expires_at=expires, days_left=days, minutes_left=_minutes_left(expires, now), expiring=expiring,
                last_used_at=live.last_used_at if live else None,
                next_apply=_next_apply(tplan, expires, now, token), rotates=_rotates(tplan))


def _state(live: LiveToken | None, left: timedelta | None, observed: bool) -> str:
    ended = left is not None and left <= timedelta(0)
    if live is None:
        return "missing" if observed else ("expired" if ended else "active")
    return ("revoked" if live.revoked else "inactive" if not live.active else "expired" if ended else "active")


def _sunset_item(base: dict[str, Any], token: Token, live: LiveToken | None, tplan: TokenPlan, now: datetime,
                 retiring: Sunset) -> Item:
    """A token of a kind its provider is retiring: every one needs replacing, whatever its expiry."""
    if live is None or not live.usable:
        return Item(**base, category="expired", state="missing" if live is None else "inactive",
                    live_id=live.id if live else None, next_apply=_next_apply(tplan, None, now, token),
                    rotates=False)
    return Item(**base, category="api_token", live_id=live.id, where=live.where,
                expires_at=live.expires_at, days_left=_days_left(live.expires_at, now),
                last_used_at=live.last_used_at, api_token=_api_risk(live, now, _replacement(tplan, token, retiring),
                                                                     retiring),
                next_apply=f"cannot rotate it: {retiring.why_kept}; replace it with {retiring.replaced_by} (below)",
                rotates=False)


def _rotates(tplan: TokenPlan) -> bool:
    return tplan.action in ("create", "rotate") and not tplan.blocked


def _next_apply(tplan: TokenPlan, expires: date | None, now: datetime, token: Token) -> str:
    """Whether the next apply renews the token, and why not."""
    if tplan.blocked:
        errors = "; ".join(f.message for f in tplan.findings if f.severity == "error")
        return f"will NOT {tplan.action if tplan.action != 'none' else 'renew'} it: {errors}"
    if tplan.action in ("create", "rotate"):
        verb = "creates a new one" if tplan.action == "create" else "rotates it"
        why = "; ".join(r.message for r in tplan.reasons)
        kind = source_kind(token.source.kind)
        if isinstance(kind, Supplied):
            return (f"{verb} only if a person supplies the new value at apply time, else leaves it waiting: "
                    f"{kind.how_to_supply(token.source)} ({why})")
        return f"{verb} ({tplan.strategy}): {why}"
    if tplan.strategy == "observe_only":
        return "cannot renew it: the tool only observes this kind"
    rotate_before = token.rotation.rotate_before
    if expires is not None and rotate_before is not None:
        return _not_yet(expires, rotate_before, now)
    return "does not rotate it: no rotation.rotate_before is set for it"


def _not_yet(expires: date, rotate_before: timedelta, now: datetime) -> str:
    """When the first apply renews a token that is not due yet (to the minute for a time)."""
    if isinstance(expires, datetime):
        at = expires - rotate_before
        return (f"not yet: rotate_before is {days_text(rotate_before)}, so the first apply at or after {to_iso(at)} "
                "renews it" if at > now else "does not rotate it")
    on = expires - rotate_before
    return (f"not yet: rotate_before is {rotate_before.days}d, so the first apply on or after {on} rotates it"
            if on > now.date() else "does not rotate it")


def _api_risk(live: LiveToken, now: datetime, replacement: str, retiring: Sunset) -> ApiTokenRisk:
    idle = (now - live.last_used_at).days if live.last_used_at else None
    deactivates = None if idle is None or retiring.inactivity_days is None else retiring.inactivity_days - idle
    return ApiTokenRisk(days_to_cutoff=(retiring.cutoff - now.date()).days, idle_days=idle,
                        deactivates_in=deactivates, replacement=replacement, cutoff=retiring.cutoff)


def _replacement(tplan: TokenPlan, token: Token, retiring: Sunset) -> str:
    """The planner's proposal for this token (its consumers carried over)."""
    for f in tplan.findings:
        if f.code == retiring.proposal_code and f.detail:
            return f.detail
    name = display_name(token.source)
    return retiring.replacement(str(token.source.provider), name if name is not None else token.name)


def _unmanaged_item(provider: str, kind: str, live: LiveToken, now: datetime, owner: str | None) -> Item:
    key = f"live:{provider}:{id_family(kind) or kind}:{live.id}"
    base: dict[str, Any] = {"key": key, "provider": provider, "kind": kind, "name": live.name, "live_id": live.id,
                            "where": live.where, "owner": owner, "expires_at": live.expires_at,
                            "days_left": _days_left(live.expires_at, now),
                            "minutes_left": _minutes_left(live.expires_at, now), "last_used_at": live.last_used_at}
    retiring = sunset(kind)
    if retiring is not None:
        return Item(**base, category="api_token",
                    api_token=_api_risk(live, now, retiring.replacement(provider, live.name), retiring),
                    next_apply=f"not in the inventory: replace it with {retiring.replaced_by} (below), or revoke it")
    return Item(**base, category="unmanaged",
                next_apply="not in the inventory: adopt it (declare it in the inventory) or revoke it "
                           "(declare it with state absent)")


def _credential_item(provider: str, kind: str, live: LiveToken, now: datetime, within: timedelta) -> Item | None:
    days = _days_left(live.expires_at, now)
    if days is None or live.expires_at is None or time_left(live.expires_at, now) > within:
        return None
    return Item(key=f"credential:{provider}", category="credential", provider=provider, kind=kind, name=live.name,
                live_id=live.id, where=live.where, expires_at=live.expires_at, days_left=days,
                minutes_left=_minutes_left(live.expires_at, now), state="expired" if _expired(live, now) else "active", last_used_at=live.last_used_at,
                next_apply="reconcile's own credential for this provider: renew it and update its CI/CD variable")


# --- rendering -------------------------------------------------------------------------------------


def summary_line(report: Report) -> str:
    c = report.counts()
    parts = [f"{c[k]} {CATEGORY_TITLES[k].split(' (')[0]}" for k in CATEGORY_ORDER if c[k]]
    if not report.needs_attention:
        return f"Nothing needs attention ({report.checked} inventory tokens checked, window {report.within_days} days)."
    return f"Needs attention: {', '.join(parts)} (window {report.within_days} days)."


def _by_provider(report: Report) -> list[tuple[str, list[Item]]]:
    names = sorted({i.provider for i in report.items})
    return [(n, [i for i in report.items if i.provider == n]) for n in names]


def _provider_title(report: Report, name: str) -> str:
    if not name:
        return "External credentials"
    title = report.providers.get(name, name)
    return f"{title} ({name})" if title != name else name


def render_text(report: Report) -> str:
    lines = [f"Token check of {report.generated_at.date()} (window: {report.within_days} days)", ""]
    for provider, items in _by_provider(report):
        lines.append(_provider_title(report, provider))
        for category in CATEGORY_ORDER:
            group = [i for i in items if i.category == category]
            if not group:
                continue
            lines.append(f"  {CATEGORY_TITLES[category]}:")
            for item in group:
                owner = f"  (owner {item.owner})" if item.owner else ""
                lines.append(f"    ! {item.title}{owner}")
                lines.append(f"        {item.facts()}")
                if item.next_apply:
                    lines.append(f"        next apply: {item.next_apply}")
                if item.api_token is not None:
                    lines.append("        replacement:")
                    lines += [f"          {line}" for line in item.api_token.replacement.rstrip().splitlines()]
                if item.at:
                    lines.append(f"        at {item.at}")
        lines.append("")
    for error in report.scan_errors:
        lines.append(f"warning: could not scan {error}")
    if report.scan_errors:
        lines.append("")
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return md.inline(text)


def _title_markdown(item: Item) -> str:
    ident = f" #{md.inline(item.live_id)}" if item.live_id else ""
    head = f"{md.code(item.token)}: " if item.token else ""
    return f"{head}{md.inline(noun(item.kind))} {md.inline(repr(item.name))}{ident}"


def item_markdown(item: Item) -> str:
    """One line of markdown for an item (the issue's checklist text and the markdown report)."""
    owner = f" · owner {_md(item.owner)}" if item.owner else ""
    nxt = f" · next apply: {_md(item.next_apply)}" if item.next_apply else ""
    facts = _md(item.facts())
    if item.where:  # in code, so "user @self" mentions nobody
        facts = facts.replace(_md(item.where), md.code(item.where), 1)
    return f"**{_verb(item)}** {_title_markdown(item)} — {facts}{nxt}{owner}"


def _verb(item: Item) -> str:
    return {"api_token": "Replace", "credential": "Renew", "oauth_client": "Adopt the refresh flow for"}.get(
        item.category, "Rotate or revoke")


def render_markdown(report: Report) -> str:
    lines = [f"### Token check of {report.generated_at.date()}", "", summary_line(report), ""]
    for provider, items in _by_provider(report):
        lines += [f"#### {_md(_provider_title(report, provider))}", ""]
        for category in CATEGORY_ORDER:
            group = [i for i in items if i.category == category]
            if not group:
                continue
            lines += [f"**{CATEGORY_TITLES[category]}**", ""]
            for i in group:
                lines += [f"- {item_markdown(i)}", *ways_out_md(i, "  ")]
            lines.append("")
            lines += _replacements_md(group)
    if report.scan_errors:
        lines += ["**could not scan**", ""] + [f"- {_md(e)}" for e in report.scan_errors] + [""]
    return "\n".join(lines) + "\n"


def ways_out_md(item: Item, indent: str = "") -> list[str]:
    """The two ways out of an unmanaged item as inventory YAML to paste, folded under it."""
    ways = item.ways_out()
    if ways is None:
        return []
    adopt, revoke = ways
    lines = ["<details><summary>Inventory YAML: adopt it, or revoke it</summary>", "",
             "Adopt it: reconcile then renews it and delivers it to the consumers you add.", "",
             *md.fenced(adopt.rstrip().splitlines(), "yaml"), "",
             "Or revoke it: the next apply revokes it (remove the entry afterwards).", "",
             *md.fenced(revoke.rstrip().splitlines(), "yaml"), "", "</details>"]
    return [f"{indent}{line}" if line else "" for line in lines]


def _replacements_md(items: Iterable[Item]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item.api_token is not None:
            out += [f"<details><summary>OAuth replacement for {md.html(item.title)}</summary>", "",
                    *md.fenced(item.api_token.replacement.rstrip().splitlines(), "yaml"), "", "</details>", ""]
    return out


def render_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2) + "\n"


def render(report: Report, fmt: str, stream: TextIO | None = None) -> str:
    text = {"text": render_text, "markdown": render_markdown, "json": render_json}[fmt](report)
    if stream is not None:
        stream.write(text)
    return text


# --- the GitLab issue ------------------------------------------------------------------------------

ISSUE_MARKER = "<!-- reconcile:check -->"
_ITEM = re.compile(r"^- \[(?P<box>[ xX])\] (?P<text>.*?) <!-- reconcile:item:(?P<key>\S+)(?P<attrs>(?: \S+)*) -->\s*$")
_RESOLVED_NOTE = re.compile(r" — \*resolved: [^*]*\*$")
_LAST_RUN = re.compile(r"^Last run: (\d{4}-\d{2}-\d{2})\.", re.MULTILINE)


@dataclass(frozen=True)
class IssueItem:
    key: str
    checked: bool
    text: str
    live_id: str | None = None
    resolved: bool = False
    category: str | None = None  # None: written by a release that did not record it

    def line(self) -> str:
        attrs = ((f" live:{self.live_id}" if self.live_id else "") + (f" cat:{self.category}" if self.category else "")
                 + (" resolved" if self.resolved else ""))
        return f"- [{'x' if self.checked else ' '}] {self.text} <!-- reconcile:item:{quote(self.key, safe=':/@._-')}{attrs} -->"

    @property
    def head(self) -> str:
        """The item's title, without its facts (for the comment on what changed)."""
        return md.one_line(_RESOLVED_NOTE.sub("", self.text).split(" — ", 1)[0])


def parse_items(description: str) -> dict[str, IssueItem]:
    """The checklist items of an issue body written by `sync_issue`, by key."""
    from urllib.parse import unquote

    found: dict[str, IssueItem] = {}
    for line in (description or "").splitlines():
        m = _ITEM.match(line)
        if not m:
            continue
        attrs = dict(a.partition(":")[::2] for a in m.group("attrs").split())  # "live:4" -> live: 4
        key = unquote(m.group("key"))
        found[key] = IssueItem(key=key, checked=m.group("box") != " ", text=m.group("text"), live_id=attrs.get("live"),
                               resolved="resolved" in attrs, category=attrs.get("cat"))
    return found


def _resolution(old: IssueItem, report: Report) -> str:
    """Why an item of the previous run is gone."""
    day = report.generated_at.date()
    if old.key.startswith("token:"):
        name = old.key.split(":", 1)[1]
        if name not in report.live_ids:
            return f"no longer in the inventory on {day}"
        now_id = report.live_ids[name]
        if old.live_id and now_id and now_id != old.live_id:
            return f"rotated on or before {day} (now #{now_id})"
        return f"no longer needs attention on {day}"
    if old.key.startswith("live:"):
        managed_by = report.managed_live.get(old.key.split(":", 1)[1])
        if managed_by:
            return f"now managed in the inventory as {md.code(managed_by)} on {day}"
        return f"revoked, expired or gone on {day}"
    return f"resolved on {day}"


def issue_body(report: Report, previous: str | None, config: CheckConfig) -> tuple[str, int, int]:
    """(description, open items, items resolved by this run) from the report and the previous body."""
    old = parse_items(previous or "")
    current: list[IssueItem] = []
    for item in report.items:
        before = old.get(item.key)
        keep_tick = before is not None and before.checked and not before.resolved
        current.append(IssueItem(key=item.key, checked=keep_tick, text=item_markdown(item), live_id=item.live_id,
                                 category=item.category))
    keys = {i.key for i in current}
    resolved: list[IssueItem] = []
    newly = 0
    for key, before in old.items():
        if key in keys:
            continue
        if before.resolved:
            resolved.append(before)
            continue
        text = _RESOLVED_NOTE.sub("", before.text)
        resolved.append(IssueItem(key=key, checked=True, text=f"{text} — *resolved: {_resolution(before, report)}*",
                                  live_id=before.live_id, resolved=True, category=before.category))
        newly += 1
    lines = [ISSUE_MARKER,
             f"Written by `reconcile check` (tokens expiring within {report.within_days} days, unmanaged tokens, "
             "Zendesk API tokens). Tick an item when you have handled it: the next run keeps your ticks, ticks "
             "what it finds resolved, adds what is new, comments on what changed, and closes this issue when "
             "nothing is left. An unmanaged token offers the inventory YAML that adopts it or revokes it.", "",
             f"Last run: {report.generated_at.date()}. {summary_line(report)}", ""]
    if current:
        lines += ["## Needs attention", ""]
        for entry, item in zip(current, report.items, strict=True):
            lines += [entry.line(), *ways_out_md(item, "  ")]
        lines.append("")
        lines += _replacements_md(report.items)
    if resolved:
        lines += ["## Resolved", ""] + [i.line() for i in resolved] + [""]
    if report.scan_errors:
        lines += ["## Could not scan", ""] + [f"- {_md(e)}" for e in report.scan_errors] + [""]
    return "\n".join(lines), len(current), newly


def change_note(report: Report, previous: str) -> str | None:
    """The comment on what changed since the run that wrote `previous`: items new, resolved, or
    in another category or live token; None when none did (the days left counting down, a box a
    person ticked are no change)."""
    old = {k: i for k, i in parse_items(previous).items() if not i.resolved}
    lines: list[str] = []
    for item in report.items:
        before = old.get(item.key)
        if before is None:
            lines.append(f"- new: {item_markdown(item)}")
        elif before.category and before.category != item.category:
            lines.append(f"- now {CATEGORY_TITLES[item.category]} (was {CATEGORY_TITLES.get(before.category, '?')}):"
                         f" {_title_markdown(item)}")
        elif before.live_id and item.live_id and before.live_id != item.live_id:
            lines.append(f"- now #{md.inline(item.live_id)} (was #{md.inline(before.live_id)}): {_title_markdown(item)}")
    keys = {i.key for i in report.items}
    lines += [f"- resolved: {before.head} — {_resolution(before, report)}" for key, before in old.items()
              if key not in keys]
    if not lines:
        return None
    last = _LAST_RUN.search(previous)
    since = f"the run of {last.group(1)}" if last else "the last run"
    return "\n".join([f"Changes since {since}, found by `reconcile check` on {report.generated_at.date()}:", "",
                      *lines, "", summary_line(report)]) + "\n"


@dataclass(frozen=True)
class IssueOutcome:
    action: Literal["created", "updated", "unchanged", "closed", "none"]
    iid: int | None = None
    web_url: str | None = None
    open_items: int = 0
    resolved_items: int = 0
    duplicates: tuple[int, ...] = ()
    commented: bool = False

    def describe(self) -> str:
        if self.action == "none":
            return "nothing needs attention and no issue is open: none created"
        where = f"#{self.iid}" + (f" ({self.web_url})" if self.web_url else "")
        extra = f"; {self.open_items} open, {self.resolved_items} newly resolved"
        note = "; commented on what changed" if self.commented else ""
        dup = (f"; other open issues with the same title and label: {', '.join('#' + str(d) for d in self.duplicates)}"
               if self.duplicates else "")
        return f"issue {where} {self.action}{extra}{note}{dup}"


def find_issue(project: Any, config: CheckConfig) -> tuple[Any | None, tuple[int, ...]]:
    """The open issue of the previous run (label + exact title; the oldest if several) and the iids
    of any others."""
    found = [i for i in project.issues.list(state="opened", labels=[config.issue_label], search=config.issue_title,
                                            get_all=True, per_page=100)
             if i.title == config.issue_title]
    found.sort(key=lambda i: i.iid)
    if not found:
        return None, ()
    return found[0], tuple(i.iid for i in found[1:])


def sync_issue(gl: Any, project_path: str, report: Report, config: CheckConfig) -> IssueOutcome:
    """Create, update or close the one open Token Checker issue in `project_path` (python-gitlab),
    with one comment on what changed when a run changes its items."""
    project = gl.projects.get(project_path, lazy=True)
    issue, duplicates = find_issue(project, config)
    if issue is None:
        if not report.needs_attention:
            return IssueOutcome("none")
        body, open_items, _ = issue_body(report, None, config)
        # Sent once: a retry after a lost answer would open a second issue. After an unclear
        # outcome the command fails, and the next run finds the issue by label and title.
        created = project.issues.create({"title": config.issue_title, "description": body,
                                         "labels": config.issue_label}, retry_transient_errors=False)
        return IssueOutcome("created", created.iid, getattr(created, "web_url", None), open_items)
    previous = issue.description or ""
    body, open_items, newly = issue_body(report, previous, config)
    if open_items and body == previous:
        return IssueOutcome("unchanged", issue.iid, getattr(issue, "web_url", None), open_items, 0, duplicates)
    issue.description = body
    if not open_items:
        issue.state_event = "close"
    issue.save()
    note = change_note(report, previous)
    if note is not None:
        # Sent once, after the description: a lost answer must not post the comment twice, and a
        # comment lost with a failed run leaves the description, which the next run compares with.
        issue.notes.create({"body": note}, retry_transient_errors=False)
    return IssueOutcome("closed" if not open_items else "updated", issue.iid, getattr(issue, "web_url", None),
                        open_items, newly, duplicates, commented=note is not None)


# --- the command's work ----------------------------------------------------------------------------


class CheckError(ReconcileError):
    """A problem the user fixes (one line, exit 1)."""


def run_check(session: Session, within: timedelta) -> Report:
    """Observe, plan and scan the discovery scopes of `session` (reconciler.engine), read-only."""
    from reconciler.pipeline import observe_and_plan
    from reconciler.scopes import provider_apis, scan_scopes, scope_providers

    inventory = session.inventory
    lists: dict[ListKey, Any] = {}
    observed, result = observe_and_plan(session, lists_out=lists)
    scan = None
    if scope_providers(inventory):
        apis = provider_apis(session.clients, scope_providers(inventory))
        scan = scan_scopes(inventory, apis)
    return build_report(inventory, observed, result, scan, session.now, within, lists)


def issue_target(inventory: Inventory, spec: str, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """`--issue [PROVIDER:]PROJECT` -> (GitLab provider name, project path).

    Without PROVIDER: the only GitLab provider; else the only one whose credential is set (in CI
    the state's provider often has none: the ledger goes through CI_JOB_TOKEN, which cannot
    create issues); else the state's provider.
    """
    from reconciler.inventory.model import GitLabProvider

    gitlab_providers = {n: p for n, p in inventory.providers.items() if isinstance(p, GitLabProvider)}
    gitlabs = sorted(gitlab_providers)
    name, sep, project = spec.partition(":")
    if sep and name in inventory.providers:
        if name not in gitlabs:
            raise CheckError(f"--issue {spec}: provider {name} is not a GitLab provider")
        return name, project
    if len(gitlabs) == 1:
        return gitlabs[0], spec
    if env is not None:
        usable = [n for n in gitlabs if env.get(gitlab_providers[n].token_env)]
        if len(usable) == 1:
            return usable[0], spec
    state = inventory.state
    if state.backend == "gitlab" and state.provider in gitlabs:
        return str(state.provider), spec
    if not gitlabs:
        raise CheckError("--issue: the inventory declares no GitLab provider to open the issue with")
    raise CheckError(f"--issue {spec}: several GitLab providers ({', '.join(gitlabs)}); write PROVIDER:PROJECT")


def publish_issue(session: Session, spec: str, report: Report) -> IssueOutcome:
    """Sync the report to the issue in `spec`, with that GitLab provider's credential."""
    from gitlab import exceptions as gl_errors

    from reconciler.clients import GitLabApi
    from reconciler.scopes import provider_apis

    provider, project = issue_target(session.inventory, spec, session.env)
    api = provider_apis(session.clients, [provider])[provider]
    assert isinstance(api, GitLabApi)  # issue_target names a GitLab provider
    try:
        with api.throttle:
            return sync_issue(api.gl, project, report, session.inventory.check)
    except gl_errors.GitlabError as err:
        from reconciler.gitlab_ci import describe_gitlab_error

        raise CheckError(f"--issue {spec}: GitLab ({provider}) answered {describe_gitlab_error(err)}") from None
