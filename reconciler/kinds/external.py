"""Source kind `external`: a credential no API can mint. A person supplies the new value at apply
time (`value_env` or `value_file`); nothing is observed live. Its consumers are checked against the
ledger; `expires_at`, when declared, drives the expiry reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from reconciler.inventory.model import Source, Token
from reconciler.kinds import Lists, SourceKind, Strategy
from reconciler.observed import SourceObservation

if TYPE_CHECKING:
    from reconciler.inventory.build import Place


@dataclass(frozen=True, kw_only=True)
class ExternalSource(Source):
    """A credential no API can mint: a person supplies the new value at apply time."""

    value_env: str | None = None  # read the new value from this environment variable
    value_file: str | None = None  # or from this file
    expires_at: date | None = None  # when known, so check can warn
    kind: ClassVar[str] = "external"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.value_env or self.value_file}"


# Its definition in the inventory schema: $defs/source_external.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A credential no API can mint: a person supplies the new value at apply time.",
    "properties": {
        "kind": {"const": "external", "description": "`external`."},
        "value_env": {
            "$ref": "#/$defs/env_name",
            "description": "Environment variable that holds the new value at apply time.",
        },
        "value_file": {"type": "string", "description": "File that holds the new value at apply time.", "minLength": 1},
        "expires_at": {
            "$ref": "#/$defs/date",
            "description": "When the current value expires, if known, so `check` can warn.",
        },
    },
    "additionalProperties": False,
    "required": ["kind"],
    "oneOf": [
        {"title": "value_env", "required": ["value_env"]},
        {"title": "value_file", "required": ["value_file"]},
    ],
}


class ExternalKind(SourceKind):
    model = ExternalSource
    schema = SCHEMA
    schema_order = 80
    kind = "external"
    provider_kind = None
    noun = "external credential"

    def from_document(self, fields: dict[str, Any], at: Place) -> Source:
        if "expires_at" in fields:
            fields["expires_at"] = at.date("expires_at", fields["expires_at"])
        return ExternalSource(**fields, provider=None, **at.where())

    def strategy(self, source: Source) -> Strategy:
        return "external"

    def observe(self, token: Token, lists: Lists) -> SourceObservation:
        source = token.source
        assert isinstance(source, ExternalSource)
        return SourceObservation(token=token.name, identity=source.identity)


KIND = ExternalKind()
