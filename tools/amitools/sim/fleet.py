"""A fleet on the virtual radio: provisioning, head end, meters (in-process CPython firmware
and MicroPython unix-port processes), an attacker, and the report of `ami demo`."""

from __future__ import annotations

import gc
import multiprocessing
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ami import crypto
from ami import identity as ident
from ami.link import frame, messages
from ami.ports.entropy import DeterministicEntropy

from amitools.headend import HeadEnd
from amitools.headend.monitor import SecurityMonitor
from amitools.interrupts import worker_init
from amitools.office.provision import DeviceKit, Provisioned, device_eui, new_private, provision
from amitools.progress import note
from amitools.scenarios.campaign import CommandCampaign
from amitools.scenarios.lifecycle import LifecycleCampaign
from amitools.scenarios.stage import Stage
from amitools.sim.attacker import Attacker
from amitools.sim.capture import CaptureWriter, merge
from amitools.sim.cpnode import CPythonMeter
from amitools.sim.meternode import MeterNode
from amitools.sim.mpnode import MicroPythonMeter, NodeClient
from amitools.sim.radio import LinkParams, Medium

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR_MS = 3_600_000
JOIN_PHASE_MS = HOUR_MS
DRAIN_MS = 2 * HOUR_MS
# Counted outcomes that are not rejections of input.
EVENTS = ("joined", "join_request", "device_reboot", "rejoin_requested", "join_timeout",
          "counter_exhausted", "queue_overflow", "record_corrupt", "rekeyed", "root_rotated",
          "group_key_rotated", "group_rekeyed_on_revocation", "decommissioned",
          "decommission_timeout", "compromise", "zeroized")


class Tracked:
    """A node wrapper that checks the invariant replay protection exists for: no node accepts
    the same bytes twice, in any order. A replayed frame whose original the radio lost is a
    first delivery, not an attack success; accepting any frame a second time is one."""

    def __init__(self, node: MeterNode | HeadEnd) -> None:
        self.node = node
        self.address = node.address
        # 64-bit hashes of accepted frames: a collision would only report a false double.
        self.accepted: set[int] = set()
        self.doubles: set[int] = set()

    def start(self, now_ms: int) -> list[bytes]:
        return self.node.start(now_ms)

    def receive(self, data: bytes, now_ms: int) -> tuple[str | None, list[bytes]]:
        reason, out = self.node.receive(data, now_ms)
        if reason is None:
            digest = hash(data)
            if digest in self.accepted:
                self.doubles.add(digest)
            self.accepted.add(digest)
        return reason, out

    def tick(self, now_ms: int) -> list[bytes]:
        return self.node.tick(now_ms)

    def next_wakeup(self) -> int | None:
        return self.node.next_wakeup()


@dataclass
class DemoOptions:
    meters: int = 20
    micropython: int = 3
    seed: int = 1
    loss: float = 0.05
    hours: int = 24
    attacks: bool = True
    workers: int = 1
    capture: str | None = None  # pcap file of every frame on the air, if given
    progress: bool = False  # progress lines on standard error


