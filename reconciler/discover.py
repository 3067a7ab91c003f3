"""`reconcile discover`: where live tokens are used, written as inventory YAML.

1. Scan the discovery scopes (reconciler.scopes, read-only): live tokens, and the readable places
   that may hold one: non-hidden CI/CD variables of the scopes' projects and groups, Zendesk
   webhook endpoints, non-secure app installation settings. Values arrive as `Secret`.
2. Recognise candidate values: GitLab-prefixed tokens anywhere in a value (`glpat-`, `glptt-`, ...),
   values equal to a trigger the credential owns, and Zendesk OAuth-shaped values (hex).
3. Identify each distinct candidate once, without revealing it: `GET /personal_access_tokens/self`
   with the value (PATs, project and group access tokens), comparison with the listed triggers'
   fingerprints, `GET /api/v2/oauth/tokens/current` with the value (Zendesk OAuth tokens).
4. Write one inventory token per identified live token, with the places it was found as
   consumers (a value that embeds the token becomes the consumer's `value:`/`endpoint:` template),
   and comments for what cannot be determined: write-only places (hidden variables, GitLab hook
   secrets, Zendesk webhook credentials, secure app settings) and values no provider recognises.

Only GET requests; no value is ever printed or written: the YAML holds names, paths and templates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from reconciler.clients import Api, GitLabApi, ZendeskApi
from reconciler.inventory.model import Inventory
from reconciler.kinds import ListKey, noun
from reconciler.observed import LiveToken
from reconciler.scopes import ID_FAMILY, ScopeScan, ScopeToken
from reconciler.secret import Secret

GITLAB_TOKEN = re.compile(r"(?:glpat|glptt|gldt|glrt|glcbt|glimt|glsoat|gloas|glft|glagent|glffct)-[A-Za-z0-9_-]{20,}")
ZENDESK_OAUTH = re.compile(r"[0-9a-fA-F]{32,64}")  # Zendesk OAuth access tokens are 64 hex characters
NAME_OK = re.compile(r"[^A-Za-z0-9_.-]+")
class DiscoverError(Exception):
    """A problem the user fixes (one line, exit 1)."""


@dataclass(frozen=True)
class Place:
    """A readable place and the value it holds."""

    provider: str
    label: str  # human: "CI variable KEY (project a/b)"
    consumer: dict[str, Any]  # inventory YAML of the consumer, without its template
    template_key: str  # "value" or "endpoint"
    held: Secret


@dataclass
class Candidate:
    token: Secret  # the credential inside the held value
    shape: str  # gitlab_prefix | trigger_value | zendesk_oauth
    places: list[tuple[Place, str]] = field(default_factory=list)  # (place, template)


@dataclass
class FoundToken:
    provider: str
    kind: str
    live: LiveToken
    source: dict[str, Any]
    managed_as: str | None
    consumers: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


@dataclass
class DiscoverResult:
    tokens: list[FoundToken]
    notes: list[str]  # what could not be determined
    tried: int  # distinct candidate values tried
    identified: int
    unused: list[str]  # live tokens found in no readable place
    generated_at: datetime | None = None

    @property
    def consumers(self) -> int:
        return sum(len(t.consumers) for t in self.tokens)


# --- 1. readable places and write-only notes ---------------------------------------------------


def places_and_notes(scan: ScopeScan) -> tuple[list[Place], list[str]]:
    places: list[Place] = []
    notes: list[str] = []
    for key, data in sorted(scan.lists.items()):
        if not isinstance(data, list):
            continue
        if key.resource in ("project_variables", "group_variables"):
            scope_kind = key.resource.split("_")[0]
            for row in data:
                label = f"CI variable {row.get('key')} ({scope_kind} {key.scope}, scope {row.get('environment_scope', '*')})"
                if row.get("value") is None:
                    if row.get("hidden"):
                        notes.append(f"{key.provider}: {label} is hidden: write-only, its token cannot be told")
                    continue
                places.append(Place(key.provider, label, _variable_yaml(key, scope_kind, row), "value", row["value"]))
        elif key.resource in ("project_hooks", "group_hooks"):
            for row in data:
                detail = scan.data(ListKey(key.provider, key.resource[:-1], f"{key.scope}#{row['id']}")) or row
                secret_parts = [w for w, present in (
                    ("a secret token", row.get("token_present")),
                    ("URL variables " + ", ".join(_keys(detail.get("url_variables"))), _keys(detail.get("url_variables"))),
                    ("custom headers " + ", ".join(_keys(detail.get("custom_headers"))), _keys(detail.get("custom_headers"))),
                ) if present]
                if secret_parts:
                    notes.append(f"{key.provider}: webhook {row.get('url')} ({key.resource.split('_')[0]} {key.scope}) "
                                 f"has {' and '.join(secret_parts)}: write-only, cannot tell which token")
        elif key.resource == "webhooks":
            for row in data:
                name = str(row.get("name") or row.get("id"))
                auth = row.get("authentication") or {}
                if auth.get("type"):
                    notes.append(f"{key.provider}: Zendesk webhook {name!r} authenticates with {auth['type']}: "
                                 "the credential is write-only, cannot tell which token")
                if row.get("endpoint") is not None:
                    places.append(Place(key.provider, f"Zendesk webhook {name!r} (endpoint)",
                                        {"kind": "zendesk_webhook", "provider": key.provider, "webhook": name},
                                        "endpoint", row["endpoint"]))
        elif key.resource == "installations":
            for row in data:
                settings = row.get("settings") or {}
                name = settings.get("name")  # the installation's name: not a credential
                app_name = str((name.reveal() if isinstance(name, Secret) else name)
                               or (row.get("app") or {}).get("name") or row.get("id"))
                secure = {p["name"] for p in (row.get("app") or {}).get("parameters") or () if p.get("secure")}
                for setting in sorted(secure):
                    notes.append(f"{key.provider}: app {app_name!r} secure setting {setting}: write-only, cannot tell "
                                 "which token")
                for setting, value in sorted(settings.items()):
                    if setting == "name" or setting in secure or not isinstance(value, Secret):
                        continue
                    places.append(Place(key.provider, f"app {app_name!r} setting {setting}",
                                        {"kind": "zendesk_app_setting", "provider": key.provider, "app": app_name,
                                         "setting": setting}, "value", value))
    return places, notes


def _keys(items: Any) -> list[str]:
    """Keys of a hook's URL variables / custom headers (a list of {key} or a mapping)."""
    if isinstance(items, dict):
        return sorted(str(k) for k in items)
    return sorted(str(i.get("key")) for i in items or () if isinstance(i, dict))


