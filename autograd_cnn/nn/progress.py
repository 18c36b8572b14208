"""What fit shows while it runs, and how it stops: the progress bars (tqdm, a notebook's or a
terminal's, or one line per epoch in a log file) and Ctrl-C deferred to the end of the step.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

REDRAW_INTERVAL = 0.25  # seconds between redraws of a bar: the Trainer reads its running loss as often


def format_logs(logs: dict, sep: str = ", ", eq: str = "=") -> str:
    return sep.join(f"{k}{eq}{v:.4f}" for k, v in logs.items())


def progress_bar(total: int, desc: str, show: bool) -> Any:
    """tqdm's bar on a terminal or in a notebook; one line at the end elsewhere (a log file, a pipe),
    where each redraw of the bar would be a line of its own."""
    if not show:
        return None
    if not (sys.stderr.isatty() or _in_notebook()):
        return _LineAtTheEnd(total, desc)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, mininterval=REDRAW_INTERVAL)


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"  # Jupyter's kernel: tqdm draws a widget


class _LineAtTheEnd:
    """The part of tqdm's interface fit uses, writing one line to stderr when closed:
    ``Epoch 1/5: 32/32 steps, 1.2s, loss=0.6931, accuracy=0.7500``."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.n, self.postfix = total, desc, 0, ""
        self.start = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def close(self) -> None:
        seconds = time.perf_counter() - self.start
        tail = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.n}/{self.total} steps, {seconds:.1f}s{tail}", file=sys.stderr, flush=True)


class DeferredInterrupt:
    """Ctrl-C during fit sets a flag that the loop reads after the current step; a second Ctrl-C
    interrupts at once. Outside the main thread signals cannot be caught, so it does nothing there."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Callable | None = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
