# MicroPython manifest that freezes the firmware into a board build, e.g.
#   make -C ports/rp2 BOARD=RPI_PICO_W FROZEN_MANIFEST=/path/to/this/manifest.py
# or include("/path/to/this/manifest.py") from a board's own manifest.
# MicroPython runs it with this directory as the working directory. The file list is
# package.json's: the board files only (no CPython crypto backend, no unix-port node).
import json

with open("package.json") as f:
    for dest, src in json.load(f)["urls"]:
        module(dest, base_path=src[: -len(dest)] or ".")  # noqa: F821 (a manifest builtin)
