"""Builders for planner tests: inventories from the model dataclasses, observations by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from reconciler.inventory.model import GitLabProvider, Inventory, Position, Rotation, Token, ZendeskProvider
from reconciler.kinds.gitlab_ci_variable import GitLabCiVariable
from reconciler.observed import ConsumerObservation, LiveToken, Observed, SourceObservation
from reconciler.state import Ledger, LedgerRecord

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PROVIDERS = {
    "gl": GitLabProvider(name="gl", url="https://gitlab.example", token_env="GL_TOKEN"),
    "zd": ZendeskProvider(name="zd", subdomain="acme", oauth_token_env="ZD_TOKEN"),
}


def pos(line: int) -> Position:
    return Position("inventory/tokens.yaml", line, 3)


def rotation(**kw: Any) -> Rotation:
    kw.setdefault("rotate_before", timedelta(days=21))
    return Rotation(pos=pos(9), key_pos={k: pos(10) for k in kw}, **kw)


def variable(key: str = "TOKEN", **kw: Any) -> GitLabCiVariable:
    return GitLabCiVariable(provider="gl", project="g/p", key=key, pos=pos(20), **kw)


def token(name: str, source: Any, consumers: tuple = (), rot: Rotation | None = None, **kw: Any) -> Token:
    return Token(name=name, source=source, consumers=consumers, rotation=rot or rotation(), pos=pos(3), **kw)


def inventory(*tokens: Token) -> Inventory:
    return Inventory(providers=PROVIDERS, tokens={t.name: t for t in tokens}, digest="sha256:inv")


def live(id: str = "7", *, age: int = 10, expires_in: int | None = 200, **kw: Any) -> LiveToken:
    kw.setdefault("name", "x")
    kw.setdefault("where", "project g/p")
    return LiveToken(id=id, created_at=NOW - timedelta(days=age),
                     expires_at=None if expires_in is None else NOW.date() + timedelta(days=expires_in), **kw)


def held(consumer: Any, tok: Token, *, holds: str | None = None, fingerprint: str | None = "sha256:aa",
         readable: bool = True, **kw: Any) -> ConsumerObservation:
    return ConsumerObservation(identity=consumer.identity, token=tok.name, state="unverifiable", readable=readable,
                               fingerprint=fingerprint if readable else None, holds_token_id=holds, **kw)


def observed(tokens: list[tuple[Token, LiveToken | None]], consumers: list[ConsumerObservation] = (),
             **kw: Any) -> Observed:
    return Observed(
        observed_at=NOW,
        sources={t.name: SourceObservation(token=t.name, identity=t.source.identity, current=lt, **kw)
                 for t, lt in tokens},
        consumers={c.identity: c for c in consumers},
    )


def ledger(*records: tuple[Any, Token, str, str], age: int = 10) -> Ledger:
    """Records of deliveries of instances created `age` days ago (as `live()` makes them): the
    ledger names an instance by its id and its creation time."""
    created = (NOW - timedelta(days=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Ledger([LedgerRecord(consumer=c.identity, token=t.name, token_id=tid, token_created_at=created,
                                fingerprint=fp, delivered_at="2026-01-02T00:00:00Z", verified=True)
                   for c, t, tid, fp in records])


__all__ = ["date", "NOW"]
