"""`ami linkbench`: the secure link's performance targets (issue: secure link).

- device side, on the MicroPython unix port (256K heap) and on CPython with the portable
  crypto: the join computation and the receive path of a secured downlink
  (`mplinkbench.py`, the same script on both runtimes);
- the head end: decrypt and verify of upstream frames, one unique key per meter, with a
  million keys loaded, on one core (`HeadEnd.route` + `HeadEnd.open_data`, the production
  path), and the whole collection path (dedup, storage row, sealed ACK) alongside;
- the fleet: `ami demo --meters N`, its reporting rate and join rate.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ami import crypto
from ami.link import frame, messages
from ami.link.session import Rejected

from amitools import FIRMWARE
from amitools.cliargs import check_output, non_negative_int, positive_int
from amitools.headend import HeadEnd, Registry
from amitools.headend.node import Device, Session
from amitools.measure.bench import publish
from amitools.office.provision import device_eui, provision
from amitools.progress import note
from amitools.runtimes import micropython_binary, run_micropython
from amitools.sim.nodedir import provisioned_node

BEGIN = "<!-- linkbench:begin -->"
END = "<!-- linkbench:end -->"
SCRIPT = Path(__file__).parent.parent / "ondevice" / "mplinkbench.py"


def device_side(out: Path) -> dict[str, Any]:
    """mplinkbench.py on the unix port and on CPython (portable crypto)."""
    d = provisioned_node(out)
    mp = run_micropython([str(SCRIPT), str(d)], heap="256K", timeout=600)
    if mp.returncode:
        raise RuntimeError("MicroPython link bench failed:\n" + mp.stdout + mp.stderr)
    env = dict(os.environ, AMI_CRYPTO="portable", PYTHONPATH=str(FIRMWARE))
    cp = subprocess.run(
        [sys.executable, str(SCRIPT), str(d)], env=env, capture_output=True, text=True,
        timeout=600,
    )
    if cp.returncode:
        raise RuntimeError("CPython link bench failed:\n" + cp.stdout + cp.stderr)
    return {"micropython": json.loads(mp.stdout), "cpython_portable": json.loads(cp.stdout)}


def headend_throughput(keys: int, frames: int, seed: int = 1) -> dict[str, Any]:
    """Uplink frames per second through the head end with `keys` sessions loaded."""
    rng = random.Random(seed)
    prov = provision(0, 1_767_225_600, seed=seed)
    he = HeadEnd(prov.headend, Registry(":memory:", prov.kek), None)
    t = time.perf_counter()
    for i in range(keys):
        eui = device_eui(i)
        k_up = rng.randbytes(16)
        dev = Device(eui, b"", b"", False, None, 1)
        dev.session = Session(1, k_up, rng.randbytes(16), 1 << 30)
        he.devices[eui] = dev
    load_s = time.perf_counter() - t
    counters: dict[bytes, int] = {}
    data = []
    for _ in range(frames):
        eui = device_eui(rng.randrange(keys))
        fcnt = counters.get(eui, 0)
        counters[eui] = fcnt + 1
        seq = fcnt * 4
        body = messages.encode_readings([(seq + j, 1_767_225_600 + j, 1000 + j) for j in range(4)])
        s = he.devices[eui].session
        data.append(
            frame.seal(s.k_up, frame.DATA, eui, he.address, frame.KEY_SESSION, 1, fcnt, body)
        )
    route, open_data = he.route, he.open_data
    t = time.perf_counter()
    for d in data:
        reason, fr, dev = route(d)
        if reason is None:
            plain = open_data(dev, fr)
            reason = plain.reason if isinstance(plain, Rejected) else None
        if reason is not None:
            raise RuntimeError("head end bench: " + reason)
    verify_s = time.perf_counter() - t
    # The whole collection path on fresh sessions: replay windows start empty again.
    for dev in he.devices.values():
        dev.session = Session(1, dev.session.k_up, dev.session.k_down, 1 << 30)
    he.registry.save_down_limit = lambda eui, limit: None  # bench: no per-device SQL writes
    t = time.perf_counter()
    for d in data[: frames // 2]:
        if he.receive(d, 0)[0] is not None:
            raise RuntimeError("head end bench: collection rejected a frame")
    he.flush()  # the group commit and the sealed acknowledgements belong to the path
    collect_s = time.perf_counter() - t
    return {
        "keys": keys,
        "frames": frames,
        "frame_bytes": len(data[0]),
        "load_seconds": round(load_s, 1),
        "verify_frames_per_second": round(frames / verify_s),
        "collect_frames_per_second": round(frames // 2 / collect_s),
        "backend": crypto.BACKEND,
    }


def commit_cost(batches: int = 200, rows: int = 100) -> dict[str, Any]:
    """Registry commits per second on a file (WAL), batches of `rows` readings, with
    synchronous=NORMAL and FULL: the price of acknowledging only what survives a power cut
    of the host (the head end commits once per flush, and once per other uplink it acts on)."""
    out: dict[str, Any] = {"rows_per_commit": rows}
    with tempfile.TemporaryDirectory(dir=Path.cwd() / "build") as tmp:
        for mode in ("NORMAL", "FULL"):
            reg = Registry(Path(tmp) / f"{mode}.db", bytes(16), synchronous=mode)
            t = time.perf_counter()
            for b in range(batches):
                reg.add_readings([(device_eui(i), b, 0, i, 0) for i in range(rows)])
                reg.commit()
            out[mode.lower()] = round(batches / (time.perf_counter() - t))
            reg.db.close()
    return out


def broadcast(meters: int, seed: int = 5) -> dict[str, Any]:
    """One signed load-limit command to a group of `meters` in-process meters: the wall time
    from the broadcast until every meter has verified it and set its limit."""
    from amitools.scenarios.campaign import GROUP_ALL, CommandCampaign
    from amitools.sim.fleet import DemoOptions, Fleet
    from amitools.sim.radio import PERFECT

    with tempfile.TemporaryDirectory() as tmp:
        f = Fleet(DemoOptions(meters=meters, micropython=0, loss=0.0, attacks=False, seed=seed),
                  Path(tmp))
        for m in f.meters:
            f.medium.set_link(m, PERFECT)
        f.run_joins()
        c = CommandCampaign(f.stage())
        c.setup_group(everyone=True)
        f.medium.run(f.medium.now + 600_000)  # group keys delivered
        env = c.request("alice", 4, 1, GROUP_ALL, (5_000, 300, 1))  # LOAD_LIMIT, to the group
        t = time.perf_counter()
        f.headend.broadcast(GROUP_ALL, env)
        f.medium.run(f.medium.now + 60_000)
        wall = time.perf_counter() - t
        acted = sum(1 for m in f.meters.values() if m.node.meter.relay.limit_w == 5_000)
        f.close()
    return {"meters": meters, "acted": acted, "wall_seconds": round(wall, 2),
            "per_meter_ms": round(wall / meters * 1000, 3)}


def fleet(meters: int) -> dict[str, Any]:
    """`ami demo --meters N` in a subprocess; its JSON report."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fleet.json"
        proc = subprocess.run(
            [sys.executable, "-m", "amitools.cli", "demo", "--meters", str(meters),
             "--json", str(out)],
            capture_output=True, text=True, timeout=1800,
        )
        if not out.exists():
            raise RuntimeError("fleet demo failed:\n" + proc.stdout[-2000:] + proc.stderr)
        report = json.loads(out.read_text())
        report["exit_status"] = proc.returncode
        return report


