"""Secret: a credential value that prints as a redaction everywhere.

A token value must never reach output, logs, plan files, ledgers, exceptions or recordings.
Every value the tool handles is wrapped in `Secret` as soon as it arrives (from an API response,
the escrow or the environment) and is unwrapped with `reveal()` only at the single place where it
is written to an API. `str`, `repr`, `format`, pickling and JSON encoding all redact.

A credential of several parts (an OAuth client's identifier and secret, a basic-auth username and
password) is a `Parts`: one secret part and plain parts that may be shown. Consumers take a part
through `${token.NAME}`; its plain form encodes every part, for the escrow only (`restore`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import NoReturn

REDACTED = "<redacted>"
_PARTS_MARK = "reconcile-parts:v1:"
_PART_PLACEHOLDER = re.compile(r"\$\{token\.([A-Za-z0-9_]+)\}")


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        """The plain value: call only where it is sent to an API or compared."""
        return self._value

    def fingerprint(self) -> str:
        """SHA-256 of the value, for ledgers: identifies a value without revealing it."""
        return "sha256:" + hashlib.sha256(self._value.encode()).hexdigest()

    def render(self, template: str) -> Secret:
        """Substitute this value for `${token}` in a consumer's value template."""
        return Secret(template.replace("${token}", self._value))

    def secret_texts(self) -> tuple[str, ...]:
        """What a message must never show (`describe_error` blanks each)."""
        return (self._value,)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __str__(self) -> str:
        return REDACTED

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __getstate__(self) -> NoReturn:
        raise TypeError("a Secret cannot be serialised")


class Parts(Secret):
    """A credential of several parts: one secret part (`secret_part`) and plain parts (`shown`,
    e.g. an OAuth client's identifier) that plans may name. `render` substitutes
    `${token.NAME}`; a whole-value `${token}` has no meaning for it (validation refuses it)."""

    __slots__ = ("secret_part", "shown", "_secret")

    def __init__(self, secret_part: str, secret: Secret | str, shown: Mapping[str, str]) -> None:
        self.secret_part = secret_part
        self._secret = Secret(secret)
        self.shown = dict(shown)
        encoded = json.dumps({**self.shown, secret_part: self._secret.reveal(), "": secret_part}, sort_keys=True)
        super().__init__(_PARTS_MARK + encoded)

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.shown, self.secret_part)

    def part(self, name: str) -> Secret:
        """One part (the secret one stays a Secret; plain ones are wrapped only for uniformity)."""
        if name == self.secret_part:
            return self._secret
        return Secret(self.shown[name])

    def render(self, template: str) -> Secret:
        if "${token}" in template:
            raise ValueError(f"a credential of parts ({', '.join(self.names)}) has no whole value: "
                             "name a part, e.g. ${token." + self.secret_part + "}")

        def part(match: re.Match[str]) -> str:
            if match.group(1) not in self.names:
                raise ValueError(f"the credential has no part {match.group(1)!r} ({', '.join(self.names)})")
            return self.part(match.group(1)).reveal()

        return Secret(_PART_PLACEHOLDER.sub(part, template))

    def secret_texts(self) -> tuple[str, ...]:
        return (self._value, self._secret.reveal())


def restore(text: str) -> Secret:
    """A value from its plain form (`reveal()`): a `Parts` again when it was one (the escrow)."""
    if not text.startswith(_PARTS_MARK):
        return Secret(text)
    fields = json.loads(text[len(_PARTS_MARK):])
    secret_part = fields.pop("")
    return Parts(secret_part, fields.pop(secret_part), fields)
