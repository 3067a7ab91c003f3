"""Shared fixtures and the suite-wide secret-leak guard.

Tests never reach the internet: only the sandboxes on loopback.

The leak guard: after every test, every credential value any sandbox of
this process seeded or minted (`reconciler_sandbox.core.known_secrets()`) is searched for in what
the test produced: its captured stdout and stderr (including subprocesses, and what the test read
itself through `capsys`/`capfd.readouterr()`), its log records, and the files under its `tmp_path`. A hit fails the test, naming where, never the value. Sandbox state
and seed files (`*.sandbox.json`, `*.sandbox.yaml`) are the fake servers' own databases and hold
values by design; they are not scanned. Everything else is, ledgers and escrows beside them included.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from leakguard import find_leaks, produced_files

from reconciler_sandbox.core import known_secrets

ROOT = Path(__file__).resolve().parent.parent
ORACLES = ROOT.parent / "shared" / "oracles"
READ_OUTPUT = pytest.StashKey[list]()


_readouterr = pytest.CaptureFixture.readouterr


def _readouterr_seen_by_the_guard(self: pytest.CaptureFixture, *args, **kwargs):
    """What a test reads with readouterr() leaves pytest's capture; keep it for the guard."""
    result = _readouterr(self, *args, **kwargs)
    seen = self.request.node.stash.setdefault(READ_OUTPUT, [])
    for name, text in (("stdout read by the test", result.out), ("stderr read by the test", result.err)):
        seen.append((name, text.encode() if isinstance(text, str) else text))
    return result


pytest.CaptureFixture.readouterr = _readouterr_seen_by_the_guard  # type: ignore[method-assign]


@pytest.fixture
def oracles() -> Path:
    """The shared recordings and specs of the real services; tests skip without them."""
    if not ORACLES.is_dir():
        pytest.skip(f"the oracles are not available at {ORACLES} (../shared/oracles beside the project)")
    return ORACLES


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.when not in ("call", "teardown") or report.failed or item.get_closest_marker("leaks_by_design"):
        return
    secrets = known_secrets()
    if not secrets:
        return
    places = [(name, text.encode()) for name, text in report.sections if report.when in name]
    places += item.stash.get(READ_OUTPUT, [])
    item.stash[READ_OUTPUT] = []  # scanned once
    if report.when == "call":
        places += produced_files(getattr(item, "funcargs", {}).get("tmp_path"))
    leaks = find_leaks(places, secrets)
    if leaks:
        report.outcome = "failed"
        report.longrepr = "secret leak guard: a credential value appeared in " + "; ".join(leaks)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "leaks_by_design: the test shows a secret on purpose (e.g. `state keygen`); the guard skips it"
    )
