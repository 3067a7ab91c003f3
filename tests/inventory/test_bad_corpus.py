"""The corpus of malformed inventories: each `bad/<case>/` is an inventory directory with an
`expect.txt` listing, in order, every diagnostic `reconcile validate` must print, with paths
relative to the case directory (`FILE:LINE:COL: KEY: message`). Optional `args.txt` holds extra
command-line arguments (e.g. `--strict`). Every case must exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import main

BAD = Path(__file__).parent / "bad"
CASES = sorted(p for p in BAD.iterdir() if p.is_dir())


def expected(case: Path) -> list[str]:
    lines = (case / "expect.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def printed_diagnostics(case: Path, stderr: str) -> list[str]:
    """The diagnostic lines of stderr, with the case directory taken off every path in them
    (a message may cite a second place: "also at DIR/a.yaml:2:3")."""
    out = []
    for line in stderr.splitlines():
        if line.startswith(f"{case}/"):
            out.append(line.replace(f"{case}/", ""))
        elif line.startswith(f"{case}:"):
            out.append("." + line[len(str(case)) :].replace(f"{case}/", ""))
    return out


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert all((case / "expect.txt").is_file() for case in CASES), "every case needs an expect.txt"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_inventory_fails_with_file_line_and_key(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = (case / "args.txt").read_text().split() if (case / "args.txt").exists() else []
    code = main(["validate", "--inventory", str(case), *args])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""  # nothing claims success
    want = expected(case)
    assert want, f"{case.name}/expect.txt lists no diagnostic"
    assert printed_diagnostics(case, captured.err) == want