class Fleet:
    """Everything of one run, wired together. Campaigns see only its `stage()`; each
    reports its own sections, and `report` assembles the demo report."""

    def __init__(
        self, opts: DemoOptions, workdir: Path, prov: Provisioned | None = None,
        kits: list[DeviceKit] | None = None, shard: int = 0,
        board: Callable[[DeviceKit, bytes, dict], NodeClient] | None = None,
    ) -> None:
        """board: builds the node of the last meter (the command campaign's victim) from its
        kit, entropy seed and configuration, e.g. a board in the loop (amitools.sim.hil)."""
        self.opts = opts
        self.workdir = workdir
        self.shard = shard
        self.prov = prov or provision(opts.meters, T0_MS // 1000, seed=opts.seed)
        if kits is not None:
            self.prov = replace(self.prov, devices=kits)
        self.registry = self.prov.registry(workdir / f"registry{shard}.db")
        self.headend = HeadEnd(
            self.prov.headend, self.registry, DeterministicEntropy(b"he%d" % opts.seed)
        )
        # Alert thresholds sized for a demo partition rather than a national fleet.
        self.headend.monitor = SecurityMonitor(
            thresholds={"signature_failure_storm": 5, "command_probe": 5}
        )
        link = LinkParams(
            loss=opts.loss, latency_ms=20, jitter_ms=40, duplicate=0.01, corrupt=0.01
        )
        self.medium = Medium(opts.seed, link, self.headend.address)
        self.he = Tracked(self.headend)
        self.medium.attach(self.he, start_ms=T0_MS)
        self.headend.serve(self.medium)
        self.meters: dict[bytes, Tracked] = {}
        self.in_process: list[Tracked] = []
        # Power-on spread: a gateway sends about 50 join exchanges a second at 100 kbit/s,
        # so a partition powers on over 30 ms per meter (at least 10 s), not all at once.
        config = {"join_spread_ms": max(10_000, 30 * len(self.prov.devices))}
        for i, kit in enumerate(self.prov.devices):
            seed = b"m%d/" % opts.seed + kit.eui
            if board is not None and i == len(self.prov.devices) - 1:
                tracked = Tracked(board(kit, seed, config))
            elif shard == 0 and i < opts.micropython:
                tracked = Tracked(MicroPythonMeter(
                    kit.eui, workdir / kit.eui.hex(), kit.image, kit.secret, seed, config
                ))
            else:
                tracked = Tracked(CPythonMeter(kit, seed, config))
                self.in_process.append(tracked)
            self.meters[kit.eui] = tracked
            self.medium.attach(tracked, start_ms=T0_MS)
        self.attacker = Attacker(self.medium, opts.seed)
        self.script: list[tuple[int, object]] = []  # (virtual time, action) in the day
        self.campaign: CommandCampaign | None = None
        self.lifecycle: LifecycleCampaign | None = None
        self._capture: CaptureWriter | None = None
        if opts.capture:
            self._capture = CaptureWriter(opts.capture, shard, self.headend.address)
            self.medium.add_tap(self._capture.tap)
        self.join_attacks: Counter[str] = Counter()
        # Meters that joined before a reboot reset their RAM counts (see joined_meters).
        self.joined_before_reboot: set[bytes] = set()

    # ---- phases ------------------------------------------------------------------------

    def run_joins(self) -> float:
        """Run until every meter has a session (or the join phase ends); wall seconds."""
        t = time.perf_counter()
        now = T0_MS
        while now < T0_MS + JOIN_PHASE_MS:
            now += 10_000
            self.medium.run(now)
            if self.joined() == len(self.meters):
                break
        self.join_end = now
        self.joined_in_join_phase = self.joined()
        self._progress(f"join phase: {self.joined_in_join_phase} of {len(self.meters)} meters "
                       f"joined in {(now - T0_MS) // 60_000} simulated minutes")
        return time.perf_counter() - t

    def _progress(self, text: str) -> None:
        if self.opts.progress:
            note(f"ami demo: {'' if self.opts.workers == 1 else f'partition {self.shard}: '}{text}")

    def joined(self) -> int:
        return sum(1 for d in self.headend.devices.values() if d.session is not None)

    def live_meters(self) -> list[Tracked]:
        """The meters with a session now at both ends (the head end's alone is not enough:
        the meter may not have heard its SESSION_START), in fleet order; every meter if none
        has one (a radio that delivers nothing). The scenarios pick their actors here."""
        live = [m for eui, m in self.meters.items()
                if self.headend.devices[eui].session is not None
                and _has_joined(m.node.info())]
        return live or list(self.meters.values())

    def joined_meters(self) -> int:
        """Meters that completed a join (their own count) at any time in the run."""
        return sum(1 for eui, m in self.meters.items()
                   if eui in self.joined_before_reboot or _has_joined(m.node.info()))

    def run_day(self) -> float:
        """The reporting phase: `hours` of readings, then a drain in which every reading of
        the period must still arrive; wall seconds."""
        t = time.perf_counter()
        end = T0_MS + self.opts.hours * HOUR_MS
        hours = [(T0_MS + h * HOUR_MS, lambda h=h: self._progress(
            f"simulated hour {h} of {self.opts.hours}, {self.joined()} meters in session"))
            for h in range(1, self.opts.hours)]
        for at, action in sorted(self.script + hours, key=lambda item: item[0]):
            if at < end:
                self.medium.run(at)
                action()
        self.medium.run(end)
        self.period_seqs = {eui: m.node.info()["next_seq"] for eui, m in self.meters.items()}
        self.medium.run(end + DRAIN_MS)
        self.headend.flush()
        return time.perf_counter() - t

    def reboot(self, address: bytes) -> None:
        """Power-cycle a meter: its storage survives, everything in RAM is lost."""
        if _has_joined(self.meters[address].node.info()):
            self.joined_before_reboot.add(address)
        self.meters[address].node.reboot()
        self.medium.restart(address)

    def press_button(self, address: bytes) -> None:
        """Press a meter's local restore button now."""
        self.meters[address].node.press_button(self.medium.now)
        self.medium.poke(address)

    def stage(self) -> Stage:
        """What the campaigns act on."""
        return Stage(
            headend=self.headend, attacker=self.attacker, meters=list(self.meters.values()),
            in_process=list(self.in_process), prov=self.prov, seed=self.opts.seed,
            now=lambda: self.medium.now, reboot=self.reboot, press_button=self.press_button,
            sniff=self.medium.add_sniffer, hours=self.opts.hours, live_meters=self.live_meters,
        )

    # ---- attacks -----------------------------------------------------------------------

    def schedule_commands(self) -> None:
        """Signed commands and the attacks on them, from an hour after the joins."""
        stage = self.stage()
        self.campaign = CommandCampaign(stage)
        self.lifecycle = LifecycleCampaign(stage, self.campaign)
        self.script += self.campaign.script(self.join_end + HOUR_MS)
        self.script += self.lifecycle.script(self.join_end + HOUR_MS)

    def schedule_attacks(self) -> None:
        """Radio attacks across the day and protocol attacks on joins."""
        a = self.attacker
        start = self.join_end + HOUR_MS
        spread = max(self.opts.hours - 2, 1) * HOUR_MS
        n = max(20, len(self.meters))
        a.replay(n, start_ms=start, spread_ms=spread)
        a.forge(n, start_ms=start, spread_ms=spread)
        a.bitflip(n, start_ms=start, spread_ms=spread)
        a.corrupt_crc(n, start_ms=start, spread_ms=spread)
        self._join_attacks(start)

    def _join_attacks(self, at: int) -> None:
        a = self.attacker
        he = self.headend.address
        rng = DeterministicEntropy(b"rogue%d" % self.opts.seed)
        # Rogue join from an EUI the head end never registered.
        stranger = device_eui(0xFFFFFF)
        gx = crypto.p256_public_key(new_private(rng))
        req = messages.encode_join_request(1, ident.compress_point(gx), rng.random_bytes(8))
        a.attempt("rogue_join", frame.encode(frame.JOIN_REQUEST, stranger, he, req), he, at)
        # Captured join frames, replayed: a JoinAccept to its meter, a request to the head end.
        for cap in a.captures(lambda c: frame.peek(c.frame)[0] == frame.JOIN_RESPONSE)[:5]:
            a.attempt("join_accept_replay", cap.frame, None, at + 1000)
        for cap in a.captures(lambda c: frame.peek(c.frame)[0] == frame.JOIN_REQUEST)[:5]:
            a.attempt("join_request_replay", cap.frame, he, at + 2000)
        # A forged certificate and a real certificate without its key, raced against a real
        # join: the victim rejoins, and the attacker answers the head end's response first.
        self._rejoin_race(at + 60_000)

    def _rejoin_race(self, at: int) -> None:
        victims = self.in_process[:2]  # the harness drops their sessions directly
        if not victims:
            return
        a = self.attacker
        rng = DeterministicEntropy(b"forger%d" % self.opts.seed)
        fake_ca = new_private(rng)
        he = self.headend.address
        kinds = ["forged_certificate", "stolen_certificate"]
        plans = {v.address: kind for v, kind in zip(victims, kinds, strict=False)}

        def on_sniff(t: int, src: bytes, data: bytes) -> None:
            if not plans:
                return
            ftype, _flags, _src, victim = frame.peek(data)
            if ftype != frame.JOIN_RESPONSE or victim not in plans:
                return
            kind = plans.pop(victim)
            kit = next(k for k in self.prov.devices if k.eui == victim)
            if kind == "forged_certificate":
                key = new_private(rng)
                cert = ident.make_certificate(
                    fake_ca, 1, ident.ROLE_METER, victim, 0, 0xFFFFFFFF,
                    crypto.p256_public_key(key),
                ).to_bytes()
            else:
                cert = kit.cert
            body = messages.encode_join_confirm(cert, rng.random_bytes(64), rng.random_bytes(16))
            a.attempt(kind, frame.encode(frame.JOIN_CONFIRM, victim, he, body), he, t + 1)

        self.medium.add_sniffer(on_sniff)
        for v in victims:
            v.node.drop_session("rejoin_requested")

    # ---- report ------------------------------------------------------------------------

    def report(self, join_wall: float, day_wall: float, total_wall: float) -> dict:
        """The demo report (see docs: readings are those of the reporting period)."""
        pending = 0
        meter_stats: Counter[str] = Counter()
        device_events: Counter[str] = Counter()
        for m in self.meters.values():
            info = m.node.info()
            pending += info["queue"]
            meter_stats.update(info["stats"])
            device_events.update(info["events"])
        retired = self.lifecycle.retired() if self.lifecycle else set()
        sent = stored = stranded = 0
        for eui, n in self.period_seqs.items():
            got = self.registry.count_below(eui, n)
            stored += got
            if eui in retired:  # zeroized on purpose: its unsent readings cannot leave
                stranded += n - got
                sent += got
            else:
                sent += n
        attacks = self._score_attacks()
        rejections = Counter(self.headend.stats)
        rejections.update(meter_stats)
        events = {k: rejections.pop(k) for k in EVENTS if k in rejections}
        extra = {}
        if self.campaign and self.lifecycle:
            # Each campaign reports its own sections and scores its own attacks (which
            # replace the attacker's raw count of the same kind).
            extra = self.campaign.report()
            for campaign in (self.campaign, self.lifecycle):
                attacks["by_kind"].update(campaign.attack_scores())
            attacks["attempted"] = sum(e["attempted"] for e in attacks["by_kind"].values())
            attacks["accepted"] = sum(e["accepted"] for e in attacks["by_kind"].values())
            extra |= {
                "events": dict(sorted(device_events.items())),
                "security_monitor": self.headend.monitor.summary(),
                "lifecycle": self.lifecycle.report(),
            }
        return extra | {
            "meters": len(self.meters),
            "micropython_meters": len(self.meters) - len(self.in_process),
            "joined": self.joined_meters(),
            "joined_in_join_phase": self.joined_in_join_phase,
            "join_failures": meter_stats.get("join_timeout", 0),
            "readings": {
                "sent": sent,
                "delivered": stored,
                "lost": sent - stored,
                "duplicated": self.headend.readings_stored - self.registry.reading_count(),
                "duplicates_dropped": self.headend.duplicates,
                "queued_after_period": pending,
                "stranded_on_zeroized_meters": stranded,
            },
            "attacks": attacks,
            "rejections": dict(sorted(rejections.items())),
            "counted": dict(sorted(events.items())),
            "radio": self.medium.totals().as_dict(),
            "rates": {
                "joins_per_second":
                    round(self.joined_in_join_phase / join_wall, 1) if join_wall else None,
                "readings_per_minute": round(stored / day_wall * 60) if day_wall else None,
            },
            "wall_seconds": round(total_wall, 2),
        }

    def _score_attacks(self) -> dict:
        """The attacker's scores, with one correction: a replay counts as accepted only if a
        node accepted the same bytes twice. Any such double acceptance counts, whether the
        second copy came from the attacker or from the radio's own duplication."""
        by_kind = self.attacker.report()
        doubles = sum(len(n.doubles) for n in [self.he, *self.meters.values()])
        if "replay" in by_kind:
            by_kind["replay"]["accepted"] = doubles
        # Captured joins replayed: the same rule (an original the radio lost is delivered
        # by its replay for the first time, as at loss 1.0, where no original arrives).
        nodes = {self.he.address: self.he, **self.meters}
        for kind in ("join_request_replay", "join_accept_replay"):
            if kind in by_kind:
                by_kind[kind]["accepted"] = sum(
                    1 for k, handle in self.attacker.injections if k == kind
                    for rx in handle.results
                    if rx.reason is None and hash(handle.frame) in nodes[rx.address].doubles
                )
        return {
            "attempted": sum(e["attempted"] for e in by_kind.values()),
            "accepted": sum(e["accepted"] for e in by_kind.values()),
            "frames_accepted_twice": doubles,
            "by_kind": by_kind,
        }

    def close(self) -> None:
        if self._capture is not None:
            self._capture.close()
        for m in self.meters.values():
            m.node.close()
        self.registry.db.close()


def eavesdrop_secrets(fleet: Fleet, sample: int = 50) -> list[bytes]:
    """Keys and reading encodings of a sample of meters: none may appear on the air."""
    secrets: list[bytes] = []
    for kit in fleet.prov.devices[:sample]:
        secrets.append(kit.root_key)
        dev = fleet.headend.devices[kit.eui]
        if dev.session is not None:
            secrets += [dev.session.k_up, dev.session.k_down]
        for seq, t, wh in fleet.registry.readings(kit.eui):
            secrets.append(struct.pack(">IIQ", seq, t, wh))
    return secrets


def run_fleet(fleet: Fleet) -> dict:
    """Joins, attacks, the reporting period and the report of one fleet (or shard)."""
    t = time.perf_counter()
    try:
        join_wall = fleet.run_joins()
        if fleet.opts.attacks:
            fleet.schedule_attacks()
            fleet.schedule_commands()
        # Millions of long-lived objects (sessions, dedup sets, the event heap): freeze them
        # out of the cyclic collector and collect the young generation less often (about
        # 10 % of the reporting phase's time otherwise).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        day_wall = fleet.run_day()
        if fleet.opts.attacks:
            fleet.attacker.eavesdrop(eavesdrop_secrets(fleet))
        report = fleet.report(join_wall, day_wall, time.perf_counter() - t)
        report["_walls"] = {"join": join_wall, "day": day_wall}
        return report
    finally:
        fleet.close()


def _shard_worker(args: tuple) -> dict:
    opts, workdir, prov, kits, shard = args
    return run_fleet(Fleet(opts, workdir, prov, kits, shard))


def _merge(reports: list[dict]) -> dict:
    """Sum the shards' counts; rates over the slowest shard (they ran in parallel)."""

    def add(a, b):
        if isinstance(a, dict) or isinstance(b, dict):
            a, b = a or {}, b or {}
            return {k: add(a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys())}
        if a is None or b is None:
            return b if a is None else a
        return a + b

    merged = reports[0]
    for r in reports[1:]:
        merged = add(merged, r)
    join = max(r["_walls"]["join"] for r in reports)
    day = max(r["_walls"]["day"] for r in reports)
    merged["rates"] = {
        "joins_per_second": round(merged["joined_in_join_phase"] / join, 1) if join else None,
        "readings_per_minute": round(merged["readings"]["delivered"] / day * 60) if day else None,
    }
    return merged


def run_demo(opts: DemoOptions, workdir: Path | None = None) -> dict:
    """Run the whole demo and return its report. With workers > 1 the meters are split into
    partitions, each with its own radio and head-end worker (one CA, one head-end identity),
    run in parallel processes, as a collection engine scales out."""
    t = time.perf_counter()
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="ami-demo-")
        workdir = Path(tmp.name)
    try:
        prov = provision(opts.meters, T0_MS // 1000, seed=opts.seed)
        workers = max(1, min(opts.workers, opts.meters))
        if workers == 1:
            reports = [run_fleet(Fleet(opts, workdir, prov))]
        else:
            # Each partition records its own radio; the files are merged in time order.
            parts = [str(workdir / f"capture{i}.pcap") for i in range(workers)]
            jobs = [
                (replace(opts, capture=parts[i] if opts.capture else None), workdir, prov,
                 prov.devices[i::workers], i)
                for i in range(workers)
            ]
            with multiprocessing.get_context("fork").Pool(workers, worker_init) as pool:
                reports = pool.map(_shard_worker, jobs)
            if opts.capture:
                merge(parts, opts.capture)
        report = _merge(reports)
        report.pop("_walls")
        report["workers"] = workers
        report["wall_seconds"] = round(time.perf_counter() - t, 2)
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()


def _has_joined(info: dict) -> bool:
    """A meter joined since its last boot, or is in a session it kept across a power cut
    (its RAM counts start again at a boot, the session in flash does not)."""
    return bool(info["stats"].get("joined")) or info["state"] == "active"
