"""Ctrl-C and SIGTERM for the `ami` commands: both unwind the program as an exception, so
every `finally` and context manager runs (temporary directories with keys removed, unix-port
nodes stopped, partial outputs removed). Child processes that threads wait on are killed
first, or the unwinding would wait for them."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable

_children: set[subprocess.Popen] = set()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, unwinding it as Ctrl-C does."""


def track(proc: subprocess.Popen) -> None:
    """A child process to kill on Ctrl-C or SIGTERM (one a thread waits on)."""
    _children.add(proc)


def untrack(proc: subprocess.Popen) -> None:
    _children.discard(proc)


def _kill_children() -> None:
    for proc in list(_children):
        proc.kill()


def _on_signal(signum: int, frame: object) -> None:
    _kill_children()
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def install() -> Callable[[], None]:
    """Handle SIGINT and SIGTERM in this (main) thread; returns what restores the old ones."""
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for signum, handler in old.items():
            signal.signal(signum, handler)

    return restore


def _worker_exit(signum: int, frame: object) -> None:
    _kill_children()
    raise SystemExit(128 + signum)  # unwinds the task; the pool worker ends without a trace


def worker_init() -> None:
    """Initializer of pool worker processes: Ctrl-C is the parent's to handle (it terminates
    the pool), SIGTERM from it unwinds the worker's task and ends it quietly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_exit)