def targets(r: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """(status, text) of each target, from the measurements."""
    out = []
    mp = r["device"]["micropython"]
    out.append((mp["receive_us"] <= 300, f"MicroPython receive path of a secured downlink "
                f"({mp['frame_bytes']}-byte frame: CRC, parse, replay check, CCM, dispatch) "
                f"<= 0.3 ms: {mp['receive_us'] / 1000:.3f} ms"))
    out.append((mp["join_us"] <= 40_000, f"MicroPython device-side join computation <= 40 ms: "
                f"{mp['join_us'] / 1000:.1f} ms (first join, head-end key not yet cached: "
                f"{mp['join_first_us'] / 1000:.1f} ms)"))
    he = r["headend"]
    out.append((he["verify_frames_per_second"] >= 100_000, f"head end decrypt and verify, "
                f"{he['keys']:,} keys loaded, one core >= 100,000 frames/s: "
                f"{he['verify_frames_per_second']:,} frames/s ({he['frame_bytes']}-byte frames; "
                f"whole collection path with ACKs: {he['collect_frames_per_second']:,}/s)"))
    sig = r.get("signer_per_second")
    if sig:
        out.append((sig >= 10_000, f"command signer, one core, >= 10,000 signatures/s: "
                    f"{sig:,.0f}/s (the Certicom appliance: 200/s)"))
    b = r.get("broadcast")
    if b:
        cp = r["device"]["cpython_portable"].get("verify_repeated_us")
        out.append((b["acted"] == b["meters"], f"signed broadcast load limit to "
                    f"{b['meters']:,} simulated meters: {b['acted']:,} verified and acted, wall "
                    f"time {b['wall_seconds']} s ({b['per_meter_ms']} ms per meter, native "
                    f"crypto, radio and head end included); per-meter verify of the signer's "
                    f"key: see the crypto table, repeated key (MicroPython "
                    f"{r.get('mp_verify_repeated_ms', '?')} ms, CPython portable "
                    f"{cp if cp is None else round(cp / 1000, 3)} ms)"))
    f = r.get("fleet")
    if f:
        rate = f["rates"]["readings_per_minute"]
        ok = rate >= 1_000_000 and f["exit_status"] == 0
        out.append((ok, f"fleet of {f['meters']:,} meters ({f['workers']} workers): "
                    f"{rate:,} readings per wall-clock minute in the reporting phase (>= "
                    f"1,000,000), {f['readings']['lost']} lost, {f['attacks']['accepted']} attacks "
                    f"accepted; joins {f['rates']['joins_per_second']}/s; whole run "
                    f"{f['wall_seconds']} s"))
    return out


def render(r: dict[str, Any]) -> str:
    """Markdown of the measurements and targets."""
    dev = r["device"]
    lines = [
        f"Measured {r['date']} by `ami linkbench` (`make bench`); medians.",
        "",
        "| device side | MicroPython (256K heap) | CPython, portable crypto |",
        "|---|--:|--:|",
        f"| join computation (device's part) | {dev['micropython']['join_us'] / 1000:.1f} ms | "
        f"{dev['cpython_portable']['join_us'] / 1000:.1f} ms |",
        f"| receive secured downlink | {dev['micropython']['receive_us'] / 1000:.3f} ms | "
        f"{dev['cpython_portable']['receive_us'] / 1000:.3f} ms |",
        "",
        "Targets:",
        "",
    ]
    for ok, text in targets(r):
        lines.append(f"- **{'PASS' if ok else 'FAIL'}** {text}")
    c = r.get("commit")
    if c:
        lines += ["", f"Head-end registry commits on a file (WAL, {c['rows_per_commit']} "
                  f"readings each): synchronous=FULL {c['full']:,}/s, NORMAL {c['normal']:,}/s. "
                  "The head end runs FULL (an acknowledged reading survives a host power cut) "
                  "and commits once per 5 s flush and once per other uplink it acts on."]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Measure everything, print it, optionally write it into a markdown file."""
    check_output("--json", args.json, args.force, stdout=True)
    check_output("--write", args.write, force=True)  # a document to update in place
    micropython_binary()
    note("ami linkbench: device side (MicroPython, CPython)...")
    with tempfile.TemporaryDirectory() as tmp:
        result: dict[str, Any] = {"date": datetime.now(UTC).strftime("%Y-%m-%d")}
        result["device"] = device_side(Path(tmp))
    note(f"ami linkbench: head end, {args.keys} keys, {args.frames} frames...")
    result["headend"] = headend_throughput(args.keys, args.frames)
    result["commit"] = commit_cost()
    from amitools.office.signer import bench_signer

    note("ami linkbench: signer...")
    result["signer_per_second"] = round(bench_signer())
    if args.broadcast:
        note(f"ami linkbench: broadcast to {args.broadcast} meters...")
        result["broadcast"] = broadcast(args.broadcast)
    crypto_json = Path("build/bench.json")
    if crypto_json.exists():  # the per-meter verify figure from `ami bench`, same session
        cols = json.loads(crypto_json.read_text()).get("columns", {})
        mp = (cols.get("micropython") or {}).get("results", {}).get("ecdsa_verify_repeated")
        cp = (cols.get("cpython_portable") or {}).get("results", {}).get("ecdsa_verify_repeated")
        result["mp_verify_repeated_ms"] = round(mp / 1000, 2) if mp else None
        result["device"]["cpython_portable"]["verify_repeated_us"] = cp
    if args.fleet:
        note(f"ami linkbench: a fleet of {args.fleet} meters...")
        result["fleet"] = fleet(args.fleet)
    publish(render(result), result, args.write, args.json, BEGIN, END)
    return 0


def add_parser(sub: Any) -> None:
    """Register `ami linkbench`."""
    p = sub.add_parser("linkbench", help="secure-link benchmarks: device, head end, fleet")
    p.add_argument("--keys", type=positive_int, default=1_000_000,
                   help="sessions loaded in the head end")
    p.add_argument("--frames", type=positive_int, default=200_000)
    p.add_argument("--fleet", type=non_negative_int, default=10_000,
                   help="fleet size for the demo (0: skip)")
    p.add_argument("--broadcast", type=non_negative_int, default=10_000,
                   help="meters in the broadcast test (0: skip)")
    p.add_argument("--write", metavar="FILE", help="put the results between the markers")
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON (-: standard output)")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=run)
