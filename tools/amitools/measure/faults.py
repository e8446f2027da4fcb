"""`ami faults`: the power-loss campaign, on CPython and on the MicroPython unix port.

The campaign (`amitools.ondevice.faultcampaign`, firmware dialect) cuts the power at every write and
every byte of every write of each persistent store, reboots, and checks the invariants
(docs/faults.md). Here it runs in-process on CPython and, per store, in a MicroPython unix
port process (256K heap; 320K for the whole meter, which shares its process with the head
end's half), from one provisioned node (`amitools.sim.nodedir`); the reports are merged: top-level
figures are sums over the runtimes, violations are prefixed with theirs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from amitools import BUILD
from amitools.cliargs import check_output, non_negative_int, positive_int
from amitools.outputs import human_output, write_result
from amitools.progress import note
from amitools.runtimes import (
    MissingTool,
    micropython_binary,
    micropython_path,
    mpy_cross,
    run_micropython,
)
from amitools.sim.nodedir import provisioned_node

SCRIPT = Path(__file__).parent.parent / "ondevice" / "faultcampaign.py"
# The modules the script imports; compiled with mpy-cross for the unix port, as firmware is
# for a board: compiling 800 lines at run time would fragment a 256K heap.
MODULES = ("faultengine", "faultstores", "faultmeter")
RUNTIMES = ("cpython", "micropython")
STORES = ("keystore", "counters", "join_nonces", "relay", "events", "commands", "queue", "meter")
MP_HEAP = "256K"  # a board's budget (as the firmware tests run)
# The whole-meter scenario's process holds, besides the meter (whose firmware leaves about
# 70K of 256K free once imported), the head end's half of the link and the campaign's model:
# it gets 64K more (docs/faults.md). The device code and its storage are the same.
MP_METER_HEAP = "320K"
MAX_LISTED = 20  # violations listed per store and runtime (faultengine.MAX_LISTED)


def compile_modules(out: Path) -> Path:
    """The campaign's modules compiled into out (only those older than their source)."""
    tool = mpy_cross()
    if tool is None:
        raise MissingTool("mpy-cross not found: set MPY_CROSS=/path/to/mpy-cross")
    out.mkdir(parents=True, exist_ok=True)
    for name in MODULES:
        src = SCRIPT.with_name(name + ".py")
        dst = out / (name + ".mpy")
        if not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime:
            subprocess.run([tool, "-o", str(dst), str(src)], check=True)
    return out


def run_cpython(step: int, stores: list[str], node: Path | None) -> dict[str, Any]:
    """The campaign in this process."""
    from amitools.ondevice import faultcampaign

    t = time.perf_counter()
    report: dict[str, Any] = faultcampaign.run(step, stores, str(node) if node else None)
    report["wall_seconds"] = round(time.perf_counter() - t, 2)
    note(f"ami faults: cpython done in {report['wall_seconds']} s")
    return report


def run_micropython_stores(
    step: int, stores: list[str], node: Path | None, jobs: int = 0
) -> dict[str, Any]:
    """The campaign on the unix port: one process per store (256K heap; the meter's 320K),
    `jobs` at a time (0: one per core); their reports merged into one. Each process loads
    only its scenario's module, precompiled (build/faults-mpy)."""
    mpy = compile_modules(BUILD / "faults-mpy")
    micropython_path()  # brings build/mpy up to date once, before the parallel runs

    def one(store: str) -> dict[str, Any]:
        args = [str(SCRIPT), "--path", str(mpy), "--step", str(step), "--stores", store]
        if node is not None:
            args += ["--node", str(node)]
        heap = MP_METER_HEAP if store == "meter" else MP_HEAP
        proc = run_micropython(args, heap=heap, timeout=7200)
        note(f"ami faults: micropython {store} {'done' if proc.returncode == 0 else 'failed'}")
        lines = proc.stdout.strip().splitlines()
        if proc.returncode or not lines:
            why = ((proc.stderr.strip() or proc.stdout.strip()).splitlines() or ["no output"])[-1]
            return {"failed": f"{store}: the unix port failed: {why}"}
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        parts = list(pool.map(one, stores))
    report: dict[str, Any] = {
        "runtime": "micropython", "backend": "portable", "step": step, "cut_points": 0,
        "torn_writes": 0, "reboots": 0, "violations": [], "by_store": {}, "seconds": 0.0,
    }
    for store, part in zip(stores, parts, strict=True):
        if "failed" in part:
            report["violations"].append(part["failed"])
            report["by_store"][store] = {"cut_points": 0, "torn_writes": 0, "reboots": 0,
                                         "writes": 0, "violations": 1, "seconds": 0.0}
            continue
        report["backend"] = part["backend"]
        for key in ("cut_points", "torn_writes", "reboots", "seconds"):
            report[key] += part[key]
        report["violations"] += part["violations"]
        report["by_store"].update(part["by_store"])
    report["seconds"] = round(report["seconds"], 2)
    report["wall_seconds"] = round(time.perf_counter() - t, 2)
    return report


