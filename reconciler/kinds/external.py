"""Source kind `external`: a credential no API can mint. A person supplies the new value at apply
time (`value_env` or `value_file`); nothing is observed live. Its consumers are checked against the
ledger; `expires_at`, when declared, drives the expiry reason. With `username` it is a basic-auth
pair (`reconciler.secret.Parts`): the declared username, which may be shown, and the supplied
password, which alone is secret; consumers take `${token.username}` and `${token.password}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from reconciler.inventory.model import Source, Token
from reconciler.kinds import Lists, SourceKind, Strategy, Supplied
from reconciler.kinds._discovery import ExpiringSource
from reconciler.observed import LiveToken, SourceObservation
from reconciler.plan_model import Finding, Reason, TokenAction, days_left, days_text, declared_at
from reconciler.secret import Parts, Secret

if TYPE_CHECKING:
    from reconciler.inventory.build import Place


@dataclass(frozen=True, kw_only=True)
class ExternalSource(Source):
    """A credential no API can mint: a person supplies the new value at apply time."""

    value_env: str | None = None  # read the new value from this environment variable
    value_file: str | None = None  # or from this file
    expires_at: date | None = None  # when known, so check can warn
    username: str | None = None  # a basic-auth pair: this username and the supplied password
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
        "username": {
            "type": "string",
            "minLength": 1,
            "description": "A basic-auth username: the credential is then a pair, this username (not secret) and the "
                           "supplied value as its password; consumers take `${token.username}` and `${token.password}`.",
        },
    },
    "additionalProperties": False,
    "required": ["kind"],
    "oneOf": [
        {"title": "value_env", "required": ["value_env"]},
        {"title": "value_file", "required": ["value_file"]},
    ],
}


class ExternalKind(SourceKind, Supplied, ExpiringSource):
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

    def parts(self, source: Source) -> tuple[str, ...]:
        assert isinstance(source, ExternalSource)
        return ("username", "password") if source.username else ()

    def observe(self, token: Token, lists: Lists) -> SourceObservation:
        source = token.source
        assert isinstance(source, ExternalSource)
        return SourceObservation(token=token.name, identity=source.identity)

    # planning ---------------------------------------------------------------------------------

    def due_reasons(self, token: Token, live: LiveToken | None, now: datetime) -> list[Reason]:
        """Only the declared expiry: there is no live token to look at."""
        src, rot = token.source, token.rotation
        assert isinstance(src, ExternalSource)
        if src.expires_at is None or rot.rotate_before is None:
            return []
        left = days_left(src.expires_at, now)
        if left > rot.rotate_before.days:
            return []
        return [Reason(code="expiring", at=declared_at(src, "expires_at"),
                       message=f"expires {src.expires_at} ({left} days left, rotate_before "
                               f"{days_text(rot.rotate_before)})")]

    def findings(self, token: Token, live: LiveToken | None, now: datetime, *, action: TokenAction,
                 strategy: Strategy, reasons: tuple[Reason, ...]) -> list[Finding]:
        src = token.source
        assert isinstance(src, ExternalSource)
        if action == "none":
            return []
        return [Finding(severity="warning", code="external_value", at=declared_at(src),
                        message=f"{token.name}: a person supplies the new value at apply time "
                                f"({self._where(src)}): {self.how_to_supply(src)}; until then apply leaves "
                                "this token waiting and does the rest")]

    # apply ------------------------------------------------------------------------------------

    def supplied_value(self, source: Source, env: Mapping[str, str]) -> Secret:
        assert isinstance(source, ExternalSource)
        value = self._supplied(source, env)
        return Parts("password", value, {"username": source.username}) if source.username else value

    @staticmethod
    def _supplied(source: ExternalSource, env: Mapping[str, str]) -> Secret:
        if source.value_env:
            text = env.get(source.value_env, "")
            if not text:
                raise ValueError(f"${source.value_env} is not set: a person supplies the new value of this external "
                                 "credential at apply time")
            return Secret(text)
        try:
            text = Path(str(source.value_file)).read_text().strip()
        except OSError as err:
            raise ValueError(f"{source.value_file}: cannot read the new value ({err.strerror})") from None
        if not text:
            raise ValueError(f"{source.value_file} is empty: a person supplies the new value at apply time")
        return Secret(text)

    def supplied_env(self, source: Source) -> str | None:
        assert isinstance(source, ExternalSource)
        return source.value_env

    def how_to_supply(self, source: Source) -> str:
        assert isinstance(source, ExternalSource)
        if source.value_env:
            return (f"set {source.value_env} as a masked, protected CI/CD variable (Settings > CI/CD > Variables), "
                    "then run the pipeline")
        return f"put the new value in the file {source.value_file} where apply runs, then run apply again"

    @staticmethod
    def _where(src: ExternalSource) -> str:
        return f"${src.value_env}" if src.value_env else str(src.value_file)

    # scope scans and discovery -------------------------------------------------------------

    def id_family(self) -> str | None:
        return None  # nothing live

    def display_name(self, source: Source) -> str | None:
        return None  # a report names it by its inventory name

    def declared_expiry(self, source: Source) -> date | None:
        assert isinstance(source, ExternalSource)
        return source.expires_at


KIND = ExternalKind()
