"""`ami wear`: flash writes of a meter, measured, and the flash lifetime they imply.

One in-process meter and its head end run on a clean radio for some simulated days at
15-minute readings, with a command now and then; the meter's storage port counts every write
and byte per record. From that: writes per reading, per command, per day, and the lifetime
of a 100,000-cycle flash in two layouts: fixed A/B sectors (each slot rewrites one erase
block) and a wear-levelling file system (littlefs spreads writes over the free blocks).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from ami.commands import envelope as E

from amitools.cliargs import STDOUT, check_output, positive_int
from amitools.outputs import write_result
from amitools.progress import note
from amitools.sim.fleet import DemoOptions, Fleet
from amitools.sim.radio import PERFECT

CYCLES = 100_000
DAY_MS = 86_400_000


def measure(days: int = 7, commands_per_day: int = 2) -> dict[str, Any]:
    """Run one meter for `days`; return its writes by record, per day, per reading."""
    with tempfile.TemporaryDirectory() as tmp:
        f = Fleet(DemoOptions(meters=1, micropython=0, loss=0.0, attacks=False), Path(tmp))
        (eui,) = f.meters
        f.medium.set_link(eui, PERFECT)
        f.run_joins()
        meter = f.meters[eui].node.meter  # in-process: its storage counts writes
        base = {n: meter.storage.writes(n) for n in meter.storage.names()}
        start = f.medium.now
        commands = 0
        signer = f.prov.signer()
        step = DAY_MS // max(commands_per_day, 1)
        t = start
        while t < start + days * DAY_MS:
            t += step
            f.medium.run(t)
            now = t // 1000
            env = signer.issue(E.LOAD_LIMIT, E.TARGET_DEVICE, eui, now - 60, now + 3600,
                               (10_000 + commands, 300, E.RESTORE_AUTO))
            f.headend.send_command(eui, env)
            commands += 1
        f.medium.run(start + days * DAY_MS)
        storage = meter.storage
        readings = meter.next_seq
        by_record: dict[str, int] = {}
        for name in storage.names():
            record = name.rsplit(".", 1)[0]
            by_record[record] = by_record.get(record, 0) + storage.writes(name) - base.get(name, 0)
        f.close()
    total = sum(by_record.values())
    return {
        "days": days,
        "readings": readings,
        "commands": commands,
        "writes_by_record_per_day": {k: round(v / days, 1) for k, v in sorted(by_record.items())},
        "writes_per_day": round(total / days, 1),
        "writes_per_reading": round(total / max(readings, 1), 2),
    }


def lifetime(m: dict[str, Any], blocks_free: int = 64) -> dict[str, Any]:
    """Years until 100k cycles: per A/B slot (the busiest record's two slots alternate; the
    reading queue's ring pages `rq.N` are records of their own), and spread over
    `blocks_free` erase blocks by a wear-levelling file system."""
    per_day = m["writes_by_record_per_day"]
    record = max(sorted(per_day), key=lambda k: per_day[k])
    busiest = per_day[record]
    slot_years = CYCLES * 2 / busiest / 365  # two slots share the busiest record's writes
    levelled_years = CYCLES * blocks_free / m["writes_per_day"] / 365
    return {"busiest_record": record,
            "fixed_ab_slots_years": round(slot_years, 1),
            "wear_levelled_years": round(levelled_years, 1)}


def run(args: argparse.Namespace) -> int:
    """Measure, print, optionally write JSON (`-`: printed once, on standard output)."""
    check_output("--json", args.json, args.force, stdout=True)
    note(f"ami wear: one meter for {args.days} simulated days...")
    m = measure(args.days)
    m["lifetime"] = lifetime(m, args.blocks)
    text = json.dumps(m, indent=2) + "\n"
    if args.json != STDOUT:
        print(text, end="")
    if args.json:
        write_result(args.json, text)
    return 0


def add_parser(sub: Any) -> None:
    """Register `ami wear`."""
    p = sub.add_parser("wear", help="measure a meter's flash writes and the flash lifetime")
    p.add_argument("--days", type=positive_int, default=7)
    p.add_argument("--blocks", type=positive_int, default=64,
                   help="free erase blocks for levelling")
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON (-: standard output)")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=run)
