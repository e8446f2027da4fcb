"""The `ami` command."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from amitools import selfcheck

    print("ami demo: the fleet demo arrives with the secure link (issue 3).")
    print("For now: the firmware crypto, run on CPython and on the MicroPython unix port.\n")
    return selfcheck.run()


def _vectors(args: argparse.Namespace) -> int:
    from amitools import vectors

    vectors.build(args.out)
    print("vector subsets written to", args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    from amitools import bench

    parser = argparse.ArgumentParser(prog="ami", description="AMI endpoint emulator tools")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demonstration")
    demo.set_defaults(func=_demo)
    vec = sub.add_parser("vectors", help="extract compact test-vector subsets")
    vec.add_argument("--out", default="build/vectors")
    vec.set_defaults(func=_vectors)
    bench.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ami` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
