"""Progress of long runs, on standard error (standard output keeps the results)."""

from __future__ import annotations

import sys


def note(text: str) -> None:
    """One progress line on standard error, flushed at once."""
    print(text, file=sys.stderr, flush=True)
