"""The planner: a pure function (inventory, observed, ledger, now) -> Plan. No I/O.

For every token: create, rotate (overlap or in place, and why), revoke (`state: absent`) or none,
with every reason of DESIGN.md "Rotation: when and how" that applies. For every consumer: what it
holds (verified, stale, unverifiable, missing) and what apply will do (create, update, none),
with the attribute diff (deepdiff). Findings: warnings and errors (an error blocks its token).
Order is deterministic: tokens by name, consumers by identity.

Boundaries (tested): a token is due when `days_left <= rotate_before` days, counted in whole UTC
days from `now` to `expires_at`; when it is strictly older than `max_age`; when it was created
strictly before `not_before` (midnight UTC). `now` in any time zone is taken as UTC.

The JSON form (`Plan.to_json`, schema `reconciler/plan.schema.json`, `schema_version`) carries the
inventory and observation digests so apply can refuse a stale plan, and never a value.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import yaml
from deepdiff import DeepDiff

from reconciler.inventory.model import Consumer, Inventory, Located, Position, Token
from reconciler.kinds import consumer_kind, source_kind
from reconciler.kinds.external import ExternalSource
from reconciler.kinds.gitlab_ci_variable import GitLabCiVariable
from reconciler.kinds.gitlab_personal_access_token import GitLabPersonalAccessToken
from reconciler.kinds.gitlab_webhook import WebhookSecretField
from reconciler.kinds.zendesk_api_token import CUTOFF, INACTIVITY_DAYS, ZendeskApiToken
from reconciler.kinds.zendesk_webhook import ZendeskWebhookAuth
from reconciler.observed import (
    ConsumerObservation,
    LiveToken,
    Observed,
    SourceObservation,
    plain,
    record_is_of,
    to_iso,
)

SCHEMA_VERSION = 1

TokenAction = Literal["create", "rotate", "revoke", "none"]
ConsumerAction = Literal["create", "update", "none"]


@dataclass(frozen=True, kw_only=True)
class Reason:
    code: str  # missing, revoked, inactive, expiring, max_age, not_before, scopes, access_level, consumers
    message: str
    at: str  # inventory position it follows from: "inventory/tokens/x.yaml:12"


@dataclass(frozen=True, kw_only=True)
class Finding:
    severity: Literal["error", "warning"]
    code: str
    message: str
    at: str = ""
    token: str | None = None
    consumer: str | None = None
    detail: str | None = None  # multi-line text (a YAML proposal)


@dataclass(frozen=True, kw_only=True)
class Change:
    """One attribute a consumer update changes. Never a value: `value` changes show fingerprints."""

    attribute: str
    old: Any
    new: Any


@dataclass(frozen=True, kw_only=True)
class ConsumerPlan:
    identity: str
    kind: str
    label: str
    provider: str
    at: str
    state: str  # verified | stale | unverifiable | missing | error
    action: ConsumerAction
    why: str  # why the state / the action, one line
    value: Literal["new", "current"] | None = None  # which value a write delivers; None: attributes only
    changes: tuple[Change, ...] = ()
    readable: bool = False
    live_id: str | None = None
    fingerprint: str | None = None  # of what it holds now


@dataclass(frozen=True, kw_only=True)
class TokenPlan:
    name: str
    source_kind: str
    source_identity: str
    provider: str | None
    at: str
    action: TokenAction
    strategy: str | None  # overlap | in_place | external | observe_only
    reasons: tuple[Reason, ...] = ()
    live: dict[str, Any] | None = None  # id, created_at, expires_at, days_left, age_days, last_used_at
    orphans: tuple[str, ...] = ()  # ids of other usable tokens with the same name: revoke after delivery
    recover_from: str | None = None  # where apply reads the current value to re-deliver it
    escrow: str | None = None  # in place: "key" (RECONCILE_ESCROW_KEY) or "consumer:<identity>"
    consumers: tuple[ConsumerPlan, ...] = ()
    findings: tuple[Finding, ...] = ()

    @property
    def blocked(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    @property
    def changes(self) -> bool:
        return self.action != "none" or any(c.action != "none" for c in self.consumers) or bool(self.orphans)


@dataclass(frozen=True, kw_only=True)
class Plan:
    generated_at: datetime
    inventory_digest: str
    observed_digest: str
    tokens: tuple[TokenPlan, ...]
    findings: tuple[Finding, ...] = ()  # not tied to one token (unmanaged tokens...)
    targets: tuple[str, ...] = ()
    schema_version: int = SCHEMA_VERSION

    @property
    def has_changes(self) -> bool:
        return any(t.changes for t in self.tokens)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.all_findings() if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.all_findings() if f.severity == "warning"]

    def all_findings(self) -> list[Finding]:
        return [f for t in self.tokens for f in t.findings] + list(self.findings)

    def summary(self) -> dict[str, int]:
        counts = {"create": 0, "rotate": 0, "revoke": 0, "consumer_create": 0, "consumer_update": 0,
                  "verified": 0, "unverifiable": 0, "warnings": len(self.warnings), "errors": len(self.errors)}
        for t in self.tokens:
            if t.action != "none":
                counts[t.action] += 1
            for c in t.consumers:
                if c.action != "none":
                    counts[f"consumer_{c.action}"] += 1
                if c.state in ("verified", "unverifiable"):
                    counts[c.state] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "generated_at": to_iso(self.generated_at),
            "inventory_digest": self.inventory_digest,
            "observed_digest": self.observed_digest,
            "targets": list(self.targets),
            "has_changes": self.has_changes,
            "summary": self.summary(),
            "tokens": [plain(asdict(t)) for t in self.tokens],
            "findings": [plain(asdict(f)) for f in self.findings],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        """Read a saved plan back (apply PLANFILE). Raises ValueError on another schema version."""
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"plan schema version {data.get('schema_version')!r} is not {SCHEMA_VERSION}")

        def finding(d: dict[str, Any]) -> Finding:
            return Finding(**d)

        tokens = []
        for t in data["tokens"]:
            consumers = tuple(
                ConsumerPlan(**{**c, "changes": tuple(Change(**ch) for ch in c["changes"])}) for c in t["consumers"]
            )
            tokens.append(TokenPlan(**{
                **t,
                "reasons": tuple(Reason(**r) for r in t["reasons"]),
                "orphans": tuple(t["orphans"]),
                "consumers": consumers,
                "findings": tuple(finding(f) for f in t["findings"]),
            }))
        return cls(
            generated_at=datetime.fromisoformat(data["generated_at"].replace("Z", "+00:00")),
            inventory_digest=data["inventory_digest"],
            observed_digest=data["observed_digest"],
            tokens=tuple(tokens),
            findings=tuple(finding(f) for f in data["findings"]),
            targets=tuple(data.get("targets") or ()),
        )


# --- the planner -----------------------------------------------------------------------------


def plan(
    inventory: Inventory,
    observed: Observed,
    ledger: Any,
    now: datetime,
    *,
    targets: Collection[str] | None = None,
    escrow_available: bool = False,
    escrowed: Mapping[str, str] | None = None,
) -> Plan:
    """The plan for `inventory` against `observed`. `ledger`: anything with `.get(consumer_identity)
    -> LedgerRecord | None` (or None). `escrow_available`: an escrow key is set, so in-place
    rotation is safe. `escrowed`: token name -> live id whose value the escrow holds (an apply
    was interrupted before every consumer had it): that value is delivered, not a new one minted.
    `targets`: only these token names (all when empty)."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    chosen = sorted(n for n in inventory.tokens if not targets or n in targets)
    token_plans = tuple(
        _plan_token(inventory.tokens[name], observed, ledger, now, escrow_available, (escrowed or {}).get(name))
        for name in chosen
    )
    findings = [
        Finding(severity="warning", code="unmanaged",
                message=f"unmanaged: {_live_words(t)} in {t.where} is not in the inventory "
                        "(`reconcile discover` can write it)")
        for t in sorted(observed.unmanaged, key=lambda t: (t.where, t.name, t.id))
    ] if not targets else []
    return Plan(
        generated_at=now,
        inventory_digest=inventory.digest,
        observed_digest=observed.digest(),
        tokens=token_plans,
        findings=tuple(findings),
        targets=tuple(sorted(targets or ())),
    )


