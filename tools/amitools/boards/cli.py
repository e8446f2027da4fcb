"""`ami board`: build the emulated boards, make ROMFS images, run the suite, boot a board.

    ami board build [--board an385|an500|all] [--frozen] [--heap BYTES]
    ami board image                       # build/boards/romfs/firmware.romfs
    ami board test [--board ...] [MODULE ...]
    ami board run --board an385 [--romfs IMAGE]   # boots, prints the pty, waits for Ctrl-C
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from amitools.boards import qemu
from amitools.boards.build import BOARDS, Variant, build
from amitools.boards.romfs import firmware_image


def _keys(choice: str) -> list[str]:
    return sorted(BOARDS) if choice == "all" else [choice]


def _build(args: argparse.Namespace) -> int:
    variant = Variant(frozen=args.frozen, heap=args.heap)
    for key in _keys(args.board):
        start = time.monotonic()
        elf = build(BOARDS[key], variant)
        print(f"qemu-{key} ({variant.name}): {elf} in {time.monotonic() - start:.1f} s")
    return 0


def _image(args: argparse.Namespace) -> int:
    print(firmware_image())
    return 0


def _test(args: argparse.Namespace) -> int:
    from amitools.boards import suite

    qemu.kill_on_signals()
    results = suite.run(_keys(args.board), args.modules or None)
    for r in results:
        print(f"  qemu-{r.key}: {r.seconds:.0f} s")
    for r in results:
        print(r.summary())
    return 1 if any(r.failed or not r.passed for r in results) else 0


def _run(args: argparse.Namespace) -> int:
    qemu.kill_on_signals()
    board = BOARDS[args.board]
    elf = build(board, Variant(frozen=args.frozen))
    romfs = Path(args.romfs) if args.romfs else (None if args.frozen else firmware_image())
    b = qemu.start(board, elf, romfs)
    try:
        print(f"qemu-{args.board}: UART at {b.port} (e.g. mpremote connect {b.port}); "
              "Ctrl-C stops the board", flush=True)
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while b.proc.poll() is None and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        b.close()
    return 0


def add_parser(sub: Any) -> None:
    """Register `ami board`."""
    p = sub.add_parser("board", help="emulated MicroPython boards: build, image, test, run")
    cmds = p.add_subparsers(dest="board_command", required=True)
    b = cmds.add_parser("build", help="build MicroPython's qemu port with cryptolib and littlefs")
    b.add_argument("--board", choices=[*sorted(BOARDS), "all"], default="all")
    b.add_argument("--frozen", action="store_true", help="freeze the firmware (manifest.py)")
    b.add_argument("--heap", type=int, help="GC heap in bytes (default: the port's 140 KB)")
    b.set_defaults(func=_build)
    i = cmds.add_parser("image", help="the firmware as a ROMFS image")
    i.set_defaults(func=_image)
    t = cmds.add_parser("test", help="the firmware test suite on the emulated boards")
    t.add_argument("--board", choices=[*sorted(BOARDS), "all"], default="all")
    t.add_argument("modules", nargs="*", help="test modules (default: all of host_tests/fw)")
    t.set_defaults(func=_test)
    r = cmds.add_parser("run", help="boot a board and leave its UART to you until Ctrl-C")
    r.add_argument("--board", choices=sorted(BOARDS), default="an385")
    r.add_argument("--romfs", help="ROMFS image (default: the firmware's)")
    r.add_argument("--frozen", action="store_true", help="boot the frozen build, no ROMFS")
    r.add_argument("--seconds", type=float, help="stop the board after this long")
    r.set_defaults(func=_run)
