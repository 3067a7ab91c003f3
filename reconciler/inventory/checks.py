"""Meaning and policy checks on the built model: what a schema cannot say.

References between sections, value templates, one place bound to one token, GitLab's masking
rules, rotation against policy, and the warnings people need (Zendesk API-token sunset, PAT
overlap needing an administrator). Every finding is a `Diagnostic` at the key it is about.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from reconciler.inventory.durations import format_duration
from reconciler.inventory.model import (
    CONSUMER_PROVIDER_KIND,
    SOURCE_PROVIDER_KIND,
    Consumer,
    Diagnostic,
    GitLabCiVariable,
    GitLabGroupAccessToken,
    GitLabPersonalAccessToken,
    GitLabProjectAccessToken,
    GitLabProvider,
    GitLabWebhook,
    Inventory,
    Located,
    Rotation,
    Token,
    ZendeskApiToken,
    ZendeskProvider,
    ZendeskWebhook,
)
from reconciler.inventory.schema import suggestion

TOKEN_PLACEHOLDER = "${token}"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")

# GitLab's masking rules (Ci::Maskable::REGEX and MASK_AND_RAW_REGEX, see
# ../shared/reference/gitlab-api.md section 4): masked values are >= 8 characters of this
# alphabet; masked raw values are >= 8 characters of anything but whitespace.
MASKABLE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+=/@:.~-")

# The characters each source kind's values are made of. GitLab tokens are `glpat-`/`glptt-`
# prefixed URL-safe strings (routable tokens add `.`); Zendesk OAuth tokens are hex; Zendesk
# API tokens and client secrets are alphanumeric. `external` values are unknown (None).
_URLSAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
TOKEN_ALPHABETS: dict[str, frozenset[str] | None] = {
    "gitlab_personal_access_token": _URLSAFE,
    "gitlab_project_access_token": _URLSAFE,
    "gitlab_group_access_token": _URLSAFE,
    "gitlab_pipeline_trigger": _URLSAFE,
    "zendesk_oauth_token": _ALNUM,
    "zendesk_oauth_client_secret": _ALNUM,
    "zendesk_api_token": _ALNUM,
    "external": None,
}

# Scopes GitLab documents for personal, project and group access tokens (doc/user/profile/
# personal_access_tokens.md, 17.x-19.x). An unknown one is a warning: GitLab adds scopes.
GITLAB_SCOPES = frozenset(
    "api read_api read_user create_runner manage_runner k8s_proxy read_repository write_repository "
    "read_registry write_registry read_virtual_registry write_virtual_registry sudo admin_mode "
    "read_service_ping ai_features self_rotate read_observability write_observability".split()
)

ZENDESK_API_TOKEN_SUNSET = (
    "Zendesk disabled creating API tokens on 2026-10-27 and cuts every API token off on 2027-04-30 "
    "(and deactivates one unused for 30 days)"
)


class _Checker:
    def __init__(self, inv: Inventory) -> None:
        self.inv = inv
        self.found: list[Diagnostic] = []

    def report(self, obj: Located, key: str, path: str, message: str, *, warning: bool = False) -> None:
        """A finding about `key` of `obj`, which sits at dotted `path` in the document."""
        self.found.append(
            Diagnostic(
                pos=obj.at(key),
                key=f"{path}.{key}" if key else path,
                message=message,
                severity="warning" if warning else "error",
            )
        )

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
            self.provider_ref(src, f"tokens.{name}.source", src.provider, SOURCE_PROVIDER_KIND[src.kind], src.kind)
            for i, consumer in enumerate(token.consumers):
                path = f"tokens.{name}.consumers[{i}]"
                self.provider_ref(consumer, path, consumer.provider, CONSUMER_PROVIDER_KIND[consumer.kind], consumer.kind)
        for i, scope in enumerate(self.inv.discovery.gitlab):
            self.provider_ref(scope, f"discovery.gitlab[{i}]", scope.provider, "gitlab", "GitLab discovery")
        for i, zendesk_scope in enumerate(self.inv.discovery.zendesk):
            self.provider_ref(zendesk_scope, f"discovery.zendesk[{i}]", zendesk_scope.provider, "zendesk", "Zendesk discovery")
        state = self.inv.state
        if state.backend == "gitlab":
            self.provider_ref(state, "state", state.provider, "gitlab", "the gitlab state backend")

    # --- templates ---------------------------------------------------------------------------

    def template(self, obj: Located, key: str, path: str, text: str) -> None:
        names = _PLACEHOLDER.findall(text)
        unknown = sorted({n for n in names if n != "token"})
        if unknown:
            self.report(obj, key, path, f"unknown placeholder {', '.join('${' + n + '}' for n in unknown)}: only ${{token}} is substituted")
        elif TOKEN_PLACEHOLDER not in text:
            self.report(obj, key, path, f"the template {text!r} does not contain ${{token}}, so the consumer would never receive the token")

    def templates(self) -> None:
        for name, token in self.inv.tokens.items():
            for i, consumer in enumerate(token.consumers):
                path = f"tokens.{name}.consumers[{i}]"
                self.template(consumer, "value", path, consumer.value)
                if isinstance(consumer, ZendeskWebhook) and consumer.endpoint is not None:
                    self.template(consumer, "endpoint", path, consumer.endpoint)
                if isinstance(consumer, GitLabWebhook):
                    self.webhook_extras(consumer, path)

    def webhook_extras(self, hook: GitLabWebhook, path: str) -> None:
        for key, values in (("url_variables", hook.url_variables), ("custom_headers", hook.custom_headers)):
            for name, value in values.items():
                if "${" in value:
                    self.report(hook, key, path, f"{name}: plain values only here; the token goes where `secret:` says")
        target = hook.target
        if target.field == "url_variable" and target.name in hook.url_variables:
            self.report(hook, "url_variables", path, f"{target.name} receives the token (secret.url_variable); do not also give it a plain value")
        if target.field == "custom_header" and target.name in hook.custom_headers:
            self.report(hook, "custom_headers", path, f"{target.name} receives the token (secret.custom_header); do not also give it a plain value")

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

    # --- CI/CD variables ---------------------------------------------------------------------

    def ci_variables(self) -> None:
        for name, token in self.inv.tokens.items():
            for i, consumer in enumerate(token.consumers):
                if isinstance(consumer, GitLabCiVariable):
                    self.ci_variable(token, consumer, f"tokens.{name}.consumers[{i}]")

    def ci_variable(self, token: Token, var: GitLabCiVariable, path: str) -> None:
        if var.hidden and not var.masked:
            self.report(var, "hidden", path, "hidden: true needs masked: true (GitLab: masked should be true when variable is hidden)")
        if var.instance:
            if var.hidden is not None:
                self.report(var, "hidden", path, "instance variables cannot be hidden")
            if "environment_scope" in var.key_pos:
                self.report(var, "environment_scope", path, "instance variables have no environment scope")
        if not (var.masked or var.hidden):
            return
        allowed_desc = "any non-whitespace character" if var.raw else "letters, digits and _+=/@:.~-"
        literal = "".join(var.value.split(TOKEN_PLACEHOLDER))
        bad = sorted({c for c in literal if (c.isspace() if var.raw else c not in MASKABLE_CHARS)})
        if bad:
            shown = ", ".join(repr(c) for c in bad)
            self.report(
                var,
                "value",
                path,
                f"a masked variable cannot hold {var.value!r}: {shown} not allowed (GitLab masks only values of {allowed_desc}, 8 or more)",
            )
            return
        alphabet = TOKEN_ALPHABETS.get(token.source.kind)
        # An external value is typed in by a person at apply time; a value GitLab refuses to
        # mask fails that write before anything was revoked, so it is not worth a warning here.
        if alphabet is not None and not var.raw and not alphabet <= MASKABLE_CHARS:
            self.report(var, "masked", path, f"{token.source.kind} values can contain characters GitLab cannot mask")

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

    def policy(self) -> None:
        policy = self.inv.policy
        for name, token in self.inv.tokens.items():
            src, path = token.source, f"tokens.{name}.source"
            scopes = getattr(src, "scopes", None)
            if scopes is not None:
                allowed = policy.allowed_scopes.get(src.kind)
                if allowed is not None:
                    for scope in scopes:
                        if scope not in allowed:
                            self.report(
                                src,
                                "scopes",
                                path,
                                f"scope {scope!r} is not allowed by policy.allowed_scopes.{src.kind} ({', '.join(allowed) or 'none'})",
                            )
                if src.kind.startswith("gitlab_"):
                    for scope in scopes:
                        if scope not in GITLAB_SCOPES:
                            self.report(src, "scopes", path, f"{scope!r} is not a GitLab token scope{suggestion(scope, GITLAB_SCOPES)}", warning=True)
            if isinstance(src, GitLabProjectAccessToken | GitLabGroupAccessToken):
                if policy.max_access_level is not None and src.access_level > policy.max_access_level:
                    self.report(src, "access_level", path, f"access_level {src.access_level} exceeds policy.max_access_level {policy.max_access_level}")

    # --- transport ---------------------------------------------------------------------------

    def transport(self) -> None:
        """Every request carries the provider credential: never over plain HTTP off this machine
        (an inventory change must not be able to send it across the network in clear)."""
        for name, provider in self.inv.providers.items():
            if not isinstance(provider, GitLabProvider):
                continue  # Zendesk is reached by subdomain, always over https
            url = urlsplit(provider.url)
            if url.scheme == "http" and (url.hostname or "") not in LOOPBACK_HOSTS:
                self.report(provider, "url", f"providers.{name}",
                            "http:// would send the credential in clear: use https:// "
                            "(plain http is allowed for loopback hosts only, e.g. a local sandbox)")

    # --- warnings ----------------------------------------------------------------------------

    def warnings(self) -> None:
        for name, provider in self.inv.providers.items():
            if isinstance(provider, ZendeskProvider) and provider.api_token_env:
                self.report(provider, "api_token_env", f"providers.{name}.auth", f"{ZENDESK_API_TOKEN_SUNSET}: authenticate with oauth_token_env instead", warning=True)
        for name, token in self.inv.tokens.items():
            src, path = token.source, f"tokens.{name}.source"
            if isinstance(src, ZendeskApiToken):
                self.report(src, "kind", path, f"{ZENDESK_API_TOKEN_SUNSET}: reconcile can only observe it; replace it with a zendesk_oauth_token", warning=True)
            if isinstance(src, GitLabPersonalAccessToken) and src.strategy == "overlap":
                self.report(
                    src,
                    "strategy",
                    path,
                    "overlap creates a new personal access token for the user: only an administrator on a self-managed or Dedicated instance can (not on gitlab.com)",
                    warning=True,
                )
            if not token.consumers and token.state == "present":
                self.report(token, "", f"tokens.{name}", "no consumers: nothing receives the new value when it rotates", warning=True)

    def run(self) -> list[Diagnostic]:
        for step in (self.references, self.transport, self.templates, self.bindings, self.ci_variables, self.rotations,
                     self.policy, self.warnings):
            step()
        return self.found


def check_inventory(inv: Inventory) -> list[Diagnostic]:
    """Every meaning/policy error and warning of a built inventory, sorted by position."""
    return sorted(_Checker(inv).run(), key=lambda d: (d.pos, d.key))


def iter_errors(found: list[Diagnostic]) -> Iterator[Diagnostic]:
    return (d for d in found if d.severity == "error")
