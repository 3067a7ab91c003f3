"""The secret-leak guard's scanning (used by the hook in tests/conftest.py, and tested on its own).

A module of its own, not conftest.py, because several conftest.py files in the suite make
`import conftest` ambiguous.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MIN_SECRET_LENGTH = 8  # shorter seeded strings are not credentials and would match by chance
MAX_SCANNED_FILE = 5 * 1024 * 1024
SANDBOX_FILES = (".sandbox.json", ".sandbox.yaml")  # the fakes' own databases and seeds


def produced_files(tmp_path: Path | None) -> list[tuple[str, bytes]]:
    """Every file a test wrote under its tmp_path, except sandbox state and seeds."""
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
