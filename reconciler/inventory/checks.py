"""Meaning and policy checks on the built model: what a schema cannot say.

References between sections, value templates, one place bound to one token, rotation against
policy, plain http (to a provider, or a value sent to a URL) and the warnings people need. What only one kind knows (GitLab's
masking rules, scopes against policy, the Zendesk API-token sunset) is that kind's `check`, which
runs here. Every finding is a `Diagnostic` at the key it is about.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, NamedTuple

from reconciler.inventory.durations import format_duration
from reconciler.inventory.model import (
    Consumer,
    Diagnostic,
    GitLabProvider,
    Inventory,
    Located,
    Policy,
    Rotation,
    Source,
    Token,
    ZendeskProvider,
    finding,
)
from reconciler.inventory.schema import suggestion
from reconciler.kinds import Creator, consumer_kind, source_kind
from reconciler.kinds._zendesk import ZENDESK_API_TOKEN_SUNSET

if TYPE_CHECKING:
    from reconciler.plan_model import Severity

TOKEN_PLACEHOLDER = "${token}"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


class UrlTarget(NamedTuple):
    """Where a URL connects, as the HTTP stack reads it."""

    scheme: str
    host: str  # lower case, an IPv6 address without its brackets
    port: int | None
    userinfo: str | None  # `user:password@`, when the URL carries one

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS


def url_target(url: str) -> UrlTarget | None:
    """Where `url` connects, read by urllib3's parser: requests prepares every URL with it and
    urllib3 connects where it says, so the host judged here is the host connected to
    (`urllib.parse` reads `http://evil\\@localhost` as localhost; requests connects to evil).
    None when the HTTP stack cannot use the URL at all."""
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    try:
        parts = parse_url(url)
    except (LocationParseError, ValueError):
        return None
    return UrlTarget((parts.scheme or "").lower(), (parts.host or "").strip("[]").lower(), parts.port, parts.auth)


def plain_http_host(url: object) -> str | None:
    """The host `url` reaches over plain http off this machine, or None (https, loopback, not a URL)."""
    target = url_target(url) if isinstance(url, str) else None
    return target.host if target is not None and target.scheme == "http" and not target.loopback else None


def live_plain_http_findings(consumer: Consumer, observation_details: dict[str, object],
                             what: str) -> list[tuple[Severity, str, str]]:
    """A plan error when observe found the live place sends `what` over plain http (its URL is
    only known live) and the consumer has not said `allow_plain_http: true`."""
    host = observation_details.get("plain_http")
    if not host or getattr(consumer, "allow_plain_http", False):
        return []
    return [("error", "plain_http", f"{consumer.label}: {what} goes to http://{host} in clear: use https://, "
                                    "or say `allow_plain_http: true` if the receiver cannot do https")]


def plain_http_findings(obj: Located, key: str, path: str, template: str) -> list[Diagnostic]:
    """An error when `template` is a plain-http URL off this machine, unless `obj` says
    `allow_plain_http: true`: the value would cross the network in clear."""
    return _plain_http_findings(obj, key, path, template_target(template))


def template_target(template: str) -> UrlTarget | None:
    """Where a value template sends the value, when it is a URL (`url_target` of it)."""
    return url_target(template.replace(TOKEN_PLACEHOLDER, "token"))


def _plain_http_findings(obj: Located, key: str, path: str, target: UrlTarget | None) -> list[Diagnostic]:
    if target is None or target.scheme != "http" or target.loopback or getattr(obj, "allow_plain_http", False):
        return []
    where = f"http://{target.host}"
    hint = ("; if the receiver cannot do https and you accept that, say `allow_plain_http: true`"
            if hasattr(obj, "allow_plain_http") else "")
    return [finding(obj, key, path, f"{where} would receive the value in clear over plain http: use https://{hint}")]


def template_findings(obj: Located, key: str, path: str, text: str, parts: tuple[str, ...] = ()) -> list[Diagnostic]:
    """What is wrong with the template `text` at `key` of `obj`: a placeholder the source's value
    does not have, or none at all. A single value is `${token}`; a credential of `parts` (an
    OAuth client's identifier and secret) is taken part by part, `${token.PART}`."""
    names = _PLACEHOLDER.findall(text)
    wanted = ["${token." + p + "}" for p in parts] if parts else [TOKEN_PLACEHOLDER]
    unknown = sorted({n for n in names if n != "token" and not n.startswith("token.")})
    if unknown:
        return [finding(obj, key, path, f"unknown placeholder {', '.join('${' + n + '}' for n in unknown)}: only "
                                        f"{' and '.join(wanted)} {'is' if len(wanted) == 1 else 'are'} substituted")]
    missing = sorted({n[len("token."):] for n in names if n.startswith("token.")} - set(parts))
    if missing:
        has = (f"its parts are {', '.join(parts)}" if parts else "it is a single value: use ${token}")
        return [finding(obj, key, path, f"the source has no part {', '.join(repr(m) for m in missing)}: {has}")]
    if parts and "token" in names:
        return [finding(obj, key, path, f"the source's credential has parts ({', '.join(parts)}) and no whole value: "
                                        f"name the parts this place receives, e.g. {' and '.join(wanted)}")]
    if not names:
        return [finding(obj, key, path, f"the template {text!r} does not contain {' or '.join(wanted)}, so the consumer "
                                        "would never receive the token")]
    return []


def allowed_scope_findings(source: Source, scopes: tuple[str, ...], path: str, policy: Policy) -> list[Diagnostic]:
    """Each of `scopes` that `policy.allowed_scopes` does not allow for the source's kind."""
    allowed = policy.allowed_scopes.get(source.kind)
    if allowed is None:
        return []
    return [
        finding(source, "scopes", path,
                f"scope {scope!r} is not allowed by policy.allowed_scopes.{source.kind} ({', '.join(allowed) or 'none'})")
        for scope in scopes
        if scope not in allowed
    ]


class _Checker:
    def __init__(self, inv: Inventory) -> None:
        self.inv = inv
        self.found: list[Diagnostic] = []

    def report(self, obj: Located, key: str, path: str, message: str, *, warning: bool = False) -> None:
        """A finding about `key` of `obj`, which sits at dotted `path` in the document."""
        self.found.append(finding(obj, key, path, message, warning=warning))

    # --- references --------------------------------------------------------------------------

    def provider_ref(self, obj: Located, path: str, name: str | None, kind: str | None, what: str) -> None:
        if kind is None:
            return
        provider = self.inv.providers.get(name or "")
        if provider is None:
            known = [n for n, p in self.inv.providers.items() if p.kind == kind]
            hint = suggestion(name or "", known) or (f"; {kind} providers: {', '.join(known)}" if known else f"; no {kind} provider is defined")
            self.report(obj, "provider", path, f"unknown provider {name!r}{hint}")
        elif provider.kind != kind:
            self.report(obj, "provider", path, f"{what} needs a {kind} provider, but {name!r} is a {provider.kind} provider")

    def references(self) -> None:
        for name, token in self.inv.tokens.items():
            src = token.source
            self.provider_ref(src, f"tokens.{name}.source", src.provider, source_kind(src.kind).provider_kind, src.kind)
            for i, consumer in enumerate(token.consumers):
                path = f"tokens.{name}.consumers[{i}]"
                self.provider_ref(consumer, path, consumer.provider, consumer_kind(consumer.kind).provider_kind, consumer.kind)
        for i, scope in enumerate(self.inv.discovery.gitlab):
            self.provider_ref(scope, f"discovery.gitlab[{i}]", scope.provider, "gitlab", "GitLab discovery")
        for i, zendesk_scope in enumerate(self.inv.discovery.zendesk):
            self.provider_ref(zendesk_scope, f"discovery.zendesk[{i}]", zendesk_scope.provider, "zendesk", "Zendesk discovery")
        state = self.inv.state
        if state.backend == "gitlab":
            self.provider_ref(state, "state", state.provider, "gitlab", "the gitlab state backend")

    # --- created_with: one token creates another ------------------------------------------------

    def creators(self) -> None:
        """`created_with` names another token of the inventory that can create as its user on the
        same provider (its value is sent only there), and no chain of them comes back to itself."""
        for name, token in self.inv.tokens.items():
            creator = token.source.created_with
            if creator is None:
                continue
            problem = self.creator_problem(name, token, creator) or creator_cycle(self.inv.tokens, name)
            if problem is not None:
                self.report(token.source, "created_with", f"tokens.{name}.source", problem)

    def creator_problem(self, name: str, token: Token, creator_name: str) -> str | None:
        creator = self.inv.tokens.get(creator_name)
        if creator_name == name:
            return "a token cannot be created with itself"
        if creator is None:
            hint = suggestion(creator_name, list(self.inv.tokens))
            return f"unknown token {creator_name!r}{hint or ''}: created_with names another token of the inventory"
        kind = source_kind(creator.source.kind)
        if not isinstance(kind, Creator):
            return (f"token {creator_name} is of kind {creator.source.kind}: only a GitLab personal, project, group or "
                    "service-account token can create another")
        if creator.source.provider != token.source.provider:
            return (f"token {creator_name} is on provider {creator.source.provider}, this one on "
                    f"{token.source.provider}: a token's value is sent only to its own provider")
        if creator.state == "absent":
            return f"token {creator_name} is declared absent: it cannot create this one"
        why = kind.creator_problem(creator.source)
        return None if why is None else f"token {creator_name} cannot create others: {why}"

    # --- templates ---------------------------------------------------------------------------

    def templates(self) -> None:
        sound: set[tuple[str, tuple[str, ...]]] = set()  # (template, parts) found right: most are `${token}`
        for name, token in self.inv.tokens.items():
            parts = source_kind(token.source.kind).parts(token.source)
            for i, consumer in enumerate(token.consumers):
                if parts and consumer_kind(consumer.kind).template(consumer) != consumer.value:
                    continue  # the value travels in another template (a webhook's endpoint), which its kind checks
                if (consumer.value, parts) in sound:
                    continue
                found = template_findings(consumer, "value", f"tokens.{name}.consumers[{i}]", consumer.value, parts)
                if not found:
                    sound.add((consumer.value, parts))
                self.found += found

    # --- one place, one token ----------------------------------------------------------------

    def bindings(self) -> None:
        sources: dict[str, tuple[str, Located]] = {}
        places: dict[str, tuple[str, Consumer]] = {}
        for name, token in self.inv.tokens.items():
            ident = token.source.identity
            if ident in sources:
                other, first = sources[ident]
                self.report(token.source, "", f"tokens.{name}.source", f"the same live credential is already managed by token {other} at {first.pos}")
            else:
                sources[ident] = (name, token.source)
            for i, consumer in enumerate(token.consumers):
                ident = consumer.identity
                if ident in places:
                    other, first = places[ident]
                    self.report(
                        consumer,
                        "",
                        f"tokens.{name}.consumers[{i}]",
                        f"{consumer.label} is already bound to token {other} at {first.pos}: one place can hold only one token",
                    )
                else:
                    places[ident] = (name, consumer)

    # --- what each kind checks itself --------------------------------------------------------

    def kinds(self) -> None:
        for name, token in self.inv.tokens.items():
            self.found += source_kind(token.source.kind).check(token, self.inv, f"tokens.{name}.source")
            for i, consumer in enumerate(token.consumers):
                path = f"tokens.{name}.consumers[{i}]"
                self.found += consumer_kind(consumer.kind).check(token, consumer, self.inv, path)

    # --- rotation and policy -----------------------------------------------------------------

    def rotation_rules(self, rot: Rotation, path: str, own: set[str]) -> None:
        """Check one effective rotation; report only at keys in `own` (the keys this place
        set itself), so that a default breaking a rule is reported once, at the defaults."""
        policy = self.inv.policy
        if rot.rotate_before is not None and rot.lifetime is not None and rot.rotate_before >= rot.lifetime:
            key = "rotate_before" if "rotate_before" in own else "lifetime"
            if key in own:
                self.report(
                    rot,
                    key,
                    path,
                    f"rotate_before ({format_duration(rot.rotate_before)}) must be shorter than lifetime ({format_duration(rot.lifetime)}), or the token is always due",
                )
        if rot.lifetime is not None and policy.max_lifetime is not None and rot.lifetime > policy.max_lifetime and "lifetime" in own:
            self.report(rot, "lifetime", path, f"lifetime {format_duration(rot.lifetime)} exceeds policy.max_lifetime {format_duration(policy.max_lifetime)}")

    def rotations(self) -> None:
        defaults = self.inv.defaults
        self.rotation_rules(defaults, "defaults.rotation", set(defaults.key_pos))
        for name, token in self.inv.tokens.items():
            rot = token.rotation
            own = {k for k, pos in rot.key_pos.items() if pos != defaults.key_pos.get(k)}
            self.rotation_rules(rot, f"tokens.{name}.rotation", own)

    # --- transport ---------------------------------------------------------------------------

    def transport(self) -> None:
        """Every request carries the provider credential: never over plain HTTP off this machine
        (an inventory change must not be able to send it across the network in clear), never with
        a user name or password in the URL; and a value goes over plain http to no consumer that
        has not said it may."""
        for name, provider in self.inv.providers.items():
            if not isinstance(provider, GitLabProvider):
                continue  # Zendesk is reached by subdomain, always over https
            self.provider_url(provider, f"providers.{name}")
        targets: dict[str, UrlTarget | None] = {}  # most consumers share a template (`${token}`): parse it once
        for name, token in self.inv.tokens.items():
            for i, consumer in enumerate(token.consumers):
                template = consumer_kind(consumer.kind).template(consumer)
                if template not in targets:
                    targets[template] = template_target(template)
                key = "endpoint" if getattr(consumer, "endpoint", None) is not None else "value"
                self.found += _plain_http_findings(consumer, key, f"tokens.{name}.consumers[{i}]", targets[template])

    def provider_url(self, provider: GitLabProvider, path: str) -> None:
        target = url_target(provider.url)
        if target is None or target.scheme not in ("http", "https") or not target.host:
            self.report(provider, "url", path, f"{provider.url!r} is not a URL the HTTP client can use")
        elif target.userinfo is not None:
            self.report(provider, "url", path, "a user name or password in the URL is refused: the credential "
                                               "comes from auth.token_env, and the URL says only where it goes")
        elif target.scheme == "http" and not target.loopback:
            self.report(provider, "url", path,
                        "http:// would send the credential in clear: use https:// "
                        "(plain http is allowed for loopback hosts only, e.g. a local sandbox)")

    def zendesk_domains(self) -> None:
        """The Zendesk credential goes to `https://SUBDOMAIN.DOMAIN`: only under zendesk.com, or a
        domain the environment (not the inventory) allows, for a sandbox or a test."""
        import os

        from reconciler.trust import ZENDESK_DOMAINS_ENV, zendesk_domains

        allowed = zendesk_domains(os.environ)
        for name, provider in self.inv.providers.items():
            if isinstance(provider, ZendeskProvider) and provider.domain.lower() not in allowed:
                self.report(provider, "domain", f"providers.{name}",
                            f"{provider.domain!r} is not a Zendesk domain: the credential is sent only to "
                            f"SUBDOMAIN.zendesk.com (${ZENDESK_DOMAINS_ENV} adds a domain for a sandbox or a test)")

    # --- warnings ----------------------------------------------------------------------------

    def warnings(self) -> None:
        for name, provider in self.inv.providers.items():
            if isinstance(provider, ZendeskProvider) and provider.api_token_env:
                self.report(provider, "api_token_env", f"providers.{name}.auth", f"{ZENDESK_API_TOKEN_SUNSET}: authenticate with oauth_token_env instead", warning=True)
        for name, token in self.inv.tokens.items():
            if not token.consumers and token.state == "present":
                self.report(token, "", f"tokens.{name}", "no consumers: nothing receives the new value when it rotates", warning=True)

    def run(self) -> list[Diagnostic]:
        for step in (self.references, self.creators, self.transport, self.zendesk_domains, self.templates, self.bindings, self.kinds, self.rotations,
                     self.warnings):
            step()
        return self.found


def creator_cycle(tokens: Mapping[str, Token], name: str) -> str | None:
    """The cycle `created_with` makes from token `name` back to itself, in words, or None."""
    chain = [name]
    current = tokens[name].source.created_with
    while current is not None and current in tokens and current not in chain:
        chain.append(current)
        current = tokens[current].source.created_with
    if current != name:
        return None
    return f"created_with makes a cycle: {' -> '.join([*chain, name])}; one of them must be created otherwise"


def check_inventory(inv: Inventory) -> list[Diagnostic]:
    """Every meaning/policy error and warning of a built inventory, sorted by position."""
    return sorted(_Checker(inv).run(), key=lambda d: (d.pos, d.key))


def iter_errors(found: list[Diagnostic]) -> Iterator[Diagnostic]:
    return (d for d in found if d.severity == "error")
