"""The inventory: YAML files -> a validated, positioned model.

    from reconciler.inventory import load_inventory, InventoryError
    inv = load_inventory("inventory")      # raises InventoryError listing every error

Stages: load every *.yaml with positions (yamlload), JSON Schema (schema), build the model
(build), meaning and policy checks (checks). The schema stage reports every shape error at once;
the meaning checks run once the shapes are right, since they need the model.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from reconciler.errors import DiagnosticsError
from reconciler.inventory.model import Diagnostic, Inventory


class InventoryError(DiagnosticsError):
    """The inventory has errors. `str()` is one diagnostic per line, sorted by position."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def diagnose(path: str | Path) -> tuple[Inventory | None, list[Diagnostic]]:
    """Every diagnostic (errors and warnings) of the inventory at `path`, and the model when
    it could be built. Never raises for bad input."""
    with _collector_paused():
        return _diagnose(path)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """CPython's cyclic garbage collector paused while the inventory loads. A load allocates a few
    hundred thousand objects (nodes, values, marks, model) and keeps most of them: the collector ran
    every 700 allocations and, as the heap grew, walked all of it again and again, a third of the
    load's time. A load makes no cyclic garbage worth collecting early (a recursive alias's node
    graph, refused, is collected once the collector runs again); acyclic garbage is freed as ever."""
    if not gc.isenabled():  # paused by a caller already: leave it so
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _diagnose(path: str | Path) -> tuple[Inventory | None, list[Diagnostic]]:
    from reconciler.inventory.build import build_inventory
    from reconciler.inventory.checks import check_inventory
    from reconciler.inventory.schema import validate_document
    from reconciler.inventory.yamlload import load_document

    doc = load_document(path)
    found = list(doc.diagnostics)
    if doc.files:
        found += validate_document(doc)
    if any(d.severity == "error" for d in found) or not doc.files:
        return None, _sorted(found)
    inventory, build_errors = build_inventory(doc)
    del doc  # the largest part of a load (the data and its positions): the checks need the model only
    found += build_errors
    found += check_inventory(inventory)
    warnings = tuple(d for d in _sorted(found) if d.severity == "warning")
    return replace(inventory, warnings=warnings), _sorted(found)


def load_inventory(path: str | Path) -> Inventory:
    """The inventory under `path` (a directory of *.yaml files, or one file). Raises
    `InventoryError` with every diagnostic when there is any error; warnings are kept in
    `Inventory.warnings`."""
    inventory, found = diagnose(path)
    if inventory is None or any(d.severity == "error" for d in found):
        raise InventoryError(found)
    return inventory


def _sorted(found: list[Diagnostic]) -> list[Diagnostic]:
    unique = {(d.pos, d.key, d.message, d.severity): d for d in found}
    return sorted(unique.values(), key=lambda d: (d.pos.file, d.pos.line, d.pos.column, d.key))


__all__ = ["Diagnostic", "Inventory", "InventoryError", "diagnose", "load_inventory"]
