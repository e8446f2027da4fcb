"""The `ami` command."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from amitools import demo

    return demo.main(args)


def _provision(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from amitools import provision

    chips = None
    if args.chip_id:
        chips = [bytes.fromhex(c) for c in args.chip_id.split(",") if c]
        if len(chips) != args.meters:
            print(f"--chip-id gives {len(chips)} chip ids for {args.meters} devices")
            return 2
    prov = provision.provision(args.meters, int(time.time()), seed=args.seed, chip_ids=chips)
    provision.write(prov, Path(args.out))
    print(f"provisioned CA, head end and {args.meters} devices into {args.out}")
    return 0


def _sniff(args: argparse.Namespace) -> int:
    from amitools import sniffer

    return sniffer.run(args.capture, args.limit)


def _vectors(args: argparse.Namespace) -> int:
    from amitools import vectors

    vectors.build(args.out)
    print("vector subsets written to", args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    from amitools import bench, faults, linkbench, wear

    parser = argparse.ArgumentParser(prog="ami", description="AMI endpoint emulator tools")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="a fleet joins and reports over an attacked radio")
    demo.add_argument("--meters", type=int, default=20)
    demo.add_argument("--micropython", type=int, default=3, help="meters run on the unix port")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--loss", type=float, default=0.05, help="radio frame loss per link")
    demo.add_argument("--hours", type=int, default=24, help="simulated reporting time")
    demo.add_argument(
        "--workers", type=int, default=0,
        help="parallel fleet partitions (0: one per core from 1,000 meters, else 1)",
    )
    demo.add_argument("--json", metavar="FILE", help="write the report as JSON")
    demo.add_argument("--capture", metavar="FILE", help="record every frame on the air")
    demo.set_defaults(func=_demo)
    sniff = sub.add_parser("sniff", help="decode a capture written by `ami demo --capture`")
    sniff.add_argument("capture")
    sniff.add_argument("--limit", type=int, default=0, help="print at most N frames")
    sniff.set_defaults(func=_sniff)
    prov = sub.add_parser("provision", help="create CA, head end and device key stores")
    prov.add_argument("--meters", type=int, default=20)
    prov.add_argument("--out", default="build/provision")
    prov.add_argument("--seed", type=int, help="reproducible keys (tests only: not secret)")
    prov.add_argument("--chip-id", metavar="HEX[,HEX...]",
                      help="boards' machine.unique_id(), one per device: each key store is "
                           "sealed under a secret only that chip derives (ami.ports.secret)")
    prov.set_defaults(func=_provision)
    vec = sub.add_parser("vectors", help="extract compact test-vector subsets")
    vec.add_argument("--out", default="build/vectors")
    vec.set_defaults(func=_vectors)
    bench.add_parser(sub)
    linkbench.add_parser(sub)
    wear.add_parser(sub)
    faults.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ami` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
