"""The escrow: values minted but not yet delivered to every consumer, encrypted at rest.

An in-place rotation revokes the old value at once; until every consumer has the new one, the
escrow holds its only durable copy, so a crash never forces a second rotation. Values are sealed
with AES-256-GCM under a key from the environment (`StateConfig.escrow_key_env`, default
RECONCILE_ESCROW_KEY: urlsafe base64 of 32 random bytes, as `reconcile state keygen` prints).
The associated data binds each ciphertext to its token name, live id and mint time, so blobs
cannot be swapped between tokens or relabelled. The document also records a key id (a one-way
hash of the key) so a wrong key is told apart from tampering. It is typed at the store boundary
(`EscrowDocument`, `SealedValue`) and carries a version.

It also keeps, for good, the refresh token of each refreshable OAuth grant (`keep_grant`,
`grant`): a refresh spends it and answers the next one, so the state holds the only copy. Each is
sealed like an escrowed value, bound to its token name and the time it was kept, and saved before
the access token it came with goes anywhere. Beside it, the fingerprint (sha256) of the refresh
token last taken in from the person who authorised the grant, so a spent one is never sent again.
A document with grants is version 2, which an older release refuses instead of saving over it
without them; one without is version 1, as before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reconciler.inventory.model import StateConfig
from reconciler.observed import LiveToken, is_instance
from reconciler.secret import Secret, restore
from reconciler.state.errors import StateError
from reconciler.state.store import StateStore

ESCROW_VERSION = 1
GRANTS_VERSION = 2  # the document also keeps refresh tokens (`grants`, `seeds`)
GRANT_ID = "refresh-token"  # the token_id of a sealed refresh token (its seal's associated data)
KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_TEXT = re.compile(r"[A-Za-z0-9_-]{43}=?")  # urlsafe base64 of 32 bytes, padding optional


def generate_key() -> str:
    """A fresh escrow key as text (urlsafe base64 of 32 random bytes)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def parse_key(text: str, env_name: str) -> bytes:
    """The 32 key bytes from the env var's text; StateError (naming the variable, never the
    value) when it is not in the `keygen` format."""
    text = text.strip()
    if not _KEY_TEXT.fullmatch(text):
        raise StateError(
            f"{env_name} is not a valid escrow key: expected the urlsafe base64 of 32 random bytes "
            "(44 characters), as printed by `reconcile state keygen`"
        )
    key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(key) != KEY_BYTES:  # 43 characters can carry stray low bits; still 32 bytes
        raise StateError(f"{env_name} is not a valid escrow key: it does not decode to 32 bytes")
    return key


def key_id(key: bytes) -> str:
    """A short public name of a key: lets a wrong key be reported as such."""
    return hashlib.sha256(b"reconcile escrow key id\0" + key).hexdigest()[:16]


def escrow_key(config: StateConfig, env: Mapping[str, str] | None = None) -> bytes | None:
    """The configured escrow key, None when its variable is unset or empty."""
    env = os.environ if env is None else env
    text = env.get(config.escrow_key_env, "")
    return parse_key(text, config.escrow_key_env) if text.strip() else None


def escrow_available(config: StateConfig, env: Mapping[str, str] | None = None) -> bool:
    """Whether in-place rotation can escrow its value: the key variable is set (and valid; a set
    but malformed key raises StateError so the user learns it before an apply)."""
    return escrow_key(config, env) is not None


@dataclass(frozen=True)
class EscrowEntry:
    token: str  # inventory token name
    token_id: str  # live id of the minted instance
    minted_at: str  # ISO: the instance's creation time as the API showed it (see `EscrowPending`)
    value: Secret

    def is_of(self, live: LiveToken | None) -> bool:
        """The escrowed value is the value of `live` as observed now (see `EscrowPending.is_of`)."""
        return is_instance(self.token_id, self.minted_at, live)

    def __repr__(self) -> str:
        return f"EscrowEntry(token={self.token!r}, token_id={self.token_id!r}, minted_at={self.minted_at!r})"


@dataclass(frozen=True)
class EscrowPending:
    """An escrowed value's metadata, readable without the key (for `state show` and the plan).
    `minted_at` is the minted instance's creation time as the mint answer showed it (an OAuth
    client's `updated_at`, which a regeneration moves), to the second."""

    token: str
    token_id: str
    minted_at: str

    def is_of(self, live: LiveToken | None) -> bool:
        """The escrowed value is the value of `live` as observed now: the same id AND the same
        creation time. An OAuth client keeps its id when its secret is regenerated, and a state
        restored from an older version holds values of instances since replaced: only the time
        tells such an instance from the one the value was minted as."""
        return is_instance(self.token_id, self.minted_at, live)


