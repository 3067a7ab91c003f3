"""The fewest requests a plan of an inventory can make, and the per-resource baseline, computed
from the inventory, the world seed and the ledger alone, read as plain YAML and JSON files: this
module imports nothing from `reconciler` (nor `reconciler_sandbox.world`, which does), so it is a
yardstick for the engine, not a copy of it.

The list endpoints it counts, as documented:
  - GitLab: offset pagination, at most 100 rows a page (`per_page`; https://docs.gitlab.com/api/rest/#pagination);
    `GET /projects/:id/variables`, `/groups/:id/variables`, `/admin/ci/variables`
    (https://docs.gitlab.com/api/project_level_variables/, .../group_level_variables/,
    .../instance_level_ci_variables/), `GET /projects/:id/hooks`, `/groups/:id/hooks`
    (https://docs.gitlab.com/api/project_webhooks/, .../group_webhooks/), `GET
    /projects/:id/access_tokens`, `/groups/:id/access_tokens`
    (https://docs.gitlab.com/api/project_access_tokens/, .../group_access_tokens/), `GET
    /projects/:id/triggers` (https://docs.gitlab.com/api/pipeline_triggers/), `GET
    /personal_access_tokens?user_id=` (https://docs.gitlab.com/api/personal_access_tokens/);
  - Zendesk: cursor pagination, `page[size]` at most 100 for most endpoints
    (https://developer.zendesk.com/api-reference/introduction/pagination/); `GET /api/v2/webhooks`
    (https://developer.zendesk.com/api-reference/webhooks/webhooks-api/webhooks/), `GET
    /api/v2/oauth/tokens`, `/oauth/clients`
    (https://developer.zendesk.com/api-reference/ticketing/oauth/oauth_tokens/, .../oauth_clients/),
    `GET /api/v2/apps/installations` and `GET /api/v2/api_tokens` (unpaginated).

Minimum (what any correct plan must read):
  - one list per (provider, project or group or user or instance, resource type), times its
    pages (GitLab: `per_page=100`; Zendesk: cursor pages of 100, app installations and API tokens
    unpaginated), for the resource types the inventory's sources and consumers live in;
  - `GET /user` when a personal access token belongs to the credential's own user, and
    `GET /users?username=` per other named user (their ids key the PAT lists);
  - per Zendesk instance with an OAuth token source, the credential's user once (`GET
    /api/v2/oauth/tokens/current`): the list holds every user's tokens, only its own are the source's;
  - per GitLab provider whose listed PATs or access tokens include one no source names, the id of
    the credential once (`GET /personal_access_tokens/self`): the tool's own credential is never
    reported as unmanaged;
  - one `GET .../hooks/:id` per GitLab webhook in `mode: recreate` that the plan writes (the list
    omits the keys of URL variables and custom headers, which a recreate must not lose; a hook
    the plan leaves alone loses nothing): an existing hook whose token is due (see the apply
    minimum: it is rotated or created), or that the ledger has no record of holding its token's
    current live instance (its record's consumer, token id and creation time). A token the engine
    rotates because none of its consumers can be shown to hold its value is the engine's choice,
    not counted here: the engine may read a few more;
  - one identification per distinct value held by a readable consumer that the ledger does not
    prove (no record of its token has that fingerprint with the live id), when the only
    way to tell which token a value is, is to authenticate with it (GitLab PATs and access tokens:
    `GET /personal_access_tokens/self`; Zendesk OAuth tokens: `GET /oauth/tokens/current`).
    Owned pipeline triggers are compared with their list; other kinds cannot be identified.

Baseline (a Terraform-style refresh): one GET per token that has a live source and one per
consumer.

Apply minimum (`apply_minimum`), for the tokens that are due (missing, or expiring within
`rotate_before`, from the seed): the plan's minimum, plus per due token one mint or rotate (and one
revoke of the old token when it is renewed by overlap), per consumer of a due token one write
(two for a GitLab webhook in `mode: recreate`: delete and create, its detail being already read),
and verification, which comes before the old token is revoked, so per token: one check
of the new value (authenticate with it: GitLab PATs and access tokens, Zendesk OAuth tokens; read
it back: owned triggers; an OAuth client secret cannot be checked), and per scope that holds the
token's written readable consumers, the fewer of the scope's list pages and one GET per consumer
there (`GET /projects/:id/variables/:key`, https://docs.gitlab.com/api/project_level_variables/;
`GET /api/v2/webhooks/{id}`; app installations are one unpaginated list); consumers spread over
projects make these about one per readable consumer.

Reads the apply minimum leaves out, which the engine makes because safety needs them:
  - before each GitLab rotate, the provider's check of its own credential
    (`GET /personal_access_tokens/self`): a rotate is never sent with a revoked credential, and a
    rotation of the credential itself is seen;
  - before each app setting's `PUT`, its installation (`GET /api/v2/apps/installations/:id`):
    whether the `PUT` merges or replaces `settings` is undocumented, and comparing the other
    settings with the `PUT`'s answer (the installation after it; no read after) is how a
    replacement is caught and put back;
  - before revoking an old token of a kind whose provider records last use, the list that says
    when it was last used, read again (`GET /api/v2/oauth/tokens`, a GitLab token list): it is
    revoked only when quiet, and the delivery just made may have moved that; the token's other
    lists (an OAuth client's id, the credential's user) are not read again.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any

import yaml

from reconciler_sandbox.core import Clock, parse_when  # the sandbox's clock: imports no engine module

# --- the files, read as plain data (never through the engine's loader or state code) ------------

# the world seed's value placeholders, expanded as reconciler_sandbox.world expands them (that
# module starts the servers and imports the engine's model, so it is not imported here)
_PLACEHOLDER = re.compile(r"\{\{secret:([A-Za-z0-9]*):([A-Za-z0-9_.-]+)\}\}")


def _derive(prefix: str, name: str) -> str:
    body = hashlib.sha256(f"reconcile-sandbox/{name}".encode()).hexdigest()[:32]
    return f"{prefix}-{body}" if prefix else body


def load_world_seed(path: str | Path) -> dict[str, Any]:
    text = _PLACEHOLDER.sub(lambda m: _derive(m.group(1), m.group(2)), Path(path).read_text(encoding="utf-8"))
    return yaml.safe_load(text) or {}

class _Fields(dict[str, Any]):
    """A YAML mapping with its keys as attributes; an absent key reads as None."""

    def __getattr__(self, name: str) -> Any:
        return self.get(name)


_CONSUMER_DEFAULTS = {"value": "${token}", "environment_scope": "*", "mode": "update", "hidden": False}
_UNITS = {"d": 1, "w": 7}


def _days(text: Any) -> timedelta | None:
    found = re.fullmatch(r"(\d+)([dw])", str(text)) if text is not None else None
    return timedelta(days=int(found.group(1)) * _UNITS[found.group(2)]) if found else None


@dataclass
class Inventory:
    """What the inventory's YAML files (as benchmarks/generate.py writes them) say: providers,
    and per token its source, consumers and rotation (`rotate_before` and `not_before` merged
    over the defaults)."""

    providers: dict[str, _Fields]
    tokens: dict[str, _Fields]


def load_inventory(directory: str | Path) -> Inventory:
    providers: dict[str, _Fields] = {}
    tokens: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for path in sorted(Path(directory).rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        providers.update({k: _Fields(v) for k, v in (doc.get("providers") or {}).items()})
        tokens.update(doc.get("tokens") or {})
        defaults.update(doc.get("defaults") or {})
    out: dict[str, _Fields] = {}
    for name, tok in tokens.items():
        rotation = {**(defaults.get("rotation") or {}), **(tok.get("rotation") or {})}
        not_before = rotation.get("not_before")
        out[name] = _Fields(
            source=_Fields(tok["source"]),
            consumers=[_Fields({**_CONSUMER_DEFAULTS, **c}) for c in tok.get("consumers") or ()],
            rotation=_Fields(rotate_before=_days(rotation.get("rotate_before")),
                             not_before=date.fromisoformat(str(not_before)) if not_before else None))
    return Inventory(providers, out)


def load_ledger_records(state_dir: str | Path) -> list[dict[str, Any]]:
    """Every record in the state's ledger.json and its journal, as plain JSON."""
    directory = Path(state_dir)
    records: list[dict[str, Any]] = []
    ledger = directory / "ledger.json"
    if ledger.is_file():
        records += json.loads(ledger.read_text(encoding="utf-8")).get("records") or []
    journal = directory / "ledger.journal"
    if journal.is_file():
        for line in journal.read_text(encoding="utf-8").splitlines():
            records += [r for r in (json.loads(line).get("records") or {}).values() if r]
    return records


