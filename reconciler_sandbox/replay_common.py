"""What the cassette replayers share: the outcome of one interaction and the JSON shape compare.

A replay sends a recorded request to a freshly seeded sandbox and compares the status code and
the set of JSON keys (recursively) of the answer with the recording. Values are not compared:
ids, times and tokens differ by nature; the shape and the status are the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class ReplayOutcome:
    cassette: str  # file name
    interaction: str  # "3 POST /api/v4/projects/1/access_tokens"
    result: Literal["matched", "mismatched", "skipped"]
    detail: str = ""  # why it mismatched or was skipped

    def __str__(self) -> str:
        return f"{self.cassette}: {self.interaction}: {self.result}{': ' + self.detail if self.detail else ''}"


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON value: {"a": {"b": 1}, "c": [{"d": 2}]} -> {a, a.b, c, c[].d}.

    Lists contribute the union of their items' paths, so a list of two objects with different
    optional keys and a list of one compare by the keys that occur at all.
    """
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.add(path)
            paths |= key_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            paths |= key_paths(item, f"{prefix}[]")
    return paths


def compare_shapes(recorded: Any, actual: Any) -> str:
    """'' when both JSON values have the same key paths, else a short description of the gap."""
    want, got = key_paths(recorded), key_paths(actual)
    missing, extra = sorted(want - got), sorted(got - want)
    parts = []
    if missing:
        parts.append("missing " + ", ".join(missing))
    if extra:
        parts.append("unexpected " + ", ".join(extra))
    return "; ".join(parts)


def summary(outcomes: list[ReplayOutcome]) -> str:
    counts = {r: sum(1 for o in outcomes if o.result == r) for r in ("matched", "mismatched", "skipped")}
    return f"{counts['matched']} matched, {counts['mismatched']} mismatched, {counts['skipped']} skipped (not modeled)"
