"""Schema-valid inventory data -> the model in `model.py`, positions attached.

Runs only after the schema accepted the document, so shapes and types are known to be right;
what can still fail here is a value the schema cannot judge (a date like 2026-02-30), which
becomes a diagnostic like any other.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from reconciler.inventory.durations import parse_date, parse_duration
from reconciler.inventory.model import (
    CheckConfig,
    Consumer,
    Diagnostic,
    Discovery,
    GitLabDiscoveryScope,
    GitLabProvider,
    Inventory,
    Policy,
    Provider,
    Rotation,
    ScopeApproval,
    Source,
    StateConfig,
    Token,
    ZendeskDiscoveryScope,
    ZendeskProvider,
)
from reconciler.inventory.yamlload import Document, PathKey, dotted
from reconciler.kinds import consumer_kind, source_kind


def _fields(raw: dict[str, Any]) -> dict[str, Any]:
    """A source's or consumer's keys but `kind`, lists as tuples (the model is frozen)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k != "kind"}


class Place:
    """Where a source or consumer sits in the document: what its kind's `from_document` needs to
    attach positions, and to report a value the schema cannot judge."""

    def __init__(self, builder: _Builder, path: PathKey, raw: dict[str, Any]) -> None:
        self.builder, self.path, self.raw = builder, path, raw

    def where(self, nested: tuple[str, ...] = ()) -> dict[str, Any]:
        """`pos` and `key_pos` (keys of the mappings named in `nested` flattened in)."""
        return self.builder.where(self.path, self.raw, nested)

    def date(self, key: str, value: Any) -> date | None:
        """The date at `key`; None, and a diagnostic, when it is no date."""
        return self.builder.date(self.path + (key,), value)


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.diagnostics: list[Diagnostic] = []

    # --- positions and values ----------------------------------------------------------------

    def where(self, path: PathKey, mapping: dict[str, Any] | None, nested: tuple[str, ...] = ()) -> dict[str, Any]:
        """`pos` and `key_pos` for the object at `path`. Keys of the nested mappings named in
        `nested` (e.g. `auth`) are flattened in too, because the model flattens them."""
        marks: dict[str, int] = {}
        for key in mapping or {}:
            marks[key] = self.doc.key_mark(path + (key,))
        for sub in nested:
            inner = (mapping or {}).get(sub)
            if isinstance(inner, dict):
                for key in inner:
                    marks.setdefault(key, self.doc.key_mark(path + (sub, key)))
        return {"pos": self.doc.key_pos(path), "key_pos": self.doc.key_positions(marks)}

    def duration(self, path: PathKey, value: Any) -> timedelta | None:
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as err:
            self.diagnostics.append(Diagnostic(pos=self.doc.key_pos(path), key=dotted(path), message=str(err)))
            return None

    def date(self, path: PathKey, value: Any) -> date | None:
        if value is None:
            return None
        try:
            return parse_date(value)
        except ValueError as err:
            self.diagnostics.append(Diagnostic(pos=self.doc.key_pos(path), key=dotted(path), message=str(err)))
            return None

    # --- sections ----------------------------------------------------------------------------

    def provider(self, name: str, raw: dict[str, Any]) -> Provider:
        path = ("providers", name)
        auth = raw.get("auth", {})
        at = self.where(path, raw, nested=("auth",))
        if raw["kind"] == "gitlab":
            return GitLabProvider(name=name, url=raw["url"].rstrip("/"), token_env=auth["token_env"], title=raw.get("title"), **at)
        return ZendeskProvider(
            name=name,
            subdomain=raw["subdomain"],
            title=raw.get("title"),
            oauth_token_env=auth.get("oauth_token_env"),
            email=auth.get("email"),
            api_token_env=auth.get("api_token_env"),
            domain=raw.get("domain", "zendesk.com"),
            **at,
        )

    def rotation(self, path: PathKey, raw: dict[str, Any] | None) -> Rotation:
        raw = raw or {}
        return Rotation(
            rotate_before=self.duration(path + ("rotate_before",), raw.get("rotate_before")),
            lifetime=self.duration(path + ("lifetime",), raw.get("lifetime")),
            max_age=self.duration(path + ("max_age",), raw.get("max_age")),
            not_before=self.date(path + ("not_before",), raw.get("not_before")),
            on_unverifiable=raw.get("on_unverifiable"),
            quiet_period=self.duration(path + ("quiet_period",), raw.get("quiet_period")),
            **self.where(path, raw),
        )

    def source(self, path: PathKey, raw: dict[str, Any]) -> Source:
        return source_kind(raw["kind"]).from_document(_fields(raw), Place(self, path, raw))

    def consumer(self, path: PathKey, raw: dict[str, Any]) -> Consumer:
        return consumer_kind(raw["kind"]).from_document(_fields(raw), Place(self, path, raw))

    def token(self, name: str, raw: dict[str, Any], defaults: Rotation) -> Token:
        path = ("tokens", name)
        own = self.rotation(path + ("rotation",), raw.get("rotation"))
        return Token(
            name=name,
            source=self.source(path + ("source",), raw["source"]),
            consumers=tuple(
                self.consumer(path + ("consumers", i), c) for i, c in enumerate(raw.get("consumers") or [])
            ),
            rotation=own.merged_over(defaults),
            description=raw.get("description"),
            owner=raw.get("owner"),
            state=raw.get("state", "present"),
            **self.where(path, raw),
        )

    def policy(self, raw: dict[str, Any]) -> Policy:
        path = ("policy",)
        return Policy(
            max_lifetime=self.duration(path + ("max_lifetime",), raw.get("max_lifetime")),
            allowed_scopes={k: tuple(v) for k, v in (raw.get("allowed_scopes") or {}).items()},
            max_access_level=raw.get("max_access_level"),
            approved_scopes={provider: {client: tuple(ScopeApproval(tuple(e["scopes"]), e["access_request"])
                                                      for e in entries)
                                        for client, entries in clients.items()}
                             for provider, clients in (raw.get("approved_scopes") or {}).items()},
            **self.where(path, raw),
        )

    def state(self, raw: dict[str, Any]) -> StateConfig:
        return StateConfig(**raw, **self.where(("state",), raw))

    def discovery(self, raw: dict[str, Any]) -> Discovery:
        gitlab = tuple(
            GitLabDiscoveryScope(
                provider=s["provider"],
                users=tuple(s.get("users", ())),
                groups=tuple(s.get("groups", ())),
                projects=tuple(s.get("projects", ())),
                **self.where(("discovery", "gitlab", i), s),
            )
            for i, s in enumerate(raw.get("gitlab") or [])
        )
        zendesk = tuple(
            ZendeskDiscoveryScope(provider=s["provider"], **self.where(("discovery", "zendesk", i), s))
            for i, s in enumerate(raw.get("zendesk") or [])
        )
        return Discovery(gitlab=gitlab, zendesk=zendesk, **self.where(("discovery",), raw))

    def check(self, raw: dict[str, Any]) -> CheckConfig:
        fields = dict(raw)
        if "within" in fields:
            fields["within"] = self.duration(("check", "within"), fields["within"]) or CheckConfig().within
        return CheckConfig(**fields, **self.where(("check",), raw))


def build_inventory(doc: Document) -> tuple[Inventory, list[Diagnostic]]:
    """The model of a schema-valid document, and any value errors found while building it."""
    data = doc.data
    b = _Builder(doc)
    defaults = b.rotation(("defaults", "rotation"), (data.get("defaults") or {}).get("rotation"))
    inventory = Inventory(
        providers={name: b.provider(name, raw) for name, raw in (data.get("providers") or {}).items()},
        tokens={name: b.token(name, raw, defaults) for name, raw in (data.get("tokens") or {}).items()},
        defaults=defaults,
        policy=b.policy(data.get("policy") or {}),
        state=b.state(data.get("state") or {}),
        discovery=b.discovery(data.get("discovery") or {}),
        check=b.check(data.get("check") or {}),
        digest=doc.digest,
    )
    return inventory, b.diagnostics
