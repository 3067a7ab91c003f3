"""The signal policy of apply (reconciler/interrupt.py), without signals: the first one is a flag
checked at safe points, a second stops at once except inside a critical section."""

from __future__ import annotations

import signal

import pytest

from reconciler.interrupt import Interrupted, Interrupts, StopNow, exit_code


def quiet() -> Interrupts:
    return Interrupts(say=lambda text: None)


def test_the_first_signal_waits_for_a_safe_point():
    interrupts = quiet()
    interrupts.checkpoint()  # nothing received: goes on
    interrupts.handle(signal.SIGTERM)
    assert interrupts.requested and interrupts.exit_code == 143 == exit_code(signal.SIGTERM)
    with pytest.raises(Interrupted, match="interrupted by SIGTERM") as stop:
        interrupts.checkpoint()
    assert stop.value.exit_code == 143


def test_a_second_signal_stops_at_once_but_never_inside_a_critical_section():
    interrupts = quiet()
    interrupts.handle(signal.SIGINT)
    with pytest.raises(StopNow):
        interrupts.handle(signal.SIGINT)
    interrupts = quiet()
    steps = []
    with pytest.raises(StopNow):
        with interrupts.critical():
            interrupts.handle(signal.SIGINT)
            interrupts.handle(signal.SIGINT)  # deferred: the section finishes first
            steps.append("escrowed")
    assert steps == ["escrowed"] and interrupts.exit_code == 130


def test_at_the_prompt_the_first_signal_ends_it_at_once():
    interrupts = quiet()
    with pytest.raises(Interrupted), interrupts.immediate():
        interrupts.handle(signal.SIGINT)


def test_after_stopping_at_once_further_signals_let_the_wind_down_finish():
    said: list[str] = []
    interrupts = Interrupts(say=said.append)
    interrupts.handle(signal.SIGTERM)
    with pytest.raises(StopNow):
        interrupts.handle(signal.SIGTERM)
    interrupts.handle(signal.SIGTERM)  # the lock is being released: not interrupted again
    assert said[-1] == "SIGTERM: already stopping; releasing the lock"
