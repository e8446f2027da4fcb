"""`ami demo`: run a fleet, print a readable summary, optionally write the JSON report."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from typing import Any

from amitools.cliargs import (
    UsageError,
    check_output,
    non_negative_int,
    positive_int,
    probability,
)
from amitools.outputs import Staged, human_output, write_result
from amitools.runtimes import micropython_binary
from amitools.sim.fleet import DemoOptions, run_demo

DEFAULT_MICROPYTHON = 3


def summary(r: dict) -> str:
    """A readable summary of a demo report."""
    rd = r["readings"]
    at = r["attacks"]
    lines = [
        f"meters: {r['meters']} ({r['micropython_meters']} on the MicroPython unix port), "
        f"joined: {r['joined']}, join retries: {r['join_failures']}",
        f"readings: sent {rd['sent']}, delivered {rd['delivered']}, lost {rd['lost']}, "
        f"duplicated {rd['duplicated']} (duplicates dropped by the head end: "
        f"{rd['duplicates_dropped']})",
        f"attacks: {at['attempted']} attempted, {at['accepted']} accepted",
    ]
    for kind, e in at["by_kind"].items():
        lines.append(f"  {kind:22} attempted {e['attempted']:6}  accepted {e['accepted']}")
    if "commands" in r:
        c = r["commands"]
        stray = c["stray_results"]
        lines.append(
            f"commands addressed to meters (a broadcast once per member, in "
            f"{c['broadcast_frames']} frames): {c['addressed']}; executed {c['executed']}, "
            f"refused {c['refused']}, unanswered {c['unanswered']}"
        )
        lines.append(
            f"  refused by the signer's policy before sending: {c['refused_by_signer_policy']}; "
            f"answers to copied or forged envelopes: {stray['to_attack_envelopes']}, "
            f"to envelopes never sent to that meter: {stray['other']}"
        )
        lines.append(f"relays: {r['relay']}")
        lines.append(f"security events logged on meters: {r['events']}")
        alerts = r["security_monitor"]["alerts"]
        lines.append(f"security monitor alerts: {alerts or 'none'}")
    lines.append("rejections (every one typed and counted):")
    for reason, n in r["rejections"].items():
        lines.append(f"  {reason:22} {n}")
    rates = r["rates"]
    lines.append(
        f"rates: {rates['joins_per_second']} joins/s, {rates['readings_per_minute']} readings "
        f"per wall-clock minute; wall time {r['wall_seconds']} s"
    )
    return "\n".join(lines)


def verdict(r: dict) -> list[str]:
    """The reasons the run failed; empty if it passed."""
    problems = []
    if not r["radio"]["delivered"]:
        problems.append("nothing could be delivered: the radio lost every frame")
    if r["joined"] != r["meters"]:
        problems.append(f"{r['meters'] - r['joined']} meters did not join")
    if r["readings"]["lost"]:
        problems.append(f"{r['readings']['lost']} readings lost")
    if r["readings"]["duplicated"]:
        problems.append(f"{r['readings']['duplicated']} readings duplicated")
    if r["attacks"]["accepted"]:
        problems.append(f"{r['attacks']['accepted']} attacks accepted")
    stray = r.get("commands", {}).get("stray_results", {}).get("other")
    if stray:
        problems.append(f"{stray} answers to commands never sent to that meter")
    return problems


def check(args: argparse.Namespace) -> DemoOptions:
    """The run's options, or UsageError for arguments that contradict each other or
    outputs and tools that would fail only after the run."""
    if args.micropython is None:
        args.micropython = min(DEFAULT_MICROPYTHON, args.meters)
    elif args.micropython > args.meters:
        raise UsageError(f"--micropython {args.micropython} is more than --meters {args.meters}")
    if args.workers is not None and args.workers > args.meters:
        raise UsageError(f"--workers {args.workers} is more than --meters {args.meters}")
    check_output("--json", args.json, args.force, stdout=True)
    check_output("--capture", args.capture, args.force)
    if args.json and args.json == args.capture:
        raise UsageError(f"--json and --capture are the same file {args.json}")
    if args.micropython:
        micropython_binary()
    workers = args.workers or ((os.cpu_count() or 1) if args.meters >= 1000 else 1)
    return DemoOptions(
        meters=args.meters, micropython=args.micropython, seed=args.seed, loss=args.loss,
        hours=args.hours, workers=min(workers, args.meters), capture=args.capture,
        progress=True,
    )


def main(args: argparse.Namespace) -> int:
    """Entry point of `ami demo`; exits non-zero if a reading is lost or an attack accepted."""
    opts = check(args)
    # The capture is written under a temporary name and renamed when the run ends: an
    # interrupted run leaves none.
    capture = Staged(opts.capture) if opts.capture else None
    try:
        if capture is not None:
            opts = replace(opts, capture=str(capture.tmp))
        report = run_demo(opts)
    except BaseException:
        if capture is not None:
            capture.discard()
        raise
    if capture is not None:
        capture.commit()
    with human_output(args.json):
        print(summary(report))
        problems = verdict(report)
        print("RESULT:", "PASS" if not problems else "FAIL: " + "; ".join(problems))
    if args.json:
        write_result(args.json, json.dumps(report, indent=2) + "\n")
    return 1 if problems else 0


def add_parser(sub: Any) -> None:
    """Register `ami demo`."""
    p = sub.add_parser("demo", help="a fleet joins and reports over an attacked radio")
    p.add_argument("--meters", type=positive_int, default=20)
    p.add_argument("--micropython", type=non_negative_int,
                   help=f"meters run on the unix port, at most --meters (default "
                        f"{DEFAULT_MICROPYTHON}, or every meter of a smaller fleet)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--loss", type=probability, default=0.05,
                   help="radio frame loss per link, 0 to 1")
    p.add_argument("--hours", type=positive_int, default=24, help="simulated reporting time")
    p.add_argument(
        "--workers", type=positive_int,
        help="parallel fleet partitions, at most --meters (default: one per core from 1,000 "
             "meters, else 1)",
    )
    p.add_argument("--json", metavar="FILE", help="write the report as JSON (-: standard output)")
    p.add_argument("--capture", metavar="FILE", help="record every frame on the air")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.set_defaults(func=main)
