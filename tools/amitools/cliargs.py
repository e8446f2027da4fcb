"""Checks of the `ami` commands' arguments: argparse `type=` functions for single values and
`check_*` functions for what needs several arguments or the file system.

Every failure is one line naming the bad value (`ami CMD: error: ...`) and exit status 2,
before any work starts (docs/cli.md lists them). `UsageError` is what a command raises for
a check it can only make after parsing; `ami` (amitools.cli) prints it the same way.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

STDOUT = "-"


class UsageError(Exception):
    """A bad argument or setting found after parsing: one line, exit status 2."""


def positive_int(text: str) -> int:
    """An integer of at least 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An integer of at least 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {text!r}")
    return value


def probability(text: str) -> float:
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def hex_list(text: str) -> list[bytes]:
    """Comma-separated hex strings, each at least one byte."""
    out = []
    for item in text.split(","):
        try:
            value = bytes.fromhex(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not hex") from None
        if not value:
            raise argparse.ArgumentTypeError(f"empty chip id in {text!r}")
        out.append(value)
    return out


def existing_file(text: str) -> str:
    """A path to a readable regular file."""
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a file")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text!r} is not readable")
    return text


def check_output(option: str, path: str | None, force: bool, stdout: bool = False) -> None:
    """An output file a command will write at its end: refused (UsageError) before the run
    if it exists (unless force), is a directory, or its directory is missing or read-only.
    stdout: `-` means standard output."""
    if path is None or (stdout and path == STDOUT):
        return
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{option} {path}: is a directory")
    if (p.exists() or p.is_symlink()) and not force:
        raise UsageError(f"{option} {path}: exists (--force replaces it)")
    parent = p.parent
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: no directory {str(parent)!r}")
    # Outputs are written beside their path and renamed into place: try that directory.
    _probe(option, path, parent)


def check_output_dir(option: str, path: str) -> None:
    """A directory a command fills (created if missing): UsageError if it cannot be."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{option} {path}: not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError:
        raise UsageError(f"{option} {path}: cannot create it") from None
    _probe(option, path, p)


def _probe(option: str, path: str, directory: Path) -> None:
    """Create and remove a file in directory (permission bits say nothing for root, nor on
    a read-only or special file system)."""
    probe = directory / f".ami-probe{os.getpid()}"
    try:
        probe.open("x").close()
        probe.unlink()
    except OSError:
        raise UsageError(f"{option} {path}: cannot write in {str(directory)!r}") from None

