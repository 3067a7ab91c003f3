"""The leak guard must catch a value a sandbox minted, wherever a test puts it."""

from __future__ import annotations

import pytest

from reconciler_sandbox.core import Clock, Service

pytest_plugins = ["pytester"]


class Minting(Service):
    name = "minting"

    def secrets(self) -> set[str]:
        return {"glpat-value-for-the-guard"}


@pytest.mark.leaks_by_design  # the inner run's log records reach this test's log capture
def test_guard_fails_a_test_that_prints_logs_or_writes_a_minted_value(pytester):
    here = __import__("pathlib").Path(__file__).parent
    pytester.makepyfile(leakguard=(here / "leakguard.py").read_text())
    pytester.makeconftest((here / "conftest.py").read_text())
    pytester.makepyfile(
        test_leaky='''
import logging
from reconciler_sandbox.core import Clock, Service

class Minting(Service):
    def secrets(self):
        return {"glpat-value-for-the-guard"}

keep = Minting(Clock())

def test_prints():
    print("token is glpat-value-for-the-guard")

def test_logs():
    logging.getLogger("x").warning("glpat-value-for-the-guard")

def test_writes(tmp_path):
    (tmp_path / "plan.json").write_text('{"v": "glpat-value-for-the-guard"}')

def test_sandbox_state_is_exempt(tmp_path):
    (tmp_path / "world.sandbox.json").write_text('{"v": "glpat-value-for-the-guard"}')

def test_a_ledger_beside_sandbox_state_is_scanned(tmp_path):
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "sandbox" / "ledger.json").write_text('{"v": "glpat-value-for-the-guard"}')

def test_reads_its_output(capsys):
    print("token is glpat-value-for-the-guard")
    assert "glpat" in capsys.readouterr().out

def test_clean():
    print("nothing to see")
'''
    )
    result = pytester.runpytest("-p", "no:xdist", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=5)
    result.stdout.fnmatch_lines(["*secret leak guard*Captured stdout call*", "*file plan.json*", "*file sandbox/ledger.json*", "*stdout read by the test*"])
    assert "glpat-value-for-the-guard" not in "\n".join(
        line for line in result.outlines if "secret leak guard" in line
    )


def test_find_leaks_names_the_place_and_never_the_value():
    from leakguard import find_leaks

    places = [("stdout", b"held glpat-value-for-the-guard here"), ("stderr", b"short abc"), ("log", b"clean")]
    leaks = find_leaks(places, {"glpat-value-for-the-guard", "abc"})
    assert len(leaks) == 1 and leaks[0].startswith("stdout (sha256:")
    assert "glpat" not in leaks[0]


def test_known_secrets_come_from_every_live_service():
    from reconciler_sandbox.core import known_secrets

    keep = Minting(Clock())
    assert "glpat-value-for-the-guard" in known_secrets()
    del keep
