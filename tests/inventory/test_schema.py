"""The JSON Schema itself: valid, documented, and in step with the model's dataclasses."""

from __future__ import annotations

import dataclasses
import json
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
    if kind not in CREATED_WITH_KINDS:
        want.discard("created_with")  # a field of every source; only these kinds' schemas declare it
    assert props == want


# The source kinds that can be created with another token's value (`created_with`).
CREATED_WITH_KINDS = {"gitlab_pipeline_trigger", "gitlab_project_access_token", "gitlab_group_access_token"}


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


def test_schema_file_equals_the_schema_generated_from_the_kinds() -> None:
    from reconciler.inventory.schema import SCHEMA_PATH
    from reconciler.inventory.schema_file import render

    assert SCHEMA_PATH.read_text(encoding="utf-8") == render(), "run: python -m reconciler.inventory.schema_file --write"


def test_plan_schema_lists_every_kind() -> None:
    from reconciler.inventory.schema_file import PLAN_SCHEMA_PATH, plan_schema_text

    text = PLAN_SCHEMA_PATH.read_text(encoding="utf-8")
    assert plan_schema_text(text) == text, "run: python -m reconciler.inventory.schema_file --write"
    defs = json.loads(text)["$defs"]
    assert defs["consumer"]["properties"]["kind"]["enum"] == [k.kind for k in kinds.consumer_kinds()]
    assert defs["token"]["properties"]["source_kind"]["enum"] == [k.kind for k in kinds.source_kinds()]


def test_plan_schema_kind_lists_are_rewritten(tmp_path) -> None:
    from reconciler.inventory.schema_file import PLAN_SCHEMA_PATH, write_plan_schema

    path = tmp_path / "plan.schema.json"
    stale = PLAN_SCHEMA_PATH.read_text(encoding="utf-8").replace('"zendesk_webhook"]', '"zendesk_webhook", "gone"]')
    path.write_text(stale, encoding="utf-8")
    assert write_plan_schema(path) is True
    assert path.read_text(encoding="utf-8") == PLAN_SCHEMA_PATH.read_text(encoding="utf-8")
    assert write_plan_schema(path) is False


def test_write_replaces_a_stale_schema_file(tmp_path) -> None:
    from reconciler.inventory.schema_file import render, write

    path = tmp_path / "inventory.schema.json"
    path.write_text("{}\n", encoding="utf-8")
    assert write(path) is True
    assert path.read_text(encoding="utf-8") == render()
    assert write(path) is False


def test_a_new_consumer_kind_needs_no_edit_outside_its_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """The schema takes a kind's fragment from the registry: its definition, its place in the
    `kind` enum and its if/then branch appear with nothing else edited."""
    from reconciler.inventory import schema_file
    from reconciler.kinds import ConsumerKind

    class ScheduleVariableKind(ConsumerKind):
        kind = "gitlab_pipeline_schedule_variable"
        provider_kind = "gitlab"
        schema = {"type": "object", "description": "A pipeline schedule variable.",
                  "properties": {"kind": {"const": "gitlab_pipeline_schedule_variable", "description": "kind"}}}
        # the schema reads none of the API side
        needs = observe = write = verify = None  # type: ignore[assignment]

    new = ScheduleVariableKind()
    monkeypatch.setattr(schema_file, "consumer_kinds", lambda: [*kinds.consumer_kinds(), new])
    defs = schema_file.generate()["$defs"]
    assert defs["consumer_gitlab_pipeline_schedule_variable"] == new.schema
    assert defs["consumer"]["properties"]["kind"]["enum"][-1] == new.kind
    assert defs["consumer"]["allOf"][-1]["then"] == {"$ref": "#/$defs/consumer_gitlab_pipeline_schedule_variable"}
    assert list(defs).index("consumer_gitlab_pipeline_schedule_variable") < list(defs).index("consumer")
    jsonschema.Draft202012Validator.check_schema(schema_file.generate())


def test_the_registry_finds_a_kind_in_every_public_kind_module() -> None:
    import pkgutil

    found = {type(k).__module__ for k in [*kinds.source_kinds(), *kinds.consumer_kinds()]}
    modules = {f"reconciler.kinds.{m.name}" for m in pkgutil.iter_modules(kinds.__path__) if not m.name.startswith("_")}
    assert found == modules
    with pytest.raises(KeyError):
        kinds.consumer_kind("gitlab_variable")
