"""Fixtures of the check tests (and the discover tests, which share the worlds' helpers)."""

from __future__ import annotations

from check_helpers import workdir  # noqa: F401 - the fixture