def load_ledger_proofs(state_dir: str | Path) -> set[tuple[str, str, str]]:
    """(token, live id, fingerprint) of every record: a value a consumer of that token holds is
    proven when its fingerprint is there with the live id (no consumer identity is needed)."""
    return {(str(r["token"]), str(r["token_id"]), str(r["fingerprint"])) for r in load_ledger_records(state_dir)}


def load_ledger_deliveries(state_dir: str | Path) -> set[tuple[str, str, str, str]]:
    """(consumer identity, token, live id, creation time) of every record: what the ledger says
    each write-only consumer received."""
    return {(str(r["consumer"]), str(r["token"]), str(r["token_id"]), str(r.get("token_created_at") or ""))
            for r in load_ledger_records(state_dir)}

PAGE = 100
AUTHENTICATES = ("gitlab_personal_access_token", "gitlab_project_access_token", "gitlab_group_access_token",
                 "zendesk_oauth_token")


@dataclass
class Minimum:
    lists: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (provider, resource, scope) -> pages
    details: int = 0
    identifications: int = 0
    credential_lookups: int = 0
    baseline: int = 0

    @property
    def pages(self) -> int:
        return sum(self.lists.values())

    @property
    def total(self) -> int:
        return self.pages + self.details + self.identifications + self.credential_lookups

    def by_provider(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for (provider, _, _), pages in self.lists.items():
            out[provider] += pages
        return dict(out)

    def summary(self) -> dict[str, Any]:
        return {"minimum": self.total, "list_calls": len(self.lists), "pages": self.pages,
                "hook_details": self.details, "identifications": self.identifications,
                "credential_lookups": self.credential_lookups, "baseline": self.baseline}


def pages(n: int) -> int:
    return max(1, math.ceil(n / PAGE))


def _fp(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


class _Live:
    """The seed, indexed the way the lists answer."""

    def __init__(self, seed: dict[str, Any]) -> None:
        gl = seed.get("gitlab") or {}
        self.count: dict[tuple[str, str], int] = defaultdict(int)  # (resource, scope) -> items
        self.users = {u["username"]: u for u in gl.get("users") or ()}
        self.bot = next(iter(self.users), None)
        for u in gl.get("users") or ():
            self.count[("pats", u["username"])] = len(u.get("tokens") or ())
        self.tokens: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)  # (where, scope, name)
        for u in gl.get("users") or ():
            for t in u.get("tokens") or ():
                self.tokens[("user", u["username"], t["name"])].append(t)
        for t in gl.get("access_tokens") or ():
            where = "project" if t.get("project") else "group"
            self.count[(f"{where}_access_tokens", t[where])] += 1
            self.tokens[(where, t[where], t["name"])].append(t)
        self.triggers: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for t in gl.get("triggers") or ():
            self.count[("project_triggers", t["project"])] += 1
            self.triggers[(t["project"], t.get("description", ""))].append(t)
        self.variables: dict[tuple[str, str, str], dict[str, Any]] = {}
        for v in gl.get("variables") or ():
            where, scope = _scope(v)
            self.count[(f"{where}_variables", scope)] += 1
            self.variables[(where, scope, v["key"], v.get("environment_scope", "*"))] = v  # type: ignore[index]
        self.hooks: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for h in gl.get("hooks") or ():
            where, scope = _scope(h)
            self.count[(f"{where}_hooks", scope)] += 1
            self.hooks[(where, scope)].append(h)
        self.zendesk = (seed.get("zendesk") or {}).get("instances") or {}

    def tokens_in(self, where: str, scope: str) -> list[dict[str, Any]]:
        """The GitLab tokens of a user (by username), project or group."""
        return [t for (w, sc, _), rows in self.tokens.items() if (w, sc) == (where, scope) for t in rows]


def _scope(entry: dict[str, Any]) -> tuple[str, str]:
    if entry.get("project"):
        return "project", str(entry["project"])
    if entry.get("group"):
        return "group", str(entry["group"])
    return "instance", ""


def _newest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    usable = [r for r in rows if not r.get("revoked")]
    return max(usable, key=lambda r: (str(r.get("created_at", "")), int(r.get("id") or 0)), default=None)


def compute(inventory: str | Path | Inventory, world_seed: str | Path, state_dir: str | Path | None = None, *,
            now: Any) -> Minimum:
    """The plan's minimum at `now` (the world's pinned time: which tokens are due depends on it)."""
    inv = inventory if isinstance(inventory, Inventory) else load_inventory(inventory)
    seed = load_world_seed(world_seed)
    live = _Live(seed)
    proofs = load_ledger_proofs(state_dir) if state_dir else set()
    delivered = load_ledger_deliveries(state_dir) if state_dir else set()
    clock = Clock(now)
    expiry = _seed_expiry(seed, clock)
    m = Minimum()
    subdomain = {name: getattr(p, "subdomain", "") for name, p in inv.providers.items()}

    def need(provider: str, resource: str, scope: str, items: int) -> None:
        m.lists[(provider, resource, scope)] = pages(items)

    def zcount(provider: str, key: str) -> int:
        return len((live.zendesk.get(subdomain[provider]) or {}).get(key) or ())

    # current live token of each source, for the ledger check: (id, value, creation time)
    current: dict[str, tuple[str, str, str] | None] = {}
    for name, tok in inv.tokens.items():
        s: Any = tok.source  # by kind name: this module stays clear of reconciler.kinds
        m.baseline += s.provider is not None
        row: dict[str, Any] | None = None
        if s.kind == "gitlab_personal_access_token":
            user = s.user or live.bot or ""
            if s.user is None:
                need(s.provider, "user", "", 1)  # type: ignore[arg-type]
            else:
                need(s.provider, "user_by_name", s.user, 1)  # type: ignore[arg-type]
            need(s.provider, "pats", user, live.count[("pats", user)])  # type: ignore[arg-type]
            row = _newest(live.tokens[("user", user, s.name)])
        elif s.kind in ("gitlab_project_access_token", "gitlab_group_access_token"):
            where = "project" if s.kind == "gitlab_project_access_token" else "group"
            scope = s.project if s.kind == "gitlab_project_access_token" else s.group
            need(s.provider, f"{where}_access_tokens", scope, live.count[(f"{where}_access_tokens", scope)])  # type: ignore[arg-type]
            row = _newest(live.tokens[(where, scope, s.name)])
        elif s.kind == "gitlab_pipeline_trigger":
            need(s.provider, "project_triggers", s.project, live.count[("project_triggers", s.project)])  # type: ignore[arg-type]
            row = _newest(live.triggers[(s.project, s.description)])
        elif s.kind == "zendesk_oauth_token":
            need(s.provider, "oauth_clients", "", zcount(s.provider, "oauth_clients"))  # type: ignore[arg-type]
            need(s.provider, "oauth_tokens", "", zcount(s.provider, "oauth_tokens"))  # type: ignore[arg-type]
            need(s.provider, "user", "", 1)  # type: ignore[arg-type]  # whose tokens are ours
            zd = live.zendesk.get(subdomain[str(s.provider)]) or {}
            rows = [t for t in zd.get("oauth_tokens") or () if t.get("client") == s.client
                    and sorted(t.get("scopes") or ()) == sorted(s.scopes)]
            row = _newest(rows)
        elif s.kind == "zendesk_oauth_client_secret":
            need(s.provider, "oauth_clients", "", zcount(s.provider, "oauth_clients"))  # type: ignore[arg-type]
        elif s.kind == "zendesk_api_token":
            need(s.provider, "api_tokens", "", 1)  # type: ignore[arg-type]
        row = row or _other_instance(s, live.zendesk.get(subdomain.get(str(s.provider), "")) or {})
        current[name] = (str(row.get("id")), str(row.get("value")), _created(row, clock)) if row else None

    for name, tok in inv.tokens.items():
        s = tok.source
        identifies = s.kind in AUTHENTICATES
        seen: set[str] = set()
        c: Any
        for c in tok.consumers:
            m.baseline += 1
            held: str | None = None  # a readable consumer's value
            if c.kind == "gitlab_ci_variable":
                where = "project" if c.project else "group" if c.group else "instance"
                scope = c.project or c.group or ""
                need(c.provider, f"{where}_variables", scope, live.count[(f"{where}_variables", scope)])
                v = live.variables.get((where, scope, c.key, c.environment_scope if where != "instance" else "*"))
                if v is not None and not v.get("hidden"):
                    held = str(v.get("value") or "")
            elif c.kind == "gitlab_webhook":
                where = "project" if c.project else "group"
                scope = str(c.project or c.group)
                need(c.provider, f"{where}_hooks", scope, live.count[(f"{where}_hooks", scope)])
                exists = any(c.hook in (str(h.get("id")), h.get("url"), h.get("name")) for h in live.hooks[(where, scope)])
                if c.mode == "recreate" and exists:
                    m.details += _due(tok, expiry, clock) or not _delivered(name, c, current[name], delivered)
            elif c.kind == "zendesk_app_setting":
                need(c.provider, "installations", "", 1)
                zd = live.zendesk.get(subdomain[c.provider]) or {}
                inst = next((i for i in zd.get("installations") or () if (i.get("settings") or {}).get("name") == c.app), None)
                app = next((a for a in zd.get("apps") or () if inst and a.get("name") == inst.get("app")), None)
                secure = any(p.get("name") == c.setting and p.get("secure") for p in (app or {}).get("parameters") or ())
                if inst is not None and not secure and isinstance((inst.get("settings") or {}).get(c.setting), str):
                    held = inst["settings"][c.setting]
            elif c.kind == "zendesk_webhook":
                need(c.provider, "webhooks", "", zcount(c.provider, "webhooks"))
                if c.endpoint is not None:
                    zd = live.zendesk.get(subdomain[c.provider]) or {}
                    hook = next((h for h in zd.get("webhooks") or () if c.webhook in (h.get("id"), h.get("name"))), None)
                    held = None if hook is None else str(hook.get("endpoint"))
            if held is None or not identifies:
                continue
            cur = current[name]
            if cur is not None and (name, cur[0], _fp(held)) in proofs:
                continue  # the ledger proves it
            prefix, _, suffix = c.value.partition("${token}")
            if c.kind == "zendesk_webhook" and c.endpoint is not None:
                prefix, _, suffix = c.endpoint.partition("${token}")
            if not (held.startswith(prefix) and held.endswith(suffix)) or len(held) <= len(prefix) + len(suffix):
                continue  # not the template's shape: nothing to identify
            value = held[len(prefix): len(held) - len(suffix)]
            if value not in seen:
                seen.add(value)
                m.identifications += 1
    m.credential_lookups = _credential_lookups(inv, live, m)
    return m


def _credential_lookups(inv: Inventory, live: _Live, m: Minimum) -> int:
    """GitLab providers whose listed PATs or access tokens include a usable one no source names."""
    named = {(s.provider, s.kind, getattr(s, "name", None)) for s in (t.source for t in inv.tokens.values())}
    kinds = {"pats": ("gitlab_personal_access_token", "user"), "project_access_tokens": ("gitlab_project_access_token", "project"),
             "group_access_tokens": ("gitlab_group_access_token", "group")}
    providers = set()
    for provider, resource, scope in m.lists:
        if resource not in kinds:
            continue
        kind, where = kinds[resource]
        rows = live.tokens_in(where, scope)
        if any(not t.get("revoked") and t.get("active", True) and (provider, kind, t["name"]) not in named for t in rows):
            providers.add(provider)
    return len(providers)


@dataclass
class ApplyMinimum:
    plan: int = 0
    credential_lookups: int = 0  # of the plan's: the GitLab credential's id (never unmanaged)
    renewals: int = 0  # mint or rotate
    revokes: int = 0
    writes: int = 0
    authentications: int = 0  # checks of the new value (authenticate with it, or read it back)
    readbacks: int = 0
    due: list[str] = field(default_factory=list)
    consumers: int = 0

    @property
    def total(self) -> int:
        return self.plan + self.renewals + self.revokes + self.writes + self.authentications + self.readbacks

    def summary(self) -> dict[str, Any]:
        return {"minimum": self.total, "plan": self.plan, "renewals": self.renewals, "revokes": self.revokes,
                "writes": self.writes, "authentications": self.authentications, "readbacks": self.readbacks,
                "due_tokens": len(self.due), "their_consumers": self.consumers}


OVERLAP_ALWAYS = ("gitlab_pipeline_trigger", "zendesk_oauth_token")


def apply_minimum(inventory: str | Path | Inventory, world_seed: str | Path, state_dir: str | Path | None,
                  now: Any) -> ApplyMinimum:
    """The fewest requests of an apply that rotates every due token (see the module docstring)."""
    inv = inventory if isinstance(inventory, Inventory) else load_inventory(inventory)
    seed = load_world_seed(world_seed)
    clock = Clock(now)
    plan_min = compute(inv, world_seed, state_dir, now=now)
    out = ApplyMinimum(plan=plan_min.total, credential_lookups=plan_min.credential_lookups)
    expiry = _seed_expiry(seed, clock)
    for name, tok in sorted(inv.tokens.items()):
        s: Any = tok.source
        if not _due(tok, expiry, clock):
            continue
        missing = _source_key(s) not in expiry
        out.due.append(name)
        overlap = s.kind in OVERLAP_ALWAYS or getattr(s, "strategy", "in_place") == "overlap"
        out.renewals += 1
        out.revokes += overlap and not missing
        if s.kind in (*AUTHENTICATES, "gitlab_pipeline_trigger"):
            out.authentications += 1
        readback_scopes: dict[tuple[str, str, str], int] = defaultdict(int)  # -> the token's consumers there
        c: Any
        for c in tok.consumers:
            out.consumers += 1
            out.writes += 2 if c.kind == "gitlab_webhook" and c.mode == "recreate" else 1
            if c.kind == "gitlab_ci_variable" and not c.hidden:
                where = "project" if c.project else "group" if c.group else "instance"
                readback_scopes[(c.provider, f"{where}_variables", c.project or c.group or "")] += 1
            elif c.kind == "zendesk_app_setting" and not _secure(seed, inv, c):
                readback_scopes[(c.provider, "installations", "")] += 1
            elif c.kind == "zendesk_webhook" and c.endpoint is not None:
                readback_scopes[(c.provider, "webhooks", "")] += 1
        # the list's pages, or one GET of each consumer there when that is fewer
        out.readbacks += sum(min(plan_min.lists.get(scope, 1), n) for scope, n in readback_scopes.items())
    return out


def _due(tok: Any, expiry: dict[tuple[str, ...], tuple[Any, Any]], clock: Clock) -> bool:
    """A token apply renews: its source is missing, expires within `rotate_before`, or was created
    before `not_before` (API tokens and external sources are observed only)."""
    s = tok.source
    if s.kind in ("external", "zendesk_api_token") or s.provider is None:
        return False
    if _source_key(s) not in expiry:
        return True
    expires, created = expiry[_source_key(s)]
    window, not_before = tok.rotation.rotate_before, tok.rotation.not_before
    expiring = expires is not None and window is not None and expires <= clock.now() + window
    return expiring or (not_before is not None and created is not None and created.date() < not_before)


def _other_instance(s: Any, zd: dict[str, Any]) -> dict[str, Any] | None:
    """The live instance of a source that is no listed token: a Zendesk OAuth client's secret (the
    client, as of when its secret was last set: a regenerated secret keeps the client's id), an
    API token, or an external source (none: the ledger's record is the truth)."""
    if s.kind == "zendesk_oauth_client_secret":
        client = next((c for c in zd.get("oauth_clients") or () if c.get("identifier") == s.client), None)
        return None if client is None else {**client, "created_at": client.get("updated_at") or client.get("created_at")}
    if s.kind == "zendesk_api_token":
        return next((t for t in zd.get("api_tokens") or () if t.get("description") == s.description), None)
    return {"id": "external", "created_at": None} if s.kind == "external" else None


def _hook_identity(c: Any) -> str:
    """A GitLab webhook consumer's identity, as the ledger names it (`kind:provider:scope:hook:where`)."""
    scope = f"project:{c.project}" if c.project else f"group:{c.group}"
    secret = c.secret if c.secret is not None else "token"
    where = secret if isinstance(secret, str) else ":".join(next(iter(secret.items())))
    return f"gitlab_webhook:{c.provider}:{scope}:{c.hook}:{where}"


def _delivered(token: str, c: Any, current: tuple[str, str, str] | None,
               delivered: set[tuple[str, str, str, str]]) -> bool:
    """The ledger records the hook `c` receiving its token's current live instance (of an
    external source, which has none: any value of it)."""
    if current is None:
        return False
    identity = _hook_identity(c)
    if current[0] == "external":
        return any(d[:3] == (identity, token, "external") for d in delivered)
    return (identity, token, current[0], current[2]) in delivered


def _created(row: dict[str, Any], clock: Clock) -> str:
    """A seeded token's creation time as the ledger writes it (UTC, to the second, `Z`)."""
    if "created_at" in row and row["created_at"] is None:
        return ""
    when = parse_when(row.get("created_at", "now"), clock)
    return when.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _source_key(s: Any) -> tuple[str, ...]:
    if s.kind == "gitlab_personal_access_token":
        return ("pat", s.name)
    if s.kind == "gitlab_project_access_token":
        return ("project", s.project, s.name)
    if s.kind == "gitlab_group_access_token":
        return ("group", s.group, s.name)
    if s.kind == "gitlab_pipeline_trigger":
        return ("trigger", s.project, s.description)
    if s.kind == "zendesk_oauth_token":
        return ("oauth", s.client)
    if s.kind == "zendesk_oauth_client_secret":
        return ("client", s.client)
    return ("other",)


def _seed_expiry(seed: dict[str, Any], clock: Clock) -> dict[tuple[str, ...], tuple[Any, Any]]:
    """Each seeded source's (expiry or None, creation) by the key `_source_key` gives its
    inventory twin."""
    gl = seed.get("gitlab") or {}

    def when(value: Any) -> Any:
        return None if value is None else parse_when(value, clock)

    found: dict[tuple[str, ...], Any] = {}
    for u in gl.get("users") or ():
        for t in u.get("tokens") or ():
            found[("pat", t["name"])] = when(t.get("expires_at")), when(t.get("created_at", "now"))
    for t in gl.get("access_tokens") or ():
        where = "project" if t.get("project") else "group"
        found[(where, t[where], t["name"])] = when(t.get("expires_at")), when(t.get("created_at", "now"))
    for t in gl.get("triggers") or ():
        found[("trigger", t["project"], t.get("description", ""))] = (when(t.get("expires_at")),
                                                                      when(t.get("created_at", "now")))
    for inst in ((seed.get("zendesk") or {}).get("instances") or {}).values():
        for t in inst.get("oauth_tokens") or ():
            found[("oauth", str(t.get("client")))] = when(t.get("expires_at")), when(t.get("created_at", "now"))
        for c in inst.get("oauth_clients") or ():
            if c.get("secret"):
                found[("client", str(c.get("identifier")))] = None, when(c.get("updated_at") or c.get("created_at", "now"))
    return found


def _secure(seed: dict[str, Any], inv: Inventory, c: Any) -> bool:
    sub = getattr(inv.providers[c.provider], "subdomain", "")
    zd = ((seed.get("zendesk") or {}).get("instances") or {}).get(sub) or {}
    inst = next((i for i in zd.get("installations") or () if (i.get("settings") or {}).get("name") == c.app), None)
    app = next((a for a in zd.get("apps") or () if inst and a.get("name") == inst.get("app")), None)
    return any(p.get("name") == c.setting and p.get("secure") for p in (app or {}).get("parameters") or ())
