"""The YAML loader: positions of keys and values, merging across files, what it rejects."""

from __future__ import annotations

from pathlib import Path

from reconciler.inventory.model import Position
from reconciler.inventory.yamlload import dotted, load_document


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_positions_of_keys_and_list_items(tmp_path: Path) -> None:
    root = write(tmp_path, {"a.yaml": "tokens:\n  sync:\n    consumers:\n      - kind: x\n        key:   K\n"})
    doc = load_document(root)
    assert doc.diagnostics == []
    f = str(root / "a.yaml")
    assert doc.key_pos(("tokens", "sync")) == Position(f, 2, 3)
    assert doc.key_pos(("tokens", "sync", "consumers", 0)) == Position(f, 4, 9)
    assert doc.key_pos(("tokens", "sync", "consumers", 0, "key")) == Position(f, 5, 9)
    # an absent key falls back to its nearest present ancestor
    assert doc.key_pos(("tokens", "sync", "source", "kind")) == Position(f, 2, 3)


def test_positions_far_into_a_large_file_and_in_later_files_are_exact(tmp_path: Path) -> None:
    """Positions are packed into ints (file, line, column): a line past 100,000, a column past
    65,536 and the second of two files all come back as they were."""
    long_value = "v" * 70_000
    root = write(tmp_path, {"a.yaml": "policy: {}\n" + "# filler\n" * 100_000 + f"tokens: {{t: {long_value}, u: 1}}\n",
                            "b.yaml": "providers:\n  p: {kind: gitlab}\n"})
    doc = load_document(root)
    assert doc.diagnostics == []
    a, b = str(root / "a.yaml"), str(root / "b.yaml")
    assert doc.key_pos(("tokens", "u")) == Position(a, 100_002, 70_015)
    assert doc.key_pos(("providers", "p", "kind")) == Position(b, 2, 7)


def test_dotted_paths() -> None:
    assert dotted(("tokens", "a", "consumers", 2, "key")) == "tokens.a.consumers[2].key"
    assert dotted(()) == "<root>"


def test_anchors_aliases_and_merge_keys_are_allowed(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "a.yaml": (
                "x-ci: &ci {kind: gitlab_ci_variable, provider: gitlab-com, masked: true}\n"
                "tokens:\n"
                "  t:\n"
                "    consumers:\n"
                "      - <<: *ci\n"
                "        key: A\n"
                "      - <<: *ci\n"
                "        key: B\n"
                "        masked: false\n"
            )
        },
    )
    doc = load_document(root)
    assert doc.diagnostics == []
    consumers = doc.data["tokens"]["t"]["consumers"]
    assert consumers[0] == {"key": "A", "kind": "gitlab_ci_variable", "provider": "gitlab-com", "masked": True}
    assert consumers[1]["masked"] is False  # the mapping's own key wins over the merged one
    # merged keys are cited where the anchor defined them
    assert doc.key_pos(("tokens", "t", "consumers", 0, "provider")).line == 1


def test_dates_stay_text_and_values_keep_yaml_types(tmp_path: Path) -> None:
    root = write(tmp_path, {"a.yaml": "a: 2026-11-22\nb: 12\nc: true\nd: ~\ne: '12'\n"})
    assert load_document(root).data == {"a": "2026-11-22", "b": 12, "c": True, "d": None, "e": "12"}


def test_sections_merge_across_files_and_duplicates_cite_both_places(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "a.yaml": "tokens:\n  one: {}\npolicy: {max_lifetime: 90d}\n",
            "sub/b.yaml": "tokens:\n  two: {}\n  one: {}\npolicy: {max_access_level: 30}\n",
        },
    )
    doc = load_document(root)
    assert sorted(doc.data["tokens"]) == ["one", "two"]
    assert doc.data["policy"] == {"max_lifetime": "90d", "max_access_level": 30}
    [dup] = doc.diagnostics
    assert dup.pos == Position(str(root / "sub/b.yaml"), 3, 3)
    assert dup.key == "tokens.one"
    assert str(root / "a.yaml") + ":2:3" in dup.message


def test_custom_tags_are_rejected_at_their_key(tmp_path: Path) -> None:
    root = write(tmp_path, {"a.yaml": "a:\n  b: !env HOME\n  c: !!binary aGVsbG8=\n"})
    doc = load_document(root)
    assert [(d.key, d.pos.line) for d in doc.diagnostics] == [("a.b", 2), ("a.c", 3)]
    assert "!env" in doc.diagnostics[0].message
    assert doc.is_poisoned(("a", "b"))


def test_recursive_alias_is_an_error_not_a_hang(tmp_path: Path) -> None:
    root = write(tmp_path, {"a.yaml": "a: &x\n  - *x\n"})
    doc = load_document(root)
    assert any("recursive" in d.message for d in doc.diagnostics)


def test_hidden_directories_are_skipped_and_order_is_stable(tmp_path: Path) -> None:
    root = write(tmp_path, {"b.yaml": "x-b: 1\n", "a/z.yaml": "x-a: 1\n", ".reconcile/state.yaml": "junk: [\n"})
    doc = load_document(root)
    assert doc.diagnostics == []
    assert doc.files == [str(root / "a/z.yaml"), str(root / "b.yaml")]


def test_digest_covers_relative_paths_and_bytes(tmp_path: Path) -> None:
    one = write(tmp_path / "one", {"a.yaml": "x-a: 1\n", "t/b.yaml": "x-b: 2\n"})
    two = write(tmp_path / "two", {"a.yaml": "x-a: 1\n", "t/b.yaml": "x-b: 2\n"})
    digest = load_document(one).digest
    assert digest.startswith("sha256:") and len(digest) == 7 + 64
    assert load_document(two).digest == digest  # independent of where the directory is
    (two / "t/b.yaml").write_text("x-b: 3\n")
    assert load_document(two).digest != digest
    (two / "t/b.yaml").write_text("x-b: 2\n")
    (two / "t/b.yaml").rename(two / "t/c.yaml")
    assert load_document(two).digest != digest  # a rename changes it too


def test_a_missing_directory_is_a_diagnostic(tmp_path: Path) -> None:
    doc = load_document(tmp_path / "nope")
    [d] = doc.diagnostics
    assert d.key == "<inventory>" and "no such" in d.message
