"""The README's inventory reference is generated from the schema and cannot drift from it."""

from __future__ import annotations

from pathlib import Path

from reconciler.inventory.reference import README, readme_section, render, write_readme
from reconciler.inventory.schema import load_schema, schema_properties


def test_readme_reference_equals_the_generated_text() -> None:
    section = readme_section(README.read_text(encoding="utf-8"))
    assert section is not None, "README.md lost the inventory-reference markers"
    assert section == render(), "run: python -m reconciler.inventory.reference --write"


def test_reference_names_every_key_of_the_schema() -> None:
    text = render()
    names = {path.rsplit(".", 1)[-1] for path, _ in schema_properties()}
    missing = sorted(n for n in names if f".{n}`" not in text and f"`{n}`" not in text)
    assert missing == []


def test_reference_lists_every_kind() -> None:
    text = render()
    defs = load_schema()["$defs"]
    for kind in defs["source"]["properties"]["kind"]["enum"] + defs["consumer"]["properties"]["kind"]["enum"]:
        assert f"with `kind: {kind}`" in text


def test_write_readme_replaces_only_the_marked_section(tmp_path: Path) -> None:
    from reconciler.inventory.reference import BEGIN, END

    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nintro\n\n{BEGIN}\nstale\n{END}\n\n## after\n", encoding="utf-8")
    assert write_readme(readme) is True
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# title\n\nintro\n\n")
    assert text.endswith(f"{END}\n\n## after\n")
    assert "stale" not in text and readme_section(text) == render()
    assert write_readme(readme) is False
