"""Shared fixtures. Tests never reach the internet: only the sandboxes on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ORACLES = ROOT.parent / "shared" / "oracles"


@pytest.fixture
def oracles() -> Path:
    """The shared recordings and specs of the real services; tests skip without them."""
    if not ORACLES.is_dir():
        pytest.skip(f"the oracles are not available at {ORACLES} (../shared/oracles beside the project)")
    return ORACLES