def _variable_yaml(key: ListKey, scope_kind: str, row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "gitlab_ci_variable", "provider": key.provider, scope_kind: key.scope,
                           "key": row.get("key")}
    if row.get("environment_scope", "*") != "*":
        out["environment_scope"] = row["environment_scope"]
    out["masked"] = bool(row.get("masked"))
    out["protected"] = bool(row.get("protected"))
    if row.get("raw"):
        out["raw"] = True
    if row.get("variable_type") == "file":
        out["variable_type"] = "file"
    return out


# --- 2. candidates ---------------------------------------------------------------------------------


def candidates(places: list[Place], trigger_fingerprints: set[str]) -> dict[str, Candidate]:
    """Credential-shaped values in the places, by fingerprint of the token (each tried once)."""
    found: dict[str, Candidate] = {}

    def add(token: str, shape: str, place: Place, template: str) -> None:
        value = Secret(token)
        cand = found.setdefault(value.fingerprint(), Candidate(token=value, shape=shape))
        cand.places.append((place, template))

    for place in places:
        text = place.held.reveal()  # held only in this function's locals; never printed
        if place.held.fingerprint() in trigger_fingerprints:
            add(text, "trigger_value", place, "${token}")
            continue
        matches = list(dict.fromkeys(GITLAB_TOKEN.findall(text)))
        if len(matches) == 1:
            add(matches[0], "gitlab_prefix", place, text.replace(matches[0], "${token}"))
            continue
        bare = text.removeprefix("Bearer ").strip()
        if ZENDESK_OAUTH.fullmatch(bare):
            add(bare, "zendesk_oauth", place, text.replace(bare, "${token}"))
    return found


_PREFIXED = re.compile(r"[A-Za-z]{1,20} \$\{token\}")  # Bearer ${token}, token ${token}
_PLAIN_PARAM = re.compile(r"[A-Za-z0-9_.-]{0,32}")
_SECRET_WORDS = ("auth", "key", "pass", "secret", "sig", "token")


def safe_template(template: str) -> bool:
    """Whether a template derived from a held value can be written to the inventory.

    The rest of the value (what is not the token) is written as it is, so it must not hold other
    secrets: only the bare token, `WORD ${token}`, or a URL without user info whose other query
    parameters are short plain values with names that are not credential names.
    """
    if template == "${token}" or _PREFIXED.fullmatch(template):
        return True
    if any(c.isspace() for c in template):
        return False
    url = urlsplit(template)
    if url.scheme not in ("http", "https") or url.username or url.password or url.fragment:
        return False
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        if value == "${token}":
            continue
        if any(word in name.lower() for word in _SECRET_WORDS) or not _PLAIN_PARAM.fullmatch(value):
            return False
    return "${token}" in template


