"""How apply shows its progress: one plain line per step when the output is not a terminal or in
CI (`CI=true`), a rich progress bar with the steps scrolling above it on a terminal. Steps never
carry a value (apply builds them from labels and ids only)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TextIO

from reconciler.apply import Step

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def plain_output(stream: TextIO) -> bool:
    if os.environ.get("CI", "").lower() == "true" or os.environ.get("NO_COLOR"):
        return True
    return not (hasattr(stream, "isatty") and stream.isatty())


class LineReporter:
    """`TOKEN: message`, one line per step; failures marked `FAILED`."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def start(self, total: int) -> None:
        self.stream.write(f"Applying {total} token(s)...\n")
        self.stream.flush()

    def step(self, step: Step) -> None:
        mark = "" if step.ok else "FAILED: "
        self.stream.write(f"{step.token}: {mark}{step.message}\n")
        self.stream.flush()

    def token_done(self, name: str, ok: bool) -> None:
        pass

    def finish(self) -> None:
        pass


class RichReporter:
    """A progress bar over the tokens; every step printed above it, coloured by outcome."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console

        self.console = Console(file=stream)
        self.bar: tuple[Progress, TaskID] | None = None  # the bar and its one task, once started

    def start(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("[bold]apply"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.description}"), TimeElapsedColumn(), console=self.console,
                            transient=True)
        progress.start()
        self.bar = (progress, progress.add_task("", total=total))

    def step(self, step: Step) -> None:
        from rich.text import Text

        line = Text(f"{step.token}: ", style="bold")
        line.append(("FAILED: " if not step.ok else "") + step.message, style="" if step.ok else "bold red")
        self.console.print(line)
        if self.bar is not None:
            progress, task = self.bar
            progress.update(task, description=step.token)

    def token_done(self, name: str, ok: bool) -> None:
        if self.bar is not None:
            progress, task = self.bar
            progress.advance(task)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar[0].stop()
            self.bar = None


def reporter_for(stream: TextIO) -> LineReporter | RichReporter:
    return LineReporter(stream) if plain_output(stream) else RichReporter(stream)
