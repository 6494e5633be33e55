"""The progress bar the edge hands to the engine as its ``progress`` callback (rich, on stderr)."""

from __future__ import annotations

import math
import time
from typing import Any

PROGRESS_DELAY = 1.0  # seconds of work before a progress bar appears


def wants_progress(*, terminal: bool, quiet: bool, fmt: str) -> bool:
    """A progress bar on stderr: only on a terminal, not with --quiet, not with --format json, plain or metrics
    (scripts read those)."""
    return terminal and not quiet and fmt not in ("json", "plain", "metrics")


class ProgressBar:
    """A :data:`Progress` callback that draws a rich bar on ``console`` once the work has run ``delay`` seconds
    (rich is imported only then: ``console`` may be a function that makes the console). ``close()`` removes it."""

    def __init__(self, console: Any, description: str, delay: float = PROGRESS_DELAY) -> None:
        self.console, self.description, self.delay = console, description, delay
        self.started = time.monotonic()
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if time.monotonic() - self.started < self.delay:
                return
            console = self.console() if callable(self.console) else self.console
            if not console.is_terminal:  # rich's answer, where the caller could not tell (TTY_COMPATIBLE=0)
                self.delay = math.inf
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar = Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=total, completed=done)
        self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
