"""Shared fixtures and the suite-wide secret-leak guard.

Tests never reach the internet: only the sandboxes on loopback.

The leak guard (DESIGN.md invariant 1): after every test, every credential value any sandbox of
this process seeded or minted (`reconciler.sandbox.core.known_secrets()`) is searched for in what
the test produced: its captured stdout and stderr (including subprocesses), its log records, and
the files under its `tmp_path`. A hit fails the test, naming where, never the value. Sandbox state
and seed files (`*.sandbox.json`, `*.sandbox.yaml`) are the fake servers' own databases and hold
values by design; they are not scanned. Everything else is, ledgers and escrows beside them included.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from reconciler.sandbox.core import known_secrets

ROOT = Path(__file__).resolve().parent.parent
ORACLES = ROOT.parent / "shared" / "oracles"

MIN_SECRET_LENGTH = 8  # shorter seeded strings are not credentials and would match by chance
MAX_SCANNED_FILE = 5 * 1024 * 1024
SANDBOX_FILES = (".sandbox.json", ".sandbox.yaml")


@pytest.fixture
def oracles() -> Path:
    """The shared recordings and specs of the real services; tests skip without them."""
    if not ORACLES.is_dir():
        pytest.skip(f"the oracles are not available at {ORACLES} (../shared/oracles beside the project)")
    return ORACLES


def _produced_files(tmp_path: Path | None) -> list[tuple[str, bytes]]:
    if tmp_path is None or not tmp_path.is_dir():
        return []
    files = []
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file() and not path.name.endswith(SANDBOX_FILES) and path.stat().st_size <= MAX_SCANNED_FILE:
            files.append((f"file {path.relative_to(tmp_path)}", path.read_bytes()))
    return files


def find_leaks(places: list[tuple[str, bytes]], secrets: set[str]) -> list[str]:
    """Where any of `secrets` occurs, as 'PLACE (sha256:abcd…)': never the value itself."""
    leaks = []
    candidates = [s for s in secrets if len(s) >= MIN_SECRET_LENGTH]
    for place, data in places:
        for secret in candidates:
            if secret.encode() in data:
                leaks.append(f"{place} (sha256:{hashlib.sha256(secret.encode()).hexdigest()[:12]})")
    return leaks


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
    if report.when == "call":
        places += _produced_files(getattr(item, "funcargs", {}).get("tmp_path"))
    leaks = find_leaks(places, secrets)
    if leaks:
        report.outcome = "failed"
        report.longrepr = "secret leak guard: a credential value appeared in " + "; ".join(leaks)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "leaks_by_design: the test shows a secret on purpose (e.g. `state keygen`); the guard skips it"
    )
