"""Secret: a credential value that prints as a redaction everywhere.

A token value must never reach output, logs, plan files, ledgers, exceptions or recordings.
Every value the tool handles is wrapped in `Secret` as soon as it arrives (from an API response,
the escrow or the environment) and is unwrapped with `reveal()` only at the single place where it
is written to an API. `str`, `repr`, `format`, pickling and JSON encoding all redact.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import NoReturn

REDACTED = "<redacted>"


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
