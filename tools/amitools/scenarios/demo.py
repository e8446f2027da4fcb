"""`ami demo`: run a fleet, print a readable summary, optionally write the JSON report."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from amitools.sim.fleet import DemoOptions, run_demo


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


def main(args: argparse.Namespace) -> int:
    """Entry point of `ami demo`; exits non-zero if a reading is lost or an attack accepted."""
    workers = args.workers or ((os.cpu_count() or 1) if args.meters >= 1000 else 1)
    opts = DemoOptions(
        meters=args.meters, micropython=min(args.micropython, args.meters), seed=args.seed,
        loss=args.loss, hours=args.hours, workers=workers, capture=args.capture,
    )
    report = run_demo(opts)
    print(summary(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    problems = verdict(report)
    print("RESULT:", "PASS" if not problems else "FAIL: " + "; ".join(problems))
    return 1 if problems else 0


def add_parser(sub: Any) -> None:
    """Register `ami demo`."""
    p = sub.add_parser("demo", help="a fleet joins and reports over an attacked radio")
    p.add_argument("--meters", type=int, default=20)
    p.add_argument("--micropython", type=int, default=3, help="meters run on the unix port")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--loss", type=float, default=0.05, help="radio frame loss per link")
    p.add_argument("--hours", type=int, default=24, help="simulated reporting time")
    p.add_argument(
        "--workers", type=int, default=0,
        help="parallel fleet partitions (0: one per core from 1,000 meters, else 1)",
    )
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--capture", metavar="FILE", help="record every frame on the air")
    p.set_defaults(func=main)
