"""ROMFS images: the firmware's board files compiled to .mpy, plus whatever else a run needs.

A board mounts partition 0 at ``/rom`` and puts ``/rom`` and ``/rom/lib`` on ``sys.path``; the
firmware goes to ``lib/`` so an image reads like a board's flash. Bytecode in a ROMFS image is
run in place, without a copy on the heap. The image itself is made by the pinned mpremote's
``romfs build`` from a staged directory of already compiled files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from amitools import FIRMWARE, REPO
from amitools.boards.files import board_files
from amitools.runtimes import mpy_cross

STAGE_ROOT = REPO / "build" / "boards" / "romfs"


def _compile(src: Path, dst: Path) -> None:
    tool = mpy_cross()
    if tool is None:
        raise FileNotFoundError("mpy-cross not found (make venv installs it)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([tool, "-o", str(dst), str(src)], check=True)


def stage(name: str, modules: dict[str, Path] | None = None,
          files: dict[str, Path] | None = None, firmware_at: str = "lib") -> Path:
    """A fresh staging directory build/boards/romfs/NAME holding the firmware in
    `firmware_at` (lib/: on the board's sys.path), each of `modules` (image path of the .mpy
    -> .py source) compiled, and each of `files` (image path -> file) copied as it is."""
    root = STAGE_ROOT / name
    shutil.rmtree(root, ignore_errors=True)
    for rel in board_files():
        _compile(FIRMWARE / rel, root / firmware_at / Path(rel).with_suffix(".mpy"))
    for dest, src in (modules or {}).items():
        _compile(src, root / dest)
    for dest, src in (files or {}).items():
        (root / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / dest)
    return root


def build_image(staged: Path, out: Path | None = None) -> Path:
    """Pack a staged directory into a ROMFS image (default: the directory's name + .romfs)."""
    out = out or staged.with_suffix(".romfs")
    mpremote = Path(sys.executable).with_name("mpremote")
    cmd = [str(mpremote) if mpremote.exists() else "mpremote"]
    subprocess.run(cmd + ["romfs", "--no-mpy", "-o", str(out), "build", str(staged)],
                   check=True, capture_output=True)
    return out


def firmware_image() -> Path:
    """The firmware alone, as deployed to a board's ROMFS partition."""
    return build_image(stage("firmware"))
