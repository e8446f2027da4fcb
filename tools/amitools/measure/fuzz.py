"""`ami fuzz`: coverage-guided fuzzing (atheris) of every decoder and receive path on CPython,
seeded mutation of the firmware's on the MicroPython unix port (docs/fuzzing.md).

Targets and invariants: amitools.ondevice.fuzztargets (firmware, both runtimes) and
amitools.measure.fuzzheadend (the head end, CPython). Seeds: the targets' own, plus every
frame of a head end and a meter joining and reporting on the virtual radio. Each CPython
target runs in its own process (atheris instruments the imports); a crash there, or a
violation on the unix port, fails the command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from amitools import REPO
from amitools.cliargs import UsageError, check_output, positive_int
from amitools.outputs import write_result
from amitools.runtimes import run_micropython

FIRMWARE_TARGETS = ("frame", "messages", "join", "identity", "envelope", "records", "meter",
                    "meterjoin")
TARGETS = (*FIRMWARE_TARGETS, "headend", "headrekey")
MP_SCRIPT = Path(__file__).parent.parent / "ondevice" / "fuzzmp.py"
MP_HEAP = "512K"
MAX_LEN = 300


def corpus() -> dict[str, list[bytes]]:
    """Seed inputs of every target: the targets' own and the frames of a short fleet run."""
    from amitools.measure.fuzzheadend import HeadEndTarget, RekeyingHeadEndTarget
    from amitools.ondevice.fuzztargets import seeds

    out = seeds()
    he = HeadEndTarget()
    frames = he.frames
    out["frame"] += [bytes((mode,)) + f for f in frames for mode in (0, 1)]
    out["meter"] += [b"\x00" + f for f in frames]
    out["meterjoin"] += [b"\x01" + f for f in frames]
    out["headend"] = he.seeds()
    out["headrekey"] = RekeyingHeadEndTarget().seeds()
    return out


def _write_corpus(inputs: list[bytes], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for data in inputs:
        (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


def run_cpython(target: str, runs: int, seed: int, corpus_dir: Path, work: Path) -> dict:
    """One atheris run of `runs` inputs; figures parsed from libFuzzer's final stats."""
    cmd = [sys.executable, "-m", "amitools.measure.fuzzatheris", target, str(corpus_dir),
           f"-runs={runs}", f"-seed={seed}", f"-max_len={MAX_LEN}", "-print_final_stats=1",
           f"-artifact_prefix={work}/{target}-", "-timeout=10", "-rss_limit_mb=2048"]
    # A fixed hash seed: set and dict orders, hence coverage, repeat from run to run.
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=os.pathsep.join(
        [str(REPO / "firmware"), str(REPO / "tools"), os.environ.get("PYTHONPATH", "")]))
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=6 * 3600)
    secs = time.perf_counter() - t
    log = proc.stdout + proc.stderr  # atheris prints the exception on stdout
    units = re.search(r"stat::number_of_executed_units: (\d+)", log)
    cov = re.findall(r"cov: (\d+) ft: (\d+)", log)
    inputs = int(units.group(1)) if units else 0
    crashes = []
    if proc.returncode:
        # The exception line atheris prints ("Violation: ..."), else libFuzzer's last word.
        lines = [ln for ln in log.splitlines() if re.match(r"\w*(Violation|Error): ", ln)]
        crashes.append((lines or log.strip().splitlines() or ["no output"])[-1][:500])
    return {"inputs": inputs, "seconds": round(secs, 2),
            "inputs_per_second": round(inputs / secs) if secs else None,
            "coverage": {"edges": int(cov[-1][0]), "features": int(cov[-1][1])} if cov else None,
            "crashes": crashes, "returncode": proc.returncode}


