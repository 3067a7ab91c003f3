"""The compiled schema check is only a fast path: it must never accept what jsonschema rejects,
or a bad inventory would load without its diagnostics."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.inventory import schema
from reconciler.inventory.yamlload import load_document
from reconciler.kinds import consumer_kinds, source_kinds

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "inventory" / "bad"
CASES = sorted(p for p in BAD.iterdir() if p.is_dir())


def jsonschema_errors(data) -> list:
    return [error for _, error in schema._errors(data)]


def test_the_fast_validators_compile() -> None:
    fast = schema._fast_validators()
    assert fast is not None
    _, kinds = fast
    registered = {f"source_{k.kind}" for k in source_kinds()} | {f"consumer_{k.kind}" for k in consumer_kinds()}
    assert kinds.known == registered and all(callable(kinds[name]) for name in sorted(kinds.known))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fast_check_agrees_with_jsonschema_on_the_bad_corpus(case: Path) -> None:
    doc = load_document(case)
    assert schema.is_valid_fast(doc.data) is (not jsonschema_errors(doc.data))


def test_fast_check_accepts_the_example_inventory() -> None:
    doc = load_document(ROOT / "inventory")
    assert schema.is_valid_fast(doc.data) is True
    assert not jsonschema_errors(doc.data)


@pytest.mark.parametrize(
    ("where", "value"),
    [("kind", "gitlab_ci_variabel"), ("protected", 1), ("key", ""), ("instance", 1), ("unknown_key", "x")],
)
def test_fast_check_rejects_what_jsonschema_rejects(where: str, value) -> None:
    doc = load_document(ROOT / "inventory")
    for token in doc.data["tokens"].values():
        for consumer in token.get("consumers") or ():
            if consumer.get("kind") == "gitlab_ci_variable":
                consumer[where] = value
                break
        else:
            continue
        break
    assert jsonschema_errors(doc.data), "the mutation must be an error for jsonschema"
    assert schema.is_valid_fast(doc.data) is False
