"""The `ami` command: every subcommand registers itself through its module's `add_parser`.

Bad input ends in one line naming it and exit status 2 (amitools.cliargs); Ctrl-C and
SIGTERM unwind every command through its cleanup (child processes stopped, temporary
directories removed, partial outputs removed) and exit 130 and 143.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import NoReturn

from amitools import interrupts
from amitools.cliargs import UsageError

# Modules with an add_parser(sub), in the order `ami --help` lists them.
COMMANDS = (
    "amitools.scenarios.demo",
    "amitools.office.provision",
    "amitools.reference.sniffer",
    "amitools.reference.vectors",
    "amitools.measure.bench",
    "amitools.measure.linkbench",
    "amitools.measure.wear",
    "amitools.measure.faults",
    "amitools.measure.fuzz",
    "amitools.measure.heapbench",
    "amitools.boards.cli",
    "amitools.sim.hil",
)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: `ami CMD: error: ...`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("ami-endpoint-emulator")
    except PackageNotFoundError:  # run from a source tree that was never installed
        ver = "unknown"
    parser = Parser(prog="ami", description="AMI endpoint emulator tools")
    parser.add_argument("--version", action="version", version=f"%(prog)s {ver}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ami` console script."""
    args = build_parser().parse_args(argv)
    restore = interrupts.install()
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (`ami ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except UsageError as exc:
        print(f"ami {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except interrupts.Terminated:
        print(f"ami {args.command}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"ami {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