def _at(obj: Located, key: str | None = None) -> str:
    pos: Position = obj.at(key) if key else obj.pos
    return f"{pos.file}:{pos.line}" if pos.line else pos.file


def _days_left(expires: date, now: datetime) -> int:
    return (expires - now.date()).days


def _fmt_days(delta: timedelta) -> str:
    return f"{delta.days}d"


def _live_words(t: LiveToken) -> str:
    return f"{t.name!r} (#{t.id})"


def _live_summary(live: LiveToken, now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {"id": live.id, "active": live.usable}
    if live.created_at:
        out["created_at"] = to_iso(live.created_at)
        out["age_days"] = (now - live.created_at).days
    if live.expires_at:
        out["expires_at"] = live.expires_at.isoformat()
        out["days_left"] = _days_left(live.expires_at, now)
    if live.last_used_at:
        out["last_used_at"] = to_iso(live.last_used_at)
    if live.scopes:
        out["scopes"] = list(live.scopes)
    if live.access_level is not None:
        out["access_level"] = live.access_level
    return out


def _source_reasons(token: Token, live: LiveToken | None, now: datetime) -> list[Reason]:
    """Why the live token itself is due (consumers aside)."""
    src, rot = token.source, token.rotation
    kind = source_kind(src.kind)
    if isinstance(src, ExternalSource):
        if src.expires_at and rot.rotate_before is not None:
            left = _days_left(src.expires_at, now)
            if left <= rot.rotate_before.days:
                return [Reason(code="expiring", at=_at(src, "expires_at"),
                               message=f"expires {src.expires_at} ({left} days left, rotate_before "
                                       f"{_fmt_days(rot.rotate_before)})")]
        return []
    if live is None:
        return [Reason(code="missing", at=_at(src), message=f"the {kind.noun} does not exist")]
    if live.revoked:
        return [Reason(code="revoked", at=_at(src), message=f"the {kind.noun} #{live.id} is revoked")]
    reasons = []
    expired = live.expires_at is not None and _days_left(live.expires_at, now) <= 0
    if not live.active or expired:
        return [Reason(code="inactive", at=_at(src),
                       message=f"the {kind.noun} #{live.id} is {'expired' if expired else 'inactive'}")]
    if live.expires_at and rot.rotate_before is not None:
        left = _days_left(live.expires_at, now)
        if left <= rot.rotate_before.days:
            reasons.append(Reason(code="expiring", at=_at(rot, "rotate_before"),
                                  message=f"expires {live.expires_at} ({left} days left, within rotate_before "
                                          f"{_fmt_days(rot.rotate_before)})"))
    if live.created_at and rot.max_age is not None and now - live.created_at > rot.max_age:
        reasons.append(Reason(code="max_age", at=_at(rot, "max_age"),
                              message=f"created {live.created_at.date()} ({(now - live.created_at).days} days ago), "
                                      f"older than max_age {_fmt_days(rot.max_age)}"))
    if live.created_at and rot.not_before is not None:
        cutoff = datetime(rot.not_before.year, rot.not_before.month, rot.not_before.day, tzinfo=UTC)
        if live.created_at < cutoff:
            reasons.append(Reason(code="not_before", at=_at(rot, "not_before"),
                                  message=f"created {live.created_at.date()}, before not_before {rot.not_before}"))
    if kind.has_scopes and hasattr(src, "scopes") and not src.kind.startswith("zendesk"):
        declared, actual = sorted(set(src.scopes)), sorted(set(live.scopes))  # type: ignore[attr-defined]
        if declared != actual:
            reasons.append(Reason(code="scopes", at=_at(src, "scopes"),
                                  message=f"scopes differ: live {', '.join(actual) or '-'}, "
                                          f"declared {', '.join(declared)}"))
    if kind.has_access_level and live.access_level is not None:
        declared_level = src.access_level  # type: ignore[attr-defined]
        if declared_level != live.access_level:
            reasons.append(Reason(code="access_level", at=_at(src, "access_level"),
                                  message=f"access level differs: live {live.access_level}, declared {declared_level}"))
    return reasons


def _consumer_state(
    c: Consumer, obs: ConsumerObservation | None, live: LiveToken | None, record: Any, identifies: bool,
    external: bool = False,
) -> tuple[str, str, bool]:
    """(state, why, by_ledger) of what consumer `c` holds relative to the live token `live`.
    `external`: no live token exists to compare with; the ledger's record is the truth."""
    if obs is None:
        return "error", "not observed", False
    if obs.error:
        return "error", obs.error, False
    if not obs.exists:
        what = obs.details.get("missing", "place")
        return "missing", f"the {what} does not exist", False
    if external:
        if record is None:
            return "unverifiable", "the ledger has no record of a delivery", False
        if obs.readable and obs.fingerprint is not None and record.fingerprint != obs.fingerprint:
            return "stale", "holds a value other than the one the ledger recorded", True
        return "verified", "holds the value the ledger recorded (delivered " + str(record.delivered_at)[:10] + ")", True
    live_ok = live is not None and live.usable
    rec_id = None if record is None else str(record.token_id)
    if obs.readable and obs.fingerprint is not None:
        if live_ok and obs.holds_token_id == live.id:  # type: ignore[union-attr]
            return "verified", f"holds the current token #{live.id} (read back)", False  # type: ignore[union-attr]
        if live_ok and record is not None and record.fingerprint == obs.fingerprint and record_is_of(record, live):
            return "verified", f"holds the current token #{rec_id} (read back, matches the ledger)", True
        if obs.holds_token_id is not None:
            return "stale", f"holds token #{obs.holds_token_id}, not the current one", False
        if obs.holds_invalid:
            return "stale", "holds a value the provider refuses (revoked or unknown)", False
        if not identifies and record is None:
            return "unverifiable", "its value cannot be identified and the ledger has no record", False
        if not identifies and record is not None and record.fingerprint != obs.fingerprint:
            return "stale", "holds a value other than the one the ledger recorded", True
        return "stale", "holds a value that is not the current token", False
    if obs.readable:
        return "stale", "holds no value", False
    # write-only: only the ledger knows
    if record is None:
        return "unverifiable", "write-only and the ledger has no record of a delivery", False
    if live_ok and record_is_of(record, live):
        return "verified", f"the ledger records delivery of the current token #{rec_id}", True
    return "stale", f"the ledger records delivery of token #{rec_id}, not the current one", True


def _attribute_changes(desired: dict[str, Any], live: dict[str, Any]) -> tuple[Change, ...]:
    """Attribute diff with deepdiff, over the attributes the inventory manages."""
    current = {k: live.get(k) for k in desired}
    if all(_same_scalar(current[k], v) for k, v in desired.items()):
        return ()  # the common case; DeepDiff costs ~0.25 ms a consumer (1.2 s on 5,000)
    diff = DeepDiff(current, desired, ignore_order=True, verbose_level=2)
    changes = []
    for group in ("values_changed", "type_changes"):
        for path, change in diff.get(group, {}).items():
            name = path.removeprefix("root['").split("']")[0]
            changes.append(Change(attribute=name, old=change.get("old_value"), new=change.get("new_value")))
    return tuple(sorted(changes, key=lambda ch: ch.attribute))


def _same_scalar(a: Any, b: Any) -> bool:
    """Equal plain scalars of the same type (True and 1 differ, as they do for DeepDiff)."""
    return type(a) is type(b) and isinstance(a, str | bool | int | float | type(None)) and a == b


def _record(ledger: Any, identity: str) -> Any:
    if ledger is None:
        return None
    return ledger.get(identity)


def _plan_token(token: Token, observed: Observed, ledger: Any, now: datetime, escrow_available: bool,
                escrowed_id: str | None = None) -> TokenPlan:
    src = token.source
    kind = source_kind(src.kind)
    sobs = observed.sources.get(token.name) or SourceObservation(token=token.name, identity=src.identity,
                                                                 error="not observed")
    live = sobs.current
    findings: list[Finding] = []
    base: dict[str, Any] = {
        "name": token.name, "source_kind": src.kind, "source_identity": src.identity,
        "provider": src.provider, "at": _at(token),
        "live": _live_summary(live, now) if live else None,
    }

    def finding(severity: str, code: str, message: str, consumer: str | None = None, at: str | None = None,
                detail: str | None = None) -> None:
        findings.append(Finding(severity=severity, code=code, message=message, at=at or _at(token),  # type: ignore[arg-type]
                                token=token.name, consumer=consumer, detail=detail))

    if sobs.error and not isinstance(src, ExternalSource):
        finding("error", "observe_failed", f"{kind.noun} of {token.name} could not be observed: {sobs.error}", at=_at(src))
        return TokenPlan(**base, action="none", strategy=kind.strategy(src), findings=tuple(findings))

    # state: absent -> revoke what is live
    if token.state == "absent":
        ids = [t.id for t in ([live] if live and live.usable else []) + list(sobs.others)]
        if ids and token.consumers:
            finding("warning", "absent_with_consumers",
                    f"{token.name} is absent: its {len(token.consumers)} consumer(s) will hold a revoked value")
        if ids and not (kind.can_mint or kind.can_renew):
            finding("error", "cannot_revoke", f"{kind.noun} cannot be revoked through the API: revoke it by hand")
        reasons = (Reason(code="absent", at=_at(token, "state"), message="declared state: absent"),) if ids else ()
        return TokenPlan(**base, action="revoke" if ids else "none", strategy=None, reasons=reasons,
                         orphans=tuple(t.id for t in sobs.others), findings=tuple(findings))

    strategy = kind.strategy(src)
    reasons = _source_reasons(token, live, now)
    live_ok = live is not None and live.usable

    # consumers: what they hold
    states: list[tuple[Consumer, ConsumerObservation | None, str, str]] = []
    for c in sorted(token.consumers, key=lambda c: c.identity):
        cobs = observed.consumers.get(c.identity)
        state, why, _ = _consumer_state(c, cobs, live, _record(ledger, c.identity), kind.identifies_values,
                                        external=isinstance(src, ExternalSource))
        states.append((c, cobs, state, why))
        if state == "error":
            finding("error", "consumer_observe_failed", f"{c.label}: could not be observed: {why}", c.identity, _at(c))

    # the current value can be re-delivered without minting when it is readable somewhere
    recover_from = None
    if live_ok and escrowed_id is not None and escrowed_id == live.id:  # type: ignore[union-attr]
        recover_from = "escrow"  # an interrupted apply escrowed it: finish delivering it
    elif live_ok and live.owned and live.fingerprint:  # type: ignore[union-attr]
        recover_from = "source"
    else:
        for c, cobs, state, _ in states:
            if state == "verified" and cobs is not None and cobs.readable:
                recover_from = f"consumer:{c.identity}"
                break
    needing = [(c, s) for c, cobs, s, _ in states
               if s in ("stale", "unverifiable")
               or (s == "missing" and consumer_kind(c.kind).can_create and cobs is not None
                   and cobs.details.get("creatable", True))]
    can_deliver = live_ok or isinstance(src, ExternalSource)
    if needing and not reasons and can_deliver and recover_from is None and strategy != "observe_only":
        names = ", ".join(c.label for c, _ in needing)
        reasons.append(Reason(code="consumers", at=_at(needing[0][0]),
                              message=f"{names}: not shown to hold the current value, and the current value is "
                                      "not recoverable, so every consumer gets a fresh one"))
    for c, s in needing:
        if s == "unverifiable":
            then = ("nothing to do: the token is observed only" if strategy == "observe_only"
                    else "apply delivers the current value again" if recover_from and not reasons
                    else "it receives the new value")
            finding("warning", "unverifiable", f"{c.label} cannot be verified (no ledger record): {then}",
                    c.identity, _at(c))

    # the token action
    action: TokenAction = "none"
    if strategy == "observe_only":
        _api_token_findings(token, live, now, finding)
        reasons_out = tuple(reasons)
        if any(r.code in ("missing", "revoked", "inactive") for r in reasons):
            finding("error", "api_token_gone",
                    f"Zendesk API token {src.description!r} is {reasons[0].code}: API tokens can no longer be "  # type: ignore[attr-defined]
                    "created; replace it with an OAuth token (see the proposal)", at=_at(src))
        return TokenPlan(**base, action="none", strategy=strategy, reasons=reasons_out,
                         consumers=tuple(_observe_only_consumer(c, cobs, state, why) for c, cobs, state, why in states),
                         findings=tuple(findings))
    if reasons:
        codes = {r.code for r in reasons}
        if codes & {"missing", "revoked", "inactive"}:
            action = "rotate" if strategy == "external" else "create"
        else:
            action = "rotate"
        if action == "create" and not kind.can_mint and not _can_mint(kind, src):
            if kind.can_renew and "inactive" in codes and live is not None and not live.revoked:
                action = "rotate"  # an expired/inactive token that is not revoked can still be rotated
            else:
                finding("error", "cannot_create",
                        f"GitLab offers no API to create this {kind.noun} (a non-admin's PAT): create "
                        f"{getattr(src, 'name', token.name)!r} by hand, then run again" if isinstance(src, GitLabPersonalAccessToken)
                        else f"the {kind.noun} cannot be created through the API: create it by hand", at=_at(src))
        if codes & {"scopes", "access_level"} and action == "rotate":
            # rotate copies scopes and access level: only a new token can change them
            if kind.can_mint or _can_mint(kind, src):
                strategy = "overlap"
            else:
                finding("error", "scopes_need_new_token",
                        f"scopes/access level of {kind.noun} {token.name} cannot change by rotation: create a new "
                        "one by hand (or use strategy: overlap as an admin)", at=_at(src, "scopes"))
        if action == "create":
            strategy = "overlap" if strategy == "in_place" else strategy
    if action != "none" and strategy == "overlap" and src.kind in ("gitlab_project_access_token",
                                                                  "gitlab_group_access_token"):
        finding("warning", "new_bot_user",
                f"{token.name}: creating a new {kind.noun} creates a new bot user on GitLab (a member of the "
                f"{src.kind.split('_')[1]}); the old one goes when the old token is revoked", at=_at(src))
    if isinstance(src, ExternalSource) and action != "none":
        where = f"${src.value_env}" if src.value_env else src.value_file
        finding("warning", "external_value", f"{token.name}: a person supplies the new value at apply time ({where})",
                at=_at(src))

    # escrow for in-place rotation
    escrow = None
    if action == "rotate" and strategy == "in_place":
        readable = [c for c, cobs, state, _ in states if cobs is not None and cobs.readable and state != "error"]
        if escrow_available:
            escrow = "key"
        elif readable:
            escrow = f"consumer:{readable[0].identity}"
        else:
            # A warning, not an error: merge-request pipelines plan without the protected key;
            # apply refuses the rotation if the key is still absent then (apply.py).
            finding("warning", "no_escrow",
                    f"{token.name}: in-place rotation needs RECONCILE_ESCROW_KEY at apply time (or a readable "
                    "consumer as escrow): the environment variable named by state.escrow_key_env holds the new "
                    "value until every consumer has it", at=_at(src))

    # consumer actions
    rotating = action in ("create", "rotate")
    consumer_plans = []
    for c, cobs, state, why in states:
        ckind = consumer_kind(c.kind)
        desired = ckind.desired_attributes(c)
        changes = _attribute_changes(desired, cobs.attributes) if cobs is not None and cobs.exists else ()
        creatable = ckind.can_create and (cobs is None or cobs.details.get("creatable", True))
        caction: ConsumerAction = "none"
        value: Literal["new", "current"] | None = None
        cwhy = why
        if state == "error":
            caction = "none"
        elif state == "missing":
            if creatable:
                caction, value = "create", "new" if rotating else "current"
                cwhy = f"{why}: apply creates it"
            else:
                finding("error", "consumer_missing", f"{c.label}: {why}; create it (the tool cannot)", c.identity, _at(c))
        elif rotating:
            caction, value = "update", "new"
            cwhy = f"{why}; receives the new value"
        elif state in ("stale", "unverifiable") and recover_from is not None:
            caction, value = "update", "current"
            cwhy = f"{why}; receives the current value again"
        elif changes:
            caction, value = "update", None
        if caction != "none" and value is not None and cobs is not None and cobs.fingerprint and cobs.readable:
            changes = changes + (Change(attribute="value", old=cobs.fingerprint, new=f"({value} value)"),)
        if cobs is not None:
            for severity, code, message in ckind.findings(c, cobs, caction != "none"):
                finding(severity, code, message, c.identity, _at(c))
        consumer_plans.append(ConsumerPlan(
            identity=c.identity, kind=c.kind, label=c.label, provider=c.provider, at=_at(c), state=state,
            action=caction, why=cwhy, value=value, changes=changes,
            readable=bool(cobs and cobs.readable), live_id=cobs.live_id if cobs else None,
            fingerprint=cobs.fingerprint if cobs else None,
        ))
    if sobs.others:
        finding("warning", "orphans",
                f"{token.name}: {len(sobs.others)} other live {kind.noun}(s) with the same name "
                f"({', '.join('#' + t.id for t in sobs.others)}): apply revokes them once every consumer is verified")
    return TokenPlan(
        **base, action=action, strategy=strategy if action != "none" else kind.strategy(src),
        reasons=tuple(reasons), orphans=tuple(t.id for t in sobs.others),
        recover_from=recover_from if not rotating and any(cp.value == "current" for cp in consumer_plans) else None,
        escrow=escrow, consumers=tuple(consumer_plans), findings=tuple(findings),
    )


def _can_mint(kind: Any, src: Any) -> bool:
    check = getattr(kind, "can_mint_for", None)
    return bool(check and check(src))


def _observe_only_consumer(c: Consumer, cobs: ConsumerObservation | None, state: str, why: str) -> ConsumerPlan:
    return ConsumerPlan(identity=c.identity, kind=c.kind, label=c.label, provider=c.provider, at=_at(c), state=state,
                        action="none", why=why, readable=bool(cobs and cobs.readable),
                        live_id=cobs.live_id if cobs else None, fingerprint=cobs.fingerprint if cobs else None)


def _api_token_findings(token: Token, live: LiveToken | None, now: datetime, finding: Any) -> None:
    src = token.source
    assert isinstance(src, ZendeskApiToken)
    left = (CUTOFF - now.date()).days
    state = "in use" if live is not None and live.usable else "not active"
    finding("warning", "api_token_sunset",
            f"Zendesk API token {src.description!r} ({state}) stops working on {CUTOFF} ({left} days left); "
            "API tokens can no longer be created: replace it with an OAuth token",
            at=_at(src), detail=_oauth_proposal(token))
    if live is not None and live.usable and live.last_used_at is not None:
        idle = (now - live.last_used_at).days
        if idle >= INACTIVITY_DAYS:
            finding("warning", "api_token_inactive",
                    f"Zendesk API token {src.description!r} last used {idle} days ago: Zendesk deactivates tokens "
                    f"unused for {INACTIVITY_DAYS} days", at=_at(src))
        elif idle >= INACTIVITY_DAYS - 7:
            finding("warning", "api_token_inactive",
                    f"Zendesk API token {src.description!r} unused for {idle} days: deactivated in "
                    f"{INACTIVITY_DAYS - idle} days unless used", at=_at(src))


def _oauth_proposal(token: Token) -> str:
    """The inventory YAML of an OAuth replacement for an API token, consumers carried over."""
    src = token.source
    entry: dict[str, Any] = {
        "description": f"Replaces the Zendesk API token {src.description!r} (API tokens stop working on {CUTOFF})",  # type: ignore[attr-defined]
    }
    if token.owner:
        entry["owner"] = token.owner
    entry["source"] = {"kind": "zendesk_oauth_token", "provider": src.provider,
                       "client": "CLIENT-IDENTIFIER", "scopes": ["read", "write"]}
    entry["consumers"] = [_consumer_yaml(c) for c in token.consumers]
    text = yaml.safe_dump({"tokens": {f"{token.name}-oauth": entry}}, sort_keys=False, default_flow_style=False)
    return text + "# CLIENT-IDENTIFIER: an OAuth client of this instance (Admin Center > Apps and integrations > APIs)\n"


def _consumer_yaml(c: Consumer) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": c.kind}
    for f in fields(c):
        if f.name in ("pos", "key_pos"):
            continue
        value = getattr(c, f.name)
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)
        if value == default or value in (None, {}, ()) or (isinstance(c, GitLabCiVariable) and f.name == "environment_scope" and value == "*"):
            continue
        if isinstance(value, WebhookSecretField | ZendeskWebhookAuth):
            value = {k: v for k, v in asdict(value).items() if v is not None}
        out[f.name] = value
    return out

