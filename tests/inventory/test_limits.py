"""Loading hostile inventory text is bounded: alias bombs, deep nesting, large files and symbolic
links out of the directory each get one clear `FILE:LINE:` error and exit 1, never a traceback,
and nothing of a refused file's content is said."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.inventory import yamlload
from reconciler.inventory.yamlload import load_document

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory"
MAX_FILE_BYTES = 16 << 20  # the loader's limits, as the messages state them
CLI = "import sys; from reconciler.cli import main; sys.exit(main())"


def alias_bomb(levels: int, width: int = 9) -> str:
    """`a` is a mapping of `width` values; each next anchor lists the previous one `width` times:
    a few hundred bytes that expand to width**levels values."""
    names = "abcdefghijklmnop"
    lines = ["a: &a {" + ", ".join(f"k{i}: lol" for i in range(width)) + "}"]
    for prev, name in zip(names, names[1:levels], strict=False):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bomb.yaml").write_text(alias_bomb(6))  # 263 bytes, 531,441 mappings once expanded
    started = time.monotonic()
    assert main(["validate", "--inventory", str(tmp_path)]) == 1
    assert time.monotonic() - started < 20
    err = capsys.readouterr().err
    assert f"{tmp_path}/bomb.yaml:6:" in err
    assert "aliases expand to more than 100,000 values" in err
    assert "Traceback" not in err


def test_an_alias_bomb_costs_little_memory_in_validate(tmp_path: Path) -> None:
    """The 272-byte list bomb took over 100 s and 4 GB before the loader counted aliases; the
    child's address space is capped, so without the limit this fails instead of swapping."""
    (tmp_path / "bomb.yaml").write_text(alias_bomb(7))

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run([sys.executable, "-c", CLI, "validate", "--inventory", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, preexec_fn=cap, cwd=ROOT)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert done.returncode == 1, done.stderr[-2000:]
    assert "aliases expand to more than" in done.stderr
    assert "Traceback" not in done.stderr
    assert peak_kb < max(before, 300_000)  # KB: well under 300 MB (about 75 MB measured)


def test_aliases_within_the_limit_still_load(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(alias_bomb(3))  # 729 values through aliases
    doc = load_document(tmp_path)
    assert doc.diagnostics == []
    assert len(doc.data["c"]) == 9 and doc.data["c"][8][8] == {f"k{i}": "lol" for i in range(9)}


def test_a_500_deep_flow_mapping_is_an_error_not_a_recursion_error(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "deep.yaml").write_text("tokens: " + "{a: " * 500 + "1" + "}" * 500 + "\n")
    assert main(["validate", "--inventory", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path}/deep.yaml:1:" in err
    assert "nested more than 32 levels deep" in err
    assert "Traceback" not in err and "RecursionError" not in err


def test_deep_block_lists_are_an_error_too(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text("tokens:\n  " + "- " * 200 + "x\n")
    doc = load_document(tmp_path)
    assert [d.message for d in doc.diagnostics] == ["nested more than 32 levels deep: flatten it"]


def test_a_file_over_the_size_limit_is_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "big.yaml").write_text("policy: {}\n# " + "x" * MAX_FILE_BYTES + "\n")
    assert main(["validate", "--inventory", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{tmp_path}/big.yaml:1:1: <file>: ")
    assert f"an inventory file may have {MAX_FILE_BYTES:,} at most" in err


def test_the_directory_total_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlload, "MAX_TOTAL_BYTES", 100)
    for name in "abc":
        # 44 bytes each; words, not a run of one letter (another test's credential value is "x" * 40)
        (tmp_path / f"{name}.yaml").write_text(f"{name}: " + "word " * 8 + "\n")
    doc = load_document(tmp_path)
    assert [(Path(d.pos.file).name, d.pos.line) for d in doc.diagnostics] == [("c.yaml", 1)]
    assert "this file and those after it are not read" in doc.diagnostics[0].message
    assert set(doc.data) == {"a", "b"}


def test_a_symlink_out_of_the_directory_is_refused_unread(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("providers: SECRET-FROM-OUTSIDE\n")
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "providers.yaml").symlink_to(outside)
    assert main(["validate", "--inventory", str(inventory)]) == 1
    err = capsys.readouterr().err
    assert f"{inventory}/providers.yaml:1:1: <file>: a symbolic link to outside the inventory directory" in err
    assert "SECRET-FROM-OUTSIDE" not in err and str(outside) not in err


def test_a_symlinked_directory_out_of_the_inventory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.yaml").write_text("providers: {}\n")
    inventory = tmp_path / "inventory"
    (inventory / "tokens").mkdir(parents=True)
    (inventory / "a.yaml").write_text("policy: {}\n")
    (inventory / "tokens" / "more.yaml").symlink_to(outside / "x.yaml")
    doc = load_document(inventory)
    assert [d.message.split(":")[0] for d in doc.diagnostics] == ["a symbolic link to outside the inventory directory"]


def test_a_symlink_to_a_file_inside_the_directory_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Allowed: the target is part of the inventory under review anyway (a hidden directory's
    file is not read on its own)."""
    inventory = tmp_path / "inventory"
    (inventory / ".shared").mkdir(parents=True)
    for path in EXAMPLE.rglob("*.yaml"):
        rel = path.relative_to(EXAMPLE)
        (inventory / rel).parent.mkdir(parents=True, exist_ok=True)
        (inventory / rel).write_bytes(path.read_bytes())
    (inventory / "providers.yaml").rename(inventory / ".shared" / "providers.yaml")
    (inventory / "providers.yaml").symlink_to(Path(".shared") / "providers.yaml")
    assert main(["validate", "--inventory", str(inventory)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
