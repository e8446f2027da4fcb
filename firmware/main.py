"""The board's entry point: MicroPython runs main.py at boot (from the file system, a ROMFS
image or frozen into the build). The board runtime picks this board's profile (pins,
storage, stream: ami.board.config, docs/boards.md) and serves the node protocol until the
host sends X (docs/protocol.md section 9)."""

from ami.board.boot import main

main()