def run_mp(targets: list[str], runs: int, seed: int, corpus_file: Path) -> dict:
    """The mutation driver on the unix port, all firmware targets in one process."""
    args = [str(MP_SCRIPT), "--runs", str(runs), "--seed", str(seed), "--targets",
            ",".join(targets), "--corpus", str(corpus_file)]
    proc = run_micropython(args, heap=MP_HEAP, timeout=6 * 3600)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        why = ((proc.stderr.strip() or proc.stdout.strip()).splitlines() or ["no output"])[-1]
        return {"failed": why}
    report: dict[str, Any] = json.loads(lines[-1])
    for entry in report["targets"].values():
        secs = entry["seconds"]
        entry["inputs_per_second"] = round(entry["inputs"] / secs) if secs else None
    return report


def campaign(targets: list[str], runs: int, mp_runs: int, seed: int, runtimes: list[str],
             work: Path) -> dict:
    """Every target on every runtime asked for; the merged report."""
    seeds = corpus()
    report: dict[str, Any] = {"seed": seed, "cpython": {}, "micropython": {}}
    if "cpython" in runtimes:
        for t in targets:
            cdir = work / "corpus" / t
            _write_corpus(seeds[t], cdir)
            report["cpython"][t] = run_cpython(t, runs, seed, cdir, work)
            print(f"cpython {t}: {report['cpython'][t]}", file=sys.stderr)
    fw = [t for t in targets if t in FIRMWARE_TARGETS]
    if "micropython" in runtimes and fw:
        cfile = work / "mp-corpus.txt"
        cfile.write_text("".join(f"{t} {d.hex()}\n" for t in fw for d in seeds[t]
                                 if len(d) <= MAX_LEN))
        report["micropython"] = run_mp(fw, mp_runs, seed, cfile)
        print(f"micropython: {report['micropython']}", file=sys.stderr)
    return report


def failures(report: dict) -> list[str]:
    """Crashes and violations of a campaign report."""
    out = [f"cpython {t}: {c}" for t, e in report["cpython"].items() for c in e["crashes"]]
    out += [f"cpython {t}: ran no input" for t, e in report["cpython"].items()
            if not e["inputs"]]
    mp = report["micropython"]
    if "failed" in mp:
        out.append("micropython: " + mp["failed"])
    for t, e in mp.get("targets", {}).items():
        out += [f"micropython {t}: {v}" for v in e["violations"]]
    return out


def main(args: argparse.Namespace) -> int:
    targets = args.targets.split(",") if args.targets else list(TARGETS)
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        raise UsageError(f"--targets: unknown target {unknown[0]} (known: {', '.join(TARGETS)})")
    check_output("--json", args.json, args.force)
    runtimes = ["cpython", "micropython"] if args.runtime == "both" else [args.runtime]
    with tempfile.TemporaryDirectory(prefix="ami-fuzz-") as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        report = campaign(targets, args.runs, args.mp_runs, args.seed, runtimes, work)
    for rt in ("cpython", "micropython"):
        entries = report[rt] if rt == "cpython" else report[rt].get("targets", {})
        for t, e in entries.items():
            print(f"{rt:12} {t:10} {e['inputs']:>10} inputs {e['seconds']:>9} s "
                  f"{e['inputs_per_second'] or 0:>8} /s")
    if args.json:
        write_result(args.json, json.dumps(report, indent=2) + "\n")
    bad = failures(report)
    print("RESULT:", "PASS" if not bad else "FAIL: " + "; ".join(bad))
    return 1 if bad else 0



def add_parser(sub: Any) -> None:
    """Register `ami fuzz`."""
    p = sub.add_parser("fuzz", help="fuzz every decoder and receive path (docs/fuzzing.md)")
    p.add_argument("--targets", default="", help=f"comma-separated, of {', '.join(TARGETS)}")
    p.add_argument("--runs", type=positive_int, default=1_000_000, help="inputs per CPython target")
    p.add_argument("--mp-runs", type=positive_int, default=100_000,
                   help="inputs per target on the MicroPython unix port")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runtime", choices=("cpython", "micropython", "both"), default="both")
    p.add_argument("--workdir", help="keep corpus and crash inputs here (default: temporary)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=main)
