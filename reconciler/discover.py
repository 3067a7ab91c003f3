"""`reconcile discover`: where live tokens are used, written as inventory YAML.

1. Scan the discovery scopes (reconciler.scopes, read-only): live tokens, and the readable places
   that may hold one: non-hidden CI/CD variables of the scopes' projects and groups, Zendesk
   webhook endpoints, non-secure app installation settings. Values arrive as `Secret`.
2. Recognise candidate values: GitLab-prefixed tokens anywhere in a value (`glpat-`, `glptt-`, ...),
   values equal to a trigger the credential owns, and Zendesk OAuth-shaped values (hex).
3. Identify each distinct candidate once, without revealing it: `GET /personal_access_tokens/self`
   with the value (PATs, project and group access tokens), comparison with the listed triggers'
   fingerprints, `GET /api/v2/oauth/tokens/current` with the value (Zendesk OAuth tokens). A value
   is sent to one provider only, of the kind that issues its format: the one whose place holds it,
   else the only one in the scopes (`issuer`); the scopes' providers are trusted ones
   (reconciler.trust).
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
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from reconciler.clients import Api
from reconciler.errors import ReconcileError
from reconciler.inventory.model import Inventory
from reconciler.kinds import noun
from reconciler.kinds._discovery import (
    Place,
    ScopeToken,
    ValueFormat,
    is_own_credential,
    scanned_consumers,
    shown,
    value_formats,
)
from reconciler.observed import LiveToken
from reconciler.scopes import ScopeScan
from reconciler.secret import Secret

if TYPE_CHECKING:
    from reconciler.engine import Session

NAME_OK = re.compile(r"[^A-Za-z0-9_.-]+")


class DiscoverError(ReconcileError):
    """A problem the user fixes (one line, exit 1)."""


@dataclass
class Candidate:
    token: Secret  # the credential inside the held value
    shape: ValueFormat | None  # None: a value the scan's lists show in full (an owned trigger's)
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
    """The readable places of the scan's lists and notes on the write-only ones, as the consumer
    kinds that read those lists see them."""
    places: list[Place] = []
    notes: list[str] = []
    kinds = scanned_consumers()
    for key, data in sorted(scan.lists.items()):
        if isinstance(data, list):
            for kind in kinds:
                found, said = kind.places(key, data, scan.lists)
                places += found
                notes += said
    return places, notes


# --- 2. candidates ---------------------------------------------------------------------------------


def candidates(places: list[Place], shown_fingerprints: set[str]) -> dict[str, Candidate]:
    """Credential-shaped values in the places, by fingerprint of the token (each tried once)."""
    found: dict[str, Candidate] = {}
    formats = value_formats()

    def add(token: str, shape: ValueFormat | None, place: Place, template: str) -> None:
        value = Secret(token)
        cand = found.setdefault(value.fingerprint(), Candidate(token=value, shape=shape))
        cand.places.append((place, template))

    for place in places:
        text = place.held.reveal()  # held only in this function's locals; never printed
        if place.held.fingerprint() in shown_fingerprints:
            add(text, None, place, "${token}")
            continue
        for shape in formats:
            token = shape.token_in(text)
            if token is not None:
                add(token, shape, place, text.replace(token, "${token}"))
                break
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


def issuer(shape: ValueFormat, cand: Candidate, apis: Mapping[str, Api]) -> dict[str, Api]:
    """The one provider a candidate may be sent to, to identify it: of the kind that issues its
    format, the one whose place holds it (the value is there already), else the only one in the
    scopes. Several (or none): empty, and the value is sent nowhere. Never each in turn: a value
    sent to every provider reaches all but its own."""
    of_kind = sorted(name for name, api in apis.items() if api.provider.kind == shape.provider_kind)
    holders = sorted({place.provider for place, _ in cand.places} & set(of_kind))
    chosen = holders or of_kind
    return {chosen[0]: apis[chosen[0]]} if len(chosen) == 1 else {}


def identify(cand: Candidate, scan: ScopeScan, apis: Mapping[str, Api]) -> ScopeToken | str:
    """The live token a candidate is, or a note why it cannot be told."""
    if cand.shape is None:
        found = shown(scan.tokens, cand.token.fingerprint())  # found: the shapeless are values the scan showed
        return found if found is not None else "holds a value a list showed, no longer listed"
    return cand.shape.identify(cand.token, scan.tokens, issuer(cand.shape, cand, apis))


# --- 4. the whole run -------------------------------------------------------------------------------


def discover(inventory: Inventory, scan: ScopeScan, apis: Mapping[str, Api],
             managed: Mapping[tuple[str, str, str], str]) -> DiscoverResult:
    places, notes = places_and_notes(scan)
    cands = candidates(places, {st.live.fingerprint for st in scan.tokens if st.live.fingerprint})
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
                                                       source=result.declaration,
                                                       managed_as=managed.get(result.family_key))
        for place, template in cand.places:
            if not safe_template(template):
                notes.append(f"{place.provider}: {place.label} holds {noun(result.kind)} "
                             f"{result.live.name!r} #{result.live.id} among other content; not written, because the "
                             "rest may hold other secrets: declare this consumer with its template by hand")
                continue
            ft.consumers.append(place.declaration(template))
            ft.labels.append(place.label)
    unused = [f"{noun(st.kind)} {st.live.name!r} #{st.live.id} ({st.live.where})"
              for st in scan.tokens
              if st.family_key not in found and st.live.usable
              and not is_own_credential(scan.credential_ids, st.provider, st.live.id, st.can_be_credential)]
    tokens = sorted(found.values(), key=lambda t: (t.provider, t.kind, t.live.name, t.live.id))
    return DiscoverResult(tokens=tokens, notes=notes, tried=len(cands), identified=identified, unused=unused)


def inventory_name(live_name: str) -> str:
    """A valid inventory token name made of a live token's name."""
    base = NAME_OK.sub("-", live_name.lower()).strip("-._")[:60] or "token"
    return base if base[0].isalnum() else "t" + base


def token_names(result: DiscoverResult, taken: set[str]) -> list[str]:
    """A valid, unique inventory name per found token: the inventory's own name when it manages
    the token, else a slug of the live name."""
    names: list[str] = []
    used = set()
    for ft in result.tokens:
        base = ft.managed_as or inventory_name(ft.live.name)
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


def run_discover(session: Session) -> DiscoverResult:
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
