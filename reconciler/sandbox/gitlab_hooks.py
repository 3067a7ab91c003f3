"""placeholder"""

from __future__ import annotations


class HookRoutes:
    def _register_hooks(self) -> None:
        pass