def _aad(token: str, token_id: str, minted_at: str) -> bytes:
    return "\0".join(("reconcile-escrow", str(ESCROW_VERSION), token, token_id, minted_at)).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class SealedValue:
    """One escrow entry as stored: the value sealed, with the metadata its seal is bound to."""

    token_id: str
    minted_at: str
    nonce: str  # base64
    ciphertext: str  # base64, AES-256-GCM with the tag

    def for_storage(self) -> dict[str, str]:
        return {"token_id": self.token_id, "minted_at": self.minted_at, "nonce": self.nonce,
                "ciphertext": self.ciphertext}

    @classmethod
    def from_storage(cls, data: Any, where: str) -> SealedValue:
        """`where` names the escrow and the entry in the StateError for a corrupt entry."""
        fields_ok = isinstance(data, dict) and set(data) == _SEALED_KEYS and all(
            isinstance(data[k], str) for k in _SEALED_KEYS
        )
        if not fields_ok:
            raise StateError(f"{where} lacks a field or has a wrong type or an unknown field")
        return cls(token_id=data["token_id"], minted_at=data["minted_at"], nonce=data["nonce"],
                   ciphertext=data["ciphertext"])


_SEALED_KEYS = {"token_id", "minted_at", "nonce", "ciphertext"}


@dataclass
class EscrowDocument:
    """The escrow as stored: its version, the id of the key its values are sealed with (None
    while it is empty) and the sealed values by token name."""

    key_id: str | None = None
    entries: dict[str, SealedValue] = field(default_factory=dict)
    grants: dict[str, SealedValue] = field(default_factory=dict)  # refresh tokens, kept for good
    seeds: dict[str, str] = field(default_factory=dict)  # fingerprint of the refresh token last taken in

    @property
    def empty(self) -> bool:
        return not self.entries and not self.grants

    def for_storage(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"version": ESCROW_VERSION, "key_id": self.key_id,
                               "entries": {t: e.for_storage() for t, e in sorted(self.entries.items())}}
        if self.grants or self.seeds:
            doc.update(version=GRANTS_VERSION, grants={t: g.for_storage() for t, g in sorted(self.grants.items())},
                       seeds=dict(sorted(self.seeds.items())))
        return doc

    @classmethod
    def from_storage(cls, doc: Any, where: str) -> EscrowDocument:
        """The document from the store (None: no escrow saved yet); StateError naming `where`
        when it is corrupt or written by a release with another escrow version."""
        if doc is None:
            return cls()
        if not isinstance(doc, dict):
            raise StateError(f"{where}: corrupt escrow: expected an object")
        if doc.get("version") not in (ESCROW_VERSION, GRANTS_VERSION):
            raise StateError(f"{where}: unsupported escrow version {doc.get('version')!r} (expected "
                             f"{ESCROW_VERSION} or {GRANTS_VERSION})")
        entries, grants, seeds = doc.get("entries"), doc.get("grants", {}), doc.get("seeds", {})
        if not isinstance(entries, dict) or not isinstance(doc.get("key_id"), str | None):
            raise StateError(f"{where}: corrupt escrow: 'entries' must be an object")
        if not isinstance(grants, dict) or not isinstance(seeds, dict) or not all(
                isinstance(v, str) for v in seeds.values()):
            raise StateError(f"{where}: corrupt escrow: 'grants' and 'seeds' must be objects")
        return cls(key_id=doc.get("key_id"), entries={
            str(token): SealedValue.from_storage(entry, f"{where}: corrupt escrow: entry {token!r}")
            for token, entry in entries.items()
        }, grants={
            str(token): SealedValue.from_storage(entry, f"{where}: corrupt escrow: grant {token!r}")
            for token, entry in grants.items()
        }, seeds={str(token): str(fp) for token, fp in seeds.items()})


