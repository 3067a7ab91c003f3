"""Interrupting apply: SIGTERM (what GitLab sends a job that is cancelled or timed out) and SIGINT
(Ctrl-C) end it at the next safe point instead of wherever it happens to be.

A safe point is a place where everything done so far is either finished or recorded for the next
apply to finish: between tokens, and between the consumer writes of a token whose new value is
already escrowed (never between a mint or rotate and its escrow). The first signal only sets a
flag; apply checks it at those points, stops, releases the lock and says what is done, what is
escrowed and what the next apply will finish (`Interrupted`). At the confirmation prompt there is
nothing to finish, so the signal ends apply at once there.

A second signal means "stop now": it raises `StopNow` at once, except inside a critical section
(taking the lock; a mint or rotate until its value is escrowed), where it waits for the section to
end. The lock is still released on the way out, and later signals do not cut that short. What a
stop in the middle of a token leaves is what a crash leaves, and the next apply converges from it.

Exit code: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as if the signal had
ended the process, so shells, CI and wrappers see an interruption and not a failure of apply.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from reconciler.errors import ReconcileError

HANDLED = (signal.SIGINT, signal.SIGTERM)


def exit_code(signum: int) -> int:
    return 128 + signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(ReconcileError):
    """Apply stopped at a safe point because of a signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal_name(signum)}")
        self.signum = signum
        self.exit_code = exit_code(signum)


class StopNow(BaseException):
    """A second signal: leave at once (a BaseException, so no `except Exception` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


def _say(text: str) -> None:
    # straight to the file descriptor: a signal handler must not re-enter a buffered stream
    try:
        os.write(2, (text + "\n").encode())
    except OSError:
        pass


class Interrupts:
    """The signals received during one apply, and where they may take effect."""

    def __init__(self, say: Callable[[str], None] = _say) -> None:
        self.signum: int | None = None
        self.count = 0
        self._say = say
        self._critical = 0
        self._stop_after_critical: int | None = None
        self._immediate = 0
        self._stopping_now = False
        self._count_lock = threading.Lock()  # apply's tokens enter critical sections from several threads

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """What the command exits with after the first signal (1 when none came)."""
        return exit_code(self.signum) if self.signum is not None else 1

    def checkpoint(self) -> None:
        """A safe point: stop here when a signal came."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    @contextmanager
    def critical(self) -> Iterator[None]:
        """A section no signal may cut (a mint until its escrow)."""
        with self._count_lock:
            self._critical += 1
        try:
            yield
        finally:
            with self._count_lock:
                self._critical -= 1
                last = self._critical == 0
        if last and self._stop_after_critical is not None:
            raise StopNow(self._stop_after_critical)

    @contextmanager
    def immediate(self) -> Iterator[None]:
        """A wait with nothing to finish (the confirmation prompt): a signal ends it at once."""
        self.checkpoint()
        self._immediate += 1
        try:
            yield
        finally:
            self._immediate -= 1

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        self.count += 1
        name = signal_name(signum)
        if self.count == 1:
            self.signum = signum
            if self._immediate:
                raise Interrupted(signum)
            self._say(f"{name}: stopping at the next safe point (a second signal stops at once)")
            return
        if self._stopping_now or self._stop_after_critical is not None:
            self._say(f"{name}: already stopping; releasing the lock")  # the wind-down is not cut short
            return
        if self._critical:
            self._stop_after_critical = signum
            self._say(f"{name} again: stopping as soon as the step under way (a mint and its escrow) is done")
            return
        self._stopping_now = True
        self._say(f"{name} again: stopping at once")
        raise StopNow(signum)

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Handle SIGINT and SIGTERM while inside (main thread only: elsewhere signals cannot be
        handled, and the defaults stay)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self.handle) for s in HANDLED}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
