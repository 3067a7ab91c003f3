"""placeholder"""

from __future__ import annotations


class CIRoutes:
    def _register_ci(self) -> None:
        pass
