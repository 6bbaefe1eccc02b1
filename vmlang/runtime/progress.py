"""Progress display for slow work (compiling, autotuning): nothing for the first second, then a rich
spinner or bar on stderr. ``VMLANG_PROGRESS=1`` forces it on, ``0`` off; by default it shows only when
stderr is a terminal."""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

DELAY_S = 1.0


def enabled() -> bool:
    env = os.environ.get("VMLANG_PROGRESS")
    if env is not None:
        return env not in ("0", "false", "no", "")
    return sys.stderr.isatty()


@contextlib.contextmanager
def status(message: str, delay: float = DELAY_S):
    """A spinner with ``message`` if the block takes longer than ``delay`` seconds."""
    if not enabled():
        yield
        return
    from rich.console import Console
    state = {"status": None}
    lock = threading.Lock()

    def start():
        with lock:
            if not state.get("done"):
                state["status"] = Console(stderr=True).status(message)
                state["status"].start()
    timer = threading.Timer(delay, start)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            state["done"] = True
            if state["status"] is not None:
                state["status"].stop()


class Bar:
    """A progress bar over ``total`` steps that appears once the work has taken ``delay`` seconds."""

    def __init__(self, description: str, total: int, delay: float = DELAY_S):
        self.description, self.total, self.delay = description, total, delay
        self.done = 0
        self.t0 = time.perf_counter()
        self._progress = None
        self._task = None
        self.shown = False

    def advance(self, note: str = "") -> None:
        self.done += 1
        if self._progress is None and enabled() and time.perf_counter() - self.t0 >= self.delay:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            from rich.console import Console
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("{task.fields[note]}"),
                                      console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, completed=self.done - 1,
                                                 note="")
            self.shown = True
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, note=note)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
