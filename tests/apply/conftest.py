from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK  # noqa: E402


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A clean working directory: the sandbox ledger and escrow go to tmp_path/.reconcile/sandbox,
    where the leak guard scans them."""
    monkeypatch.chdir(tmp_path)
    for name in ("ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC", SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, "CI",
                 "RECONCILE_ESCROW_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def live_world(workdir):
    started = []

    def start(scenario):
        live = scenario.start(workdir)
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()