# --- 3. identification ---------------------------------------------------------------------------


def identify(cand: Candidate, scan: ScopeScan, apis: Mapping[str, Api]) -> ScopeToken | str:
    """The live token a candidate is, or a note why it cannot be told."""
    value = cand.token
    if cand.shape == "trigger_value" or value.reveal().startswith("glptt-"):
        fingerprint = value.fingerprint()
        for st in scan.tokens:
            if st.kind == "gitlab_pipeline_trigger" and st.live.fingerprint == fingerprint:
                return st
        return ("holds a pipeline trigger token that no trigger of the scopes' projects shows in full "
                "(deleted, or owned by another user)")
    if value.reveal().startswith("glpat-"):
        for name, api in sorted(apis.items()):
            if not isinstance(api, GitLabApi):
                continue
            ident = api.identify_token(value)
            if ident.token_id is None:
                continue
            for st in scan.tokens:
                if st.provider == name and ID_FAMILY[st.kind] == "gitlab_token" and st.live.id == ident.token_id:
                    return st
            return f"holds live GitLab token #{ident.token_id} of {name}, outside the discovery scopes"
        return "holds a GitLab token that GitLab refuses (revoked, expired or unknown)"
    if cand.shape == "gitlab_prefix":
        return f"holds a GitLab {value.reveal().split('-', 1)[0]}- token, a kind reconcile does not manage"
    for name, api in sorted(apis.items()):
        if not isinstance(api, ZendeskApi):
            continue
        ident = api.identify_oauth_token(value)
        if ident.token_id is None:
            continue
        for st in scan.tokens:
            if st.provider == name and st.kind == "zendesk_oauth_token" and st.live.id == ident.token_id:
                return st
        return f"holds Zendesk OAuth token #{ident.token_id} of {name}"
    # GET /oauth/tokens/current answers 403 to a token without the `read` scope, so such a token
    # looks refused too; API tokens and client secrets cannot be tried without using them.
    return ("holds a hex value no Zendesk instance in scope shows as an OAuth token (an OAuth token without "
            "the read scope, an API token or an OAuth client secret cannot be identified without using it)")


def source_yaml(st: ScopeToken, scan: ScopeScan) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": st.kind, "provider": st.provider}
    row = st.row
    if st.kind == "gitlab_personal_access_token":
        out.update(name=st.live.name, scopes=list(st.live.scopes) or ["api"])
        username = scan.users.get(st.provider, {}).get(str(row.get("user_id")), st.scope)
        if username and not username.startswith("#"):
            out["user"] = username
    elif st.kind in ("gitlab_project_access_token", "gitlab_group_access_token"):
        resource = st.kind.split("_")[1]
        out.update({resource: st.scope, "name": st.live.name, "scopes": list(st.live.scopes) or ["api"]})
        if st.live.access_level is not None:
            out["access_level"] = st.live.access_level
    elif st.kind == "gitlab_pipeline_trigger":
        out.update(project=st.scope, description=st.live.name)
    elif st.kind == "zendesk_oauth_token":
        out.update(client=row.get("client"), scopes=sorted(row.get("scopes") or ()))
    return out


# --- 4. the whole run -------------------------------------------------------------------------------


def discover(inventory: Inventory, scan: ScopeScan, apis: Mapping[str, Api],
             managed: Mapping[tuple[str, str, str], str]) -> DiscoverResult:
    places, notes = places_and_notes(scan)
    triggers = {st.live.fingerprint for st in scan.tokens if st.kind == "gitlab_pipeline_trigger" and st.live.fingerprint}
    cands = candidates(places, triggers)
    found: dict[tuple[str, str, str], FoundToken] = {}
    identified = 0
    for _, cand in sorted(cands.items()):
        result = identify(cand, scan, apis)
        if isinstance(result, str):
            notes.extend(f"{place.provider}: {place.label} {result}" for place, _ in cand.places)
            continue
        identified += 1
        ft = found.get(result.family_key)
        if ft is None:
            ft = found[result.family_key] = FoundToken(provider=result.provider, kind=result.kind, live=result.live,
                                                       source=source_yaml(result, scan),
                                                       managed_as=managed.get(result.family_key))
        for place, template in cand.places:
            if not safe_template(template):
                notes.append(f"{place.provider}: {place.label} holds {noun(result.kind)} "
                             f"{result.live.name!r} #{result.live.id} among other content; not written, because the "
                             "rest may hold other secrets: declare this consumer with its template by hand")
                continue
            consumer = dict(place.consumer)
            if template != "${token}":
                consumer[place.template_key] = template
            elif place.template_key == "endpoint":
                consumer["endpoint"] = template
            ft.consumers.append(consumer)
            ft.labels.append(place.label)
    unused = [f"{noun(st.kind)} {st.live.name!r} #{st.live.id} ({st.live.where})"
              for st in scan.tokens
              if st.family_key not in found and st.live.usable and scan.credential_ids.get(st.provider) != st.live.id]
    tokens = sorted(found.values(), key=lambda t: (t.provider, t.kind, t.live.name, t.live.id))
    return DiscoverResult(tokens=tokens, notes=notes, tried=len(cands), identified=identified, unused=unused)


