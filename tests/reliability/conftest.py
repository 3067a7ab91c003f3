"""Reliability suite: make the helper modules here and the apply suite's world builders
importable, and print the fault matrix's summary table at the end of a run."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent / "apply"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    module = sys.modules.get("test_fault_matrix")
    outcomes = getattr(module, "OUTCOMES", None)
    if outcomes:
        from fault_matrix import summary

        terminalreporter.section("fault matrix")
        terminalreporter.write_line(summary(outcomes))
