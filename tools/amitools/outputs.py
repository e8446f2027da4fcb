"""Files the tools write: results whole or not at all (a temporary file renamed into place,
removed if the run is interrupted), and secrets readable by their owner only (0600 files in
0700 directories)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

from amitools.cliargs import STDOUT


class Staged:
    """An output file written under a temporary name beside `path`: `commit()` renames it
    to `path`, `discard()` removes it, so no reader ever finds half a result."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.partial{os.getpid()}")

    def commit(self) -> None:
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


def write_result(path: str | Path, text: str) -> None:
    """Write a whole result file (atomically); `-` is standard output."""
    if str(path) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    staged = Staged(path)
    try:
        staged.tmp.write_text(text)
        staged.commit()
    except BaseException:
        staged.discard()
        raise


def human_output(json_path: str | None) -> contextlib.AbstractContextManager:
    """Where a command's readable text goes: standard output, or standard error when its
    JSON result takes standard output (`--json -`)."""
    if json_path == STDOUT:
        return contextlib.redirect_stdout(sys.stderr)
    return contextlib.nullcontext()


def write_secret(path: Path, data: bytes) -> None:
    """Write a secret (a key, a device secret, a sealed key store) readable by its owner
    only, whatever the umask; an existing file is truncated and made 0600 first."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def secret_dir(path: Path) -> Path:
    """A directory for secrets, 0700, and its missing parents too (mkdir(parents=True)
    would make those with the umask's mode)."""
    for missing in reversed([p for p in (path, *path.parents) if not p.exists()]):
        missing.mkdir(mode=0o700)
    path.chmod(0o700)
    return path


def replace_dir(tmp: Path, out: Path) -> None:
    """Put the finished directory tmp at out, replacing what was there whole."""
    old = out.with_name(f".{out.name}.old{os.getpid()}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
