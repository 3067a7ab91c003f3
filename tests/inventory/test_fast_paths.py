"""The loader's shortcuts change nothing but time: the collector is left as it was found."""

from __future__ import annotations

import gc
from pathlib import Path

from reconciler.inventory import diagnose

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory"


def test_the_collector_runs_again_after_a_load_and_stays_paused_when_the_caller_paused_it() -> None:
    assert gc.isenabled()
    inventory, _ = diagnose(EXAMPLE)
    assert inventory is not None and gc.isenabled()
    gc.disable()
    try:
        diagnose(EXAMPLE)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_runs_again_after_a_load_that_fails(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("providers: [unclosed\n", encoding="utf-8")
    inventory, found = diagnose(tmp_path)
    assert inventory is None and found[0].key == "<yaml>"
    assert gc.isenabled()
