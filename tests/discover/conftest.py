"""The discover tests share the check tests' world helpers (tests/check/check_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "check"))

from check_helpers import workdir  # noqa: E402,F401 - the fixture
