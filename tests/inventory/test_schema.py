"""The JSON Schema itself: valid, documented, and in step with the model's dataclasses."""

from __future__ import annotations

import dataclasses
from typing import Any

import jsonschema
import pytest

from reconciler import kinds
from reconciler.inventory import model
from reconciler.inventory.schema import load_schema, schema_properties


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_property_has_a_description() -> None:
    missing = [path for path, sub in schema_properties() if "description" not in sub and "$ref" not in sub]
    # A bare $ref takes its description from the definition it points to.
    missing += [
        path
        for path, sub in schema_properties()
        if "$ref" in sub and "description" not in sub and "description" not in _resolve(sub)
    ]
    assert missing == []


def _resolve(sub: dict[str, Any]) -> dict[str, Any]:
    return load_schema()["$defs"][sub["$ref"].rsplit("/", 1)[-1]]


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - {"pos", "key_pos"}


# YAML spelling of model fields where the two differ.
_RENAMED = {"target": "secret"}


@pytest.mark.parametrize("kind", sorted(k.kind for k in kinds.source_kinds()))
def test_every_source_kind_has_its_fields_in_the_schema(kind: str) -> None:
    props = set(load_schema()["$defs"][f"source_{kind}"]["properties"])
    want = _fields(kinds.source_kind(kind).model) | {"kind"}
    if kinds.source_kind(kind).provider_kind is None:
        want.discard("provider")  # `external` has no provider
    assert props == want


@pytest.mark.parametrize("kind", sorted(k.kind for k in kinds.consumer_kinds()))
def test_every_consumer_kind_has_its_fields_in_the_schema(kind: str) -> None:
    props = set(load_schema()["$defs"][f"consumer_{kind}"]["properties"])
    want = {_RENAMED.get(f, f) for f in _fields(kinds.consumer_kind(kind).model)} | {"kind"}
    assert props == want


def test_kind_enums_list_every_model_kind() -> None:
    defs = load_schema()["$defs"]
    assert defs["source"]["properties"]["kind"]["enum"] == [k.kind for k in kinds.source_kinds()]
    assert defs["consumer"]["properties"]["kind"]["enum"] == [k.kind for k in kinds.consumer_kinds()]


def test_section_fields_match_the_model() -> None:
    props = load_schema()["properties"]
    assert set(props["policy"]["properties"]) == _fields(model.Policy)
    assert set(props["state"]["properties"]) == _fields(model.StateConfig)
    assert set(props["check"]["properties"]) == _fields(model.CheckConfig)
    assert set(load_schema()["$defs"]["rotation"]["properties"]) == _fields(model.Rotation)
    token = set(load_schema()["$defs"]["token"]["properties"])
    assert token == _fields(model.Token) - {"name"}


def test_each_example_file_is_valid_on_its_own_as_an_editor_sees_it() -> None:
    """Editors validate one file at a time against the modeline's schema; nothing may be
    required at the top level for that to work."""
    import yaml

    from reconciler.inventory.reference import README

    validator = jsonschema.Draft202012Validator(load_schema())
    files = sorted((README.parent / "inventory").rglob("*.yaml"))
    assert len(files) >= 4
    for path in files:
        # YAML dates load as date objects here; the inventory loader keeps them as text.
        data = _dates_as_text(yaml.safe_load(path.read_text(encoding="utf-8")))
        assert list(validator.iter_errors(data)) == [], path


def _dates_as_text(value: Any) -> Any:
    import datetime

    if isinstance(value, dict):
        return {k: _dates_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_as_text(v) for v in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value
