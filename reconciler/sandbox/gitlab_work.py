"""placeholder"""

from __future__ import annotations


class WorkRoutes:
    def _register_work(self) -> None:
        pass
