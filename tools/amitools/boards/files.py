"""Which firmware files go on a board, and the package.json that lists them for mip.

A board gets every module under ``firmware/`` except the host-only ones: the CPython crypto
backend and the unix-port node. package.json (at the repository root, so that
``mpremote mip install github:OWNER/REPO`` finds it) is generated from this list and checked
by the tests, so the two cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

from amitools import FIRMWARE, REPO

# Firmware files that never go on a board (paths relative to firmware/).
HOST_ONLY = ("ami/crypto/native.py", "ami/unixnode.py")
# The board's entry point: a source file at the root of its file system, not a library
# module (make deploy copies it there).
ENTRY_POINT = "main.py"
PACKAGE_JSON = REPO / "package.json"
PACKAGE_VERSION = "0.1.0"


def board_files() -> list[str]:
    """The board's files, relative to firmware/ (e.g. "ami/meter.py"), sorted."""
    found = sorted(p.relative_to(FIRMWARE).as_posix() for p in FIRMWARE.rglob("*.py"))
    return [f for f in found
            if f not in HOST_ONLY and f != ENTRY_POINT and "__pycache__" not in f]


def package_json() -> str:
    """The text of package.json: every board file, its source relative to the repository."""
    urls = [[name, "firmware/" + name] for name in board_files()]
    return json.dumps({"urls": urls, "version": PACKAGE_VERSION}, indent=2) + "\n"


def write_package_json(path: Path = PACKAGE_JSON) -> None:
    """Write package.json (make package-json)."""
    path.write_text(package_json())


if __name__ == "__main__":
    write_package_json()
