"""Source kind `external`: a credential no API can mint. A person supplies the new value at apply
time (`value_env` or `value_file`); nothing is observed live. Its consumers are checked against the
ledger; `expires_at`, when declared, drives the expiry reason.
"""

from __future__ import annotations

from datetime import date

from reconciler.inventory.model import ExternalSource, Source, Token
from reconciler.kinds import Lists, SourceKind, Strategy
from reconciler.observed import SourceObservation


class ExternalKind(SourceKind):
    kind = "external"
    provider_kind = None
    noun = "external credential"

    def strategy(self, source: Source) -> Strategy:
        return "external"

    def observe(self, token: Token, lists: Lists) -> SourceObservation:
        source = token.source
        assert isinstance(source, ExternalSource)
        return SourceObservation(token=token.name, identity=source.identity)

    # scope scans and discovery -------------------------------------------------------------

    def id_family(self) -> str | None:
        return None  # nothing live

    def display_name(self, source: Source) -> str | None:
        return None  # a report names it by its inventory name

    def declared_expiry(self, source: Source) -> date | None:
        assert isinstance(source, ExternalSource)
        return source.expires_at


KIND = ExternalKind()
