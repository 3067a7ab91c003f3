"""`reconcile validate` end to end through reconciler.cli.main."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from reconciler.cli import inventory_option, main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory"


def test_validate_example_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--inventory", str(EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert out == "ok: 9 tokens, 11 consumers, 3 providers (1 warning)\n"
    assert "warning: Zendesk disabled creating API tokens on 2026-10-27" in err


def test_strict_fails_on_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--inventory", str(EXAMPLE), "--strict"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1] == "1 error (--strict: warnings count as errors)"


def test_default_inventory_is_the_inventory_directory(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["validate"]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_every_error_is_printed_not_just_the_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text("providers: {}\ntoken: {}\npolicy: {max_lifetime: forever}\n")
    assert main(["validate", "--inventory", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{tmp_path}/a.yaml:2:1: token: unknown key 'token' (did you mean 'tokens'?)",
        f"{tmp_path}/a.yaml:3:10: policy.max_lifetime: 'forever' is not a duration like 30m, 12h, 21d or 2w",
        "2 errors",
    ]


def test_inventory_option_is_reusable() -> None:
    @click.command()
    @inventory_option
    def cmd(inventory: Path) -> None:
        click.echo(repr(inventory))

    from click.testing import CliRunner

    assert CliRunner().invoke(cmd, []).output == f"{Path('inventory')!r}\n"
    assert CliRunner().invoke(cmd, ["--inventory", "x/y"]).output == f"{Path('x/y')!r}\n"


def test_cli_start_up_imports_no_api_client() -> None:
    """`validate` is a benchmark target (< 1 s): gitlab and zenpy load only in the commands that
    talk to an API, jsonschema only when validating."""
    code = "import sys, reconciler.cli; print(sorted(m for m in ('gitlab', 'zenpy', 'jsonschema') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"
