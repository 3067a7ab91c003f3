"""The load's shortcuts change nothing but time: scalars resolve to SafeLoader's tags, the fast
schema check still wants exactly one of a kind's alternative keys, and the collector is left as it
was found."""

from __future__ import annotations

import gc
from pathlib import Path

import fastjsonschema
import pytest
import yaml

from reconciler.inventory import diagnose, schema
from reconciler.inventory.yamlload import _Loader

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory"

# YAML 1.1 as PyYAML's SafeLoader reads it: booleans in every spelling, ints in bases 2/8/16/60,
# floats, nulls, dates, merge and value keys, and text that starts like each of them.
TRICKY = [
    "yes", "Yes", "YES", "no", "No", "NO", "y", "Y", "n", "N", "on", "On", "off", "OFF", "true",
    "True", "false", "FALSE", "tru", "yess", "online", "offset", "nope", "owner",
    "~", "null", "Null", "NULL", "nul", "nothing", "",
    "0", "-0", "+12", "017", "0o17", "0x1F", "0x1G", "0b101", "1_000", "1:20", "190:20:30", "12a",
    "1.5", "-1.5e+3", "1e3", "1.0e3", ".5", ".inf", "-.Inf", "+.INF", ".nan", ".NaN", ".", "..", "1.2.3",
    "2026-01-01", "2026-1-1", "2026-01-01T10:00:00Z", "2026-01-01 10:00:00.5 -5", "2026-13-99",
    "<<", "=", "<<x", "=x", "+", "-x", "+x", "0-abc", "glpat-xyz", "BENCH_TOKEN_00001",
    "https://gitlab.com/", "a@bench", "kind", "Zendesk", "é", "a b", "3 days",
]  # fmt: skip


def _tags(loader: type[yaml.SafeLoader], text: str) -> list[str]:
    node = yaml.compose(text, Loader=loader)
    out: list[str] = []

    def walk(n: yaml.Node) -> None:
        out.append(n.tag)
        if isinstance(n, yaml.SequenceNode):
            for item in n.value:
                walk(item)
        elif isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                walk(key)
                walk(value)

    walk(node)
    return out


def test_scalars_resolve_to_the_tags_safeloader_gives() -> None:
    # each scalar plain, then quoted (never resolved: a memo of the plain one must not answer),
    # as a key, as a value and as list items; twice, so the memo answers the second time
    items = [style.format(s) for s in TRICKY for style in ("{}", "'{}'", '"{}"')]
    text = "".join(f"? {i}\n: {i}\n" for i in items) + "list:\n" + "".join(f"- {i}\n" for i in items * 2)
    expected = _tags(yaml.SafeLoader, text)
    assert _tags(_Loader, text) == expected
    # the corpus reaches every implicit type, or the comparison would prove little
    assert {"bool", "int", "float", "null", "timestamp", "merge", "str"} <= {t.rsplit(":", 1)[1] for t in expected}


def test_safeloader_still_files_every_implicit_type_under_a_first_character() -> None:
    # _Loader's shortcut skips the patterns for a first character SafeLoader files none under:
    # a pattern filed for any first character (None) or a path resolver would make it wrong.
    assert None not in _Loader.yaml_implicit_resolvers
    assert not _Loader.yaml_path_resolvers
    assert yaml.SafeLoader.yaml_implicit_resolvers.keys() == _Loader.yaml_implicit_resolvers.keys()


def test_the_collector_runs_again_after_a_load_and_stays_paused_when_the_caller_paused_it() -> None:
    assert gc.isenabled()
    inventory, _ = diagnose(EXAMPLE)
    assert inventory is not None and gc.isenabled()
    gc.disable()
    try:
        diagnose(EXAMPLE)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_runs_again_after_a_load_that_fails(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("providers: [unclosed\n", encoding="utf-8")
    inventory, found = diagnose(tmp_path)
    assert inventory is None and found[0].key == "<yaml>"
    assert gc.isenabled()


def test_exactly_one_of_a_kinds_keys_is_checked_outside_the_compiled_code() -> None:
    fast = schema._fast_validators()
    assert fast is not None
    _, kinds = fast
    assert kinds.one_of["consumer_gitlab_ci_variable"] == ("project", "group", "instance")
    assert "oneOf" not in kinds.defs["consumer_gitlab_ci_variable"]
    variable = {"kind": "gitlab_ci_variable", "provider": "gl", "key": "K", "project": "a/b"}
    kinds.validate("consumer_gitlab_ci_variable", variable)
    for wrong in ({**variable, "group": "a"}, {k: v for k, v in variable.items() if k != "project"}):
        with pytest.raises(fastjsonschema.JsonSchemaException):
            kinds.validate("consumer_gitlab_ci_variable", wrong)
        assert list(schema._kind_validators("consumer_gitlab_ci_variable").iter_errors(wrong))