class Escrow:
    """Escrowed values of one store. Every change is written through to the store at once."""

    def __init__(self, store: StateStore, key: bytes | None, key_env: str = "RECONCILE_ESCROW_KEY") -> None:
        if key is not None and len(key) != KEY_BYTES:
            raise ValueError("an escrow key is 32 bytes")
        self.store = store
        self.key_env = key_env
        self._key = key
        self._doc: EscrowDocument | None = None
        self._mutex = threading.RLock()  # apply escrows and drops from several threads

    @property
    def available(self) -> bool:
        return self._key is not None

    @property
    def where(self) -> str:
        return f"escrow in {self.store.where}"

    # --- document ------------------------------------------------------------------------------

    def _document(self) -> EscrowDocument:
        with self._mutex:
            if self._doc is None:
                self._doc = EscrowDocument.from_storage(self.store.load_escrow_doc(), self.where)
            return self._doc

    def _save(self) -> None:
        with self._mutex:
            doc = self._document()
            if doc.empty:
                doc.key_id = None  # an empty escrow may be re-keyed freely
            self.store.save_escrow_doc(doc.for_storage())

    def _require_key(self, doing: str) -> bytes:
        if self._key is None:
            raise StateError(
                f"{self.where}: cannot {doing}: no escrow key (set {self.key_env}; "
                "`reconcile state keygen` makes one)"
            )
        stored = self._doc.key_id if self._doc else None
        if stored is not None and stored != key_id(self._key):
            raise StateError(
                f"{self.where}: {self.key_env} is not the key these values were escrowed with "
                f"(escrow key id {stored}, {self.key_env} has key id {key_id(self._key)})"
            )
        return self._key

    # --- API -----------------------------------------------------------------------------------

    def check_key(self, doing: str) -> None:
        """StateError unless a value can be sealed now: the key is set and is the one the stored
        values were sealed with. Asked before something that cannot be undone (a refresh spends
        the refresh token) whose answer must then be sealed."""
        with self._mutex:
            self._document()
            self._require_key(doing)

    def put(self, token: str, token_id: str, value: Secret, minted_at: str) -> None:
        """Seal `value` and persist it before any consumer is written."""
        with self._mutex:  # tokens are escrowed from several threads
            doc = self._document()
            doc.entries[token] = self._seal(token, token_id, value, minted_at, f"escrow the new value of token {token}")
            self._save()

    def _seal(self, token: str, token_id: str, value: Secret, minted_at: str, doing: str) -> SealedValue:
        if not isinstance(value, Secret):
            raise TypeError("the escrow takes a Secret")
        with self._mutex:
            doc = self._document()
            key = self._require_key(doing)
            nonce = os.urandom(NONCE_BYTES)
            sealed = AESGCM(key).encrypt(nonce, value.reveal().encode(), _aad(token, token_id, minted_at))
            doc.key_id = key_id(key)
            return SealedValue(token_id=token_id, minted_at=minted_at, nonce=_b64(nonce), ciphertext=_b64(sealed))

    def get(self, token: str) -> EscrowEntry | None:
        entry = self._document().entries.get(token)
        if entry is None:
            return None
        return self._open(token, entry, f"read the escrowed value of token {token}")

    # --- refresh tokens of OAuth grants -----------------------------------------------------------

    def keep_grant(self, token: str, refresh_token: Secret | None, kept_at: str, *, seed: Secret | None = None) -> None:
        """Keep the refresh token that replaces the one just spent (None: the grant answered
        none; whatever was kept is spent, so it is forgotten) in ONE save, with the fingerprint of
        `seed` when the spent one was taken in from a person."""
        with self._mutex:
            doc = self._document()
            if refresh_token is None:
                doc.grants.pop(token, None)
            else:
                doc.grants[token] = self._seal(token, GRANT_ID, refresh_token, kept_at,
                                               f"keep the refresh token of {token}")
            if seed is not None:
                doc.seeds[token] = seed.fingerprint()
            self._save()

    def grant(self, token: str) -> Secret | None:
        """The refresh token kept for `token`, None when none is."""
        entry = self._document().grants.get(token)
        if entry is None:
            return None
        return self._open(token, entry, f"read the refresh token of {token}").value

    def seed_taken(self, token: str, seed: Secret) -> bool:
        """`seed` is the refresh token last taken in for `token` (spent since: never sent again)."""
        return self._document().seeds.get(token) == seed.fingerprint()

    def grants(self) -> list[tuple[str, str]]:
        """(token, kept at) of every refresh token kept, without the key (for `state show`)."""
        return [(t, g.minted_at) for t, g in sorted(self._document().grants.items())]

    def _open(self, token: str, entry: SealedValue, doing: str) -> EscrowEntry:
        key = self._require_key(doing)
        try:
            nonce = base64.b64decode(entry.nonce, validate=True)
            sealed = base64.b64decode(entry.ciphertext, validate=True)
            plain = AESGCM(key).decrypt(nonce, sealed, _aad(token, entry.token_id, entry.minted_at))
            value = plain.decode()
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
            raise StateError(
                f"{self.where}: the escrowed value of token {token} does not decrypt: the entry was "
                "tampered with, moved from another token, or written with another key"
            ) from None
        return EscrowEntry(token=token, token_id=entry.token_id, minted_at=entry.minted_at, value=restore(value))

    def drop(self, token: str) -> None:
        """Forget a value once every consumer has it."""
        with self._mutex:
            if self._document().entries.pop(token, None) is not None:
                self._save()

    def tokens(self) -> list[str]:
        with self._mutex:
            return sorted(self._document().entries)

    def pending(self) -> list[EscrowPending]:
        with self._mutex:
            return [
                EscrowPending(token=t, token_id=e.token_id, minted_at=e.minted_at)
                for t, e in sorted(self._document().entries.items())
            ]


def open_escrow(store: StateStore, config: StateConfig, env: Mapping[str, str] | None = None) -> Escrow:
    """The escrow of `store` with the configured key (unavailable, not an error, without one)."""
    return Escrow(store, escrow_key(config, env), config.escrow_key_env)
