"""The fewest requests a plan of an inventory can make, and the per-resource baseline, computed
from the inventory, the world seed and the ledger alone: this module does not import the engine
(reconciler.observe, reconciler.plan, reconciler.kinds, reconciler.clients), so it is a yardstick
for the engine, not a copy of it.

Minimum (what any correct plan must read):
  - one list per (provider, project or group or user or instance, resource type), times its
    pages (GitLab: `per_page=100`; Zendesk: cursor pages of 100, app installations and API tokens
    unpaginated), for the resource types the inventory's sources and consumers live in;
  - `GET /user` when a personal access token belongs to the credential's own user, and
    `GET /users?username=` per other named user (their ids key the PAT lists);
  - one `GET .../hooks/:id` per GitLab webhook in `mode: recreate` (the list omits the keys of
    URL variables and custom headers, which a recreate must not lose);
  - one identification per distinct value held by a readable consumer that the ledger does not
    prove (record missing, fingerprint or token id different from the live one), when the only
    way to tell which token a value is, is to authenticate with it (GitLab PATs and access tokens:
    `GET /personal_access_tokens/self`; Zendesk OAuth tokens: `GET /oauth/tokens/current`).
    Owned pipeline triggers are compared with their list; other kinds cannot be identified.

Baseline (a Terraform-style refresh): one GET per token that has a live source and one per
consumer.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.inventory import load_inventory
from reconciler.inventory.model import (
    GitLabCiVariable,
    GitLabGroupAccessToken,
    GitLabPersonalAccessToken,
    GitLabPipelineTrigger,
    GitLabProjectAccessToken,
    GitLabWebhook,
    Inventory,
    ZendeskApiToken,
    ZendeskAppSetting,
    ZendeskOAuthClientSecret,
    ZendeskOAuthToken,
    ZendeskWebhook,
)
from reconciler.sandbox.world import load_world_seed
from reconciler.state import LocalStore

PAGE = 100
AUTHENTICATES = (GitLabPersonalAccessToken, GitLabProjectAccessToken, GitLabGroupAccessToken, ZendeskOAuthToken)


@dataclass
class Minimum:
    lists: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (provider, resource, scope) -> pages
    details: int = 0
    identifications: int = 0
    baseline: int = 0

    @property
    def pages(self) -> int:
        return sum(self.lists.values())

    @property
    def total(self) -> int:
        return self.pages + self.details + self.identifications

    def by_provider(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for (provider, _, _), pages in self.lists.items():
            out[provider] += pages
        return dict(out)

    def summary(self) -> dict[str, Any]:
        return {"minimum": self.total, "list_calls": len(self.lists), "pages": self.pages,
                "hook_details": self.details, "identifications": self.identifications, "baseline": self.baseline}


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


def _scope(entry: dict[str, Any]) -> tuple[str, str]:
    if entry.get("project"):
        return "project", str(entry["project"])
    if entry.get("group"):
        return "group", str(entry["group"])
    return "instance", ""


def _newest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    usable = [r for r in rows if not r.get("revoked")]
    return max(usable, key=lambda r: (str(r.get("created_at", "")), int(r.get("id") or 0)), default=None)


def compute(inventory: str | Path | Inventory, world_seed: str | Path, state_dir: str | Path | None = None) -> Minimum:
    inv = inventory if isinstance(inventory, Inventory) else load_inventory(inventory)
    live = _Live(load_world_seed(world_seed))
    ledger = LocalStore(state_dir).load_ledger() if state_dir else None
    m = Minimum()
    subdomain = {name: getattr(p, "subdomain", "") for name, p in inv.providers.items()}

    def need(provider: str, resource: str, scope: str, items: int) -> None:
        m.lists[(provider, resource, scope)] = pages(items)

    def zcount(provider: str, key: str) -> int:
        return len((live.zendesk.get(subdomain[provider]) or {}).get(key) or ())

    # current live token of each source, for the ledger check: (id, value)
    current: dict[str, tuple[str, str] | None] = {}
    for name, tok in inv.tokens.items():
        s = tok.source
        m.baseline += s.provider is not None
        row: dict[str, Any] | None = None
        if isinstance(s, GitLabPersonalAccessToken):
            user = s.user or live.bot or ""
            if s.user is None:
                need(s.provider, "user", "", 1)  # type: ignore[arg-type]
            else:
                need(s.provider, "user_by_name", s.user, 1)  # type: ignore[arg-type]
            need(s.provider, "pats", user, live.count[("pats", user)])  # type: ignore[arg-type]
            row = _newest(live.tokens[("user", user, s.name)])
        elif isinstance(s, GitLabProjectAccessToken | GitLabGroupAccessToken):
            where = "project" if isinstance(s, GitLabProjectAccessToken) else "group"
            scope = s.project if isinstance(s, GitLabProjectAccessToken) else s.group
            need(s.provider, f"{where}_access_tokens", scope, live.count[(f"{where}_access_tokens", scope)])  # type: ignore[arg-type]
            row = _newest(live.tokens[(where, scope, s.name)])
        elif isinstance(s, GitLabPipelineTrigger):
            need(s.provider, "project_triggers", s.project, live.count[("project_triggers", s.project)])  # type: ignore[arg-type]
            row = _newest(live.triggers[(s.project, s.description)])
        elif isinstance(s, ZendeskOAuthToken):
            need(s.provider, "oauth_clients", "", zcount(s.provider, "oauth_clients"))  # type: ignore[arg-type]
            need(s.provider, "oauth_tokens", "", zcount(s.provider, "oauth_tokens"))  # type: ignore[arg-type]
            zd = live.zendesk.get(subdomain[str(s.provider)]) or {}
            rows = [t for t in zd.get("oauth_tokens") or () if t.get("client") == s.client
                    and sorted(t.get("scopes") or ()) == sorted(s.scopes)]
            row = _newest(rows)
        elif isinstance(s, ZendeskOAuthClientSecret):
            need(s.provider, "oauth_clients", "", zcount(s.provider, "oauth_clients"))  # type: ignore[arg-type]
        elif isinstance(s, ZendeskApiToken):
            need(s.provider, "api_tokens", "", 1)  # type: ignore[arg-type]
        current[name] = (str(row.get("id")), str(row.get("value"))) if row else None

    for name, tok in inv.tokens.items():
        s = tok.source
        identifies = isinstance(s, AUTHENTICATES)
        seen: set[str] = set()
        for c in tok.consumers:
            m.baseline += 1
            held: str | None = None  # a readable consumer's value
            if isinstance(c, GitLabCiVariable):
                where = "project" if c.project else "group" if c.group else "instance"
                scope = c.project or c.group or ""
                need(c.provider, f"{where}_variables", scope, live.count[(f"{where}_variables", scope)])
                v = live.variables.get((where, scope, c.key, c.environment_scope if where != "instance" else "*"))
                if v is not None and not v.get("hidden"):
                    held = str(v.get("value") or "")
            elif isinstance(c, GitLabWebhook):
                where = "project" if c.project else "group"
                scope = str(c.project or c.group)
                need(c.provider, f"{where}_hooks", scope, live.count[(f"{where}_hooks", scope)])
                exists = any(c.hook in (str(h.get("id")), h.get("url"), h.get("name")) for h in live.hooks[(where, scope)])
                m.details += c.mode == "recreate" and exists
            elif isinstance(c, ZendeskAppSetting):
                need(c.provider, "installations", "", 1)
                zd = live.zendesk.get(subdomain[c.provider]) or {}
                inst = next((i for i in zd.get("installations") or () if (i.get("settings") or {}).get("name") == c.app), None)
                app = next((a for a in zd.get("apps") or () if inst and a.get("name") == inst.get("app")), None)
                secure = any(p.get("name") == c.setting and p.get("secure") for p in (app or {}).get("parameters") or ())
                if inst is not None and not secure and isinstance((inst.get("settings") or {}).get(c.setting), str):
                    held = inst["settings"][c.setting]
            elif isinstance(c, ZendeskWebhook):
                need(c.provider, "webhooks", "", zcount(c.provider, "webhooks"))
                if c.endpoint is not None:
                    zd = live.zendesk.get(subdomain[c.provider]) or {}
                    hook = next((h for h in zd.get("webhooks") or () if c.webhook in (h.get("id"), h.get("name"))), None)
                    held = None if hook is None else str(hook.get("endpoint"))
            if held is None or not identifies:
                continue
            record = ledger.get(c.identity) if ledger is not None else None
            cur = current[name]
            if record is not None and cur is not None and record.fingerprint == _fp(held) and record.token_id == cur[0]:
                continue  # the ledger proves it
            prefix, _, suffix = c.value.partition("${token}")
            if isinstance(c, ZendeskWebhook) and c.endpoint is not None:
                prefix, _, suffix = c.endpoint.partition("${token}")
            if not (held.startswith(prefix) and held.endswith(suffix)) or len(held) <= len(prefix) + len(suffix):
                continue  # not the template's shape: nothing to identify
            value = held[len(prefix): len(held) - len(suffix)]
            if value not in seen:
                seen.add(value)
                m.identifications += 1
    return m