def merge(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One report from the runtimes' reports (see the module docstring)."""
    out: dict[str, Any] = {"cut_points": 0, "torn_writes": 0, "reboots": 0, "violations": [],
                           "by_store": {}, "runtimes": runs}
    for runtime, r in runs.items():
        for key in ("cut_points", "torn_writes", "reboots"):
            out[key] += r[key]
        out["violations"] += [f"{runtime}: {v}" for v in r["violations"]]
        for store, s in r["by_store"].items():
            acc = out["by_store"].setdefault(
                store, {"cut_points": 0, "torn_writes": 0, "reboots": 0, "violations": 0}
            )
            for key in acc:
                acc[key] += s[key]
    return out


def campaign(
    step: int = 1,
    runtimes: tuple[str, ...] = RUNTIMES,
    stores: list[str] | None = None,
    jobs: int = 0,
) -> dict[str, Any]:
    """The whole campaign over the given runtimes and stores (default all)."""
    names = list(stores or STORES)
    for name in names:
        if name not in STORES:
            raise ValueError(f"unknown store {name!r} (stores: {', '.join(STORES)})")
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        node = provisioned_node(Path(tmp)) if "meter" in names else None
        if "cpython" in runtimes:
            runs["cpython"] = run_cpython(step, names, node)
        if "micropython" in runtimes:
            runs["micropython"] = run_micropython_stores(step, names, node, jobs)
    return merge(runs)


def summary(report: dict[str, Any], limit: int = 30) -> str:
    """A short table: per store and runtime, then totals and the first violations."""
    rows = [("store", "runtime", "cut points", "torn writes", "reboots", "violations", "s")]
    for runtime, r in report["runtimes"].items():
        for store, s in r["by_store"].items():
            rows.append((store, runtime, str(s["cut_points"]), str(s["torn_writes"]),
                         str(s["reboots"]), str(s["violations"]), f"{s['seconds']:.1f}"))
    total = sum(s["violations"] for s in report["by_store"].values())
    rows.append(("total", "", str(report["cut_points"]), str(report["torn_writes"]),
                 str(report["reboots"]), str(total), ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [row[i].rjust(widths[i]) for i in range(2, len(row))]
        lines.append("  ".join(cells))
    for runtime, r in report["runtimes"].items():
        lines.append(f"{runtime} ({r['backend']}): {r['wall_seconds']} s wall, step {r['step']}")
    violations = report["violations"]
    if violations:
        lines.append(f"{total} violation(s): runs (cut points) where an invariant failed; the "
                     f"first of each run, at most {MAX_LISTED} per store and runtime listed:")
        lines += ["  " + v for v in violations[:limit]]
        if len(violations) > limit:
            lines.append(f"  ... and {len(violations) - limit} more (see --json)")
    else:
        lines.append("no violations")
    return "\n".join(lines)


def store_list(text: str) -> list[str]:
    """--stores: comma-separated names of STORES."""
    names = [s for s in text.split(",") if s]
    unknown = [s for s in names if s not in STORES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown store {','.join(unknown) or text!r} (stores: {','.join(STORES)})"
        )
    return names


def run(args: argparse.Namespace) -> int:
    """`ami faults`: run, print the summary, write JSON; 1 if any violation."""
    check_output("--json", args.json, args.force, stdout=True)
    runtimes = RUNTIMES if args.runtime == "both" else (args.runtime,)
    if "micropython" in runtimes:  # missing tools refused before the run
        micropython_binary()
        if mpy_cross() is None:
            raise MissingTool("mpy-cross not found: set MPY_CROSS=/path/to/mpy-cross")
    note(f"ami faults: {', '.join(runtimes)}, stores {','.join(args.stores or STORES)}, "
         f"step {args.step}...")
    report = campaign(args.step, runtimes, args.stores, args.jobs)
    with human_output(args.json):
        print(summary(report))
    if args.json:
        write_result(args.json, json.dumps(report, indent=2) + "\n")
    return 1 if report["violations"] else 0


def add_parser(sub: Any) -> None:
    """Register `ami faults`."""
    p = sub.add_parser("faults", help="power-loss campaign: a cut at every write and byte")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON (-: standard output)")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.add_argument("--step", type=positive_int, default=1,
                   help="cut every N-th byte of each write (and its last): 1 is the full run")
    p.add_argument("--runtime", choices=("cpython", "micropython", "both"), default="both")
    p.add_argument("--stores", metavar="A,B", type=store_list,
                   help="only these stores: " + ",".join(STORES))
    p.add_argument("--jobs", type=non_negative_int, default=0,
                   help="MicroPython processes at a time (0: one per core)")
    p.set_defaults(func=run)