def token_names(result: DiscoverResult, taken: set[str]) -> list[str]:
    """A valid, unique inventory name per found token: the inventory's own name when it manages
    the token, else a slug of the live name."""
    names: list[str] = []
    used = set()
    for ft in result.tokens:
        base = ft.managed_as or (NAME_OK.sub("-", ft.live.name.lower()).strip("-._")[:60] or "token")
        if not base[0].isalnum():
            base = "t" + base
        name, n = base, 2
        while name in used or (not ft.managed_as and name in taken):
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        names.append(name)
    return names


def render_yaml(result: DiscoverResult, inventory: Inventory, source: str, now: datetime) -> str:
    lines = [
        f"# Written by `reconcile discover` on {now.date()} from the discovery scopes of {source}.",
        f"# {result.tried} candidate values tried, {result.identified} identified: {len(result.tokens)} tokens, "
        f"{result.consumers} consumers.",
        "# Review it before it joins the inventory: add rotation, owner and policy as needed. No value is written",
        "# here: consumers that embed a token name it as ${token} in their template.",
        "",
    ]
    names = token_names(result, set(inventory.tokens))
    if not result.tokens:
        lines.append("tokens: {}")
    else:
        lines.append("tokens:")
    for name, ft in zip(names, result.tokens, strict=True):
        lines.append("")
        if ft.managed_as:
            token = inventory.tokens[ft.managed_as]
            lines.append(f"  # already in the inventory as {ft.managed_as} ({token.pos.file}:{token.pos.line}); "
                         "the places below are where it was found")
        entry: dict[str, Any] = {
            "description": f"Found by reconcile discover: {noun(ft.kind)} {ft.live.name!r} "
                           f"#{ft.live.id} ({ft.live.where})",
            "source": ft.source,
            "consumers": ft.consumers,
        }
        if ft.managed_as and inventory.tokens[ft.managed_as].owner:
            entry["owner"] = inventory.tokens[ft.managed_as].owner
        text = yaml.safe_dump({name: entry}, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)
        lines += ["  " + line if line else line for line in text.rstrip().splitlines()]
    if result.notes:
        lines += ["", "# Not determined (write-only places, values no provider recognises):"]
        lines += [f"#   - {note}" for note in result.notes]
    if result.unused:
        lines += ["", "# Live tokens found in no readable place (perhaps in a write-only one above):"]
        lines += [f"#   - {item}" for item in result.unused]
    return "\n".join(lines) + "\n"


def run_discover(session: Any, *, sandbox: bool = False) -> DiscoverResult:
    """Scan, recognise and identify, for `session` (reconciler.engine). Read-only."""
    from reconciler.pipeline import observe_session
    from reconciler.scopes import managed_keys, provider_apis, scan_scopes, scope_providers

    inventory = session.inventory
    scoped = scope_providers(inventory)
    if not scoped:
        raise DiscoverError(f"{inventory_file(inventory)}: discovery: declares no scope; add discovery.gitlab "
                            "(provider, users, groups, projects) or discovery.zendesk (provider)")
    observed = observe_session(session)
    apis = provider_apis(session.clients, scoped)
    scan = scan_scopes(inventory, apis, places=True)
    result = discover(inventory, scan, apis, managed_keys(observed, inventory))
    result.notes = [f"could not scan {e}" for e in scan.errors] + result.notes
    result.generated_at = session.now
    return result


def inventory_file(inventory: Inventory) -> str:
    pos = inventory.discovery.pos
    return f"{pos.file}:{pos.line}" if pos.line else "the inventory"
