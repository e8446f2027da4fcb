"""The `ami` command: every subcommand registers itself through its module's `add_parser`."""

from __future__ import annotations

import argparse
import importlib
import sys

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
    "amitools.measure.heapbench",
    "amitools.boards.cli",
    "amitools.sim.hil",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("ami-endpoint-emulator")
    except PackageNotFoundError:  # run from a source tree that was never installed
        ver = "unknown"
    parser = argparse.ArgumentParser(prog="ami", description="AMI endpoint emulator tools")
    parser.add_argument("--version", action="version", version=f"%(prog)s {ver}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ami` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
