"""The virtual radio (amitools.sim.radio) with simple fake nodes: timing, impairments, hooks."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from amitools.sim import capture
from amitools.sim.radio import (
    MTU,
    PERFECT,
    Injection,
    LinkParams,
    Medium,
    Node,
    Verdict,
)

GW = bytes.fromhex("00000000000000ff")
GROUP = bytes.fromhex("6700000000000001")


def eui(i: int) -> bytes:
    return (0x0200000000000000 + i).to_bytes(8, "big")


def make_frame(src: bytes, dst: bytes, seq: int = 0, *, flags: int = 0, size: int = 32) -> bytes:
    """A frame with the protocol's header layout (contents do not matter to the medium)."""
    head = bytes((0x14, flags)) + src + dst + seq.to_bytes(4, "big")
    return head + bytes(max(0, size - len(head)))


def seq_of(frame: bytes) -> int:
    return int.from_bytes(frame[18:22], "big")


class FakeNode:
    """Records what it receives; replies and timers are scripted per test."""

    def __init__(
        self,
        address: bytes,
        *,
        at_start: list[bytes] | None = None,
        reply: Callable[[bytes, int], list[bytes]] | None = None,
        accept: Callable[[bytes], str | None] | None = None,
        timers: list[tuple[int, bytes | None]] | None = None,
    ) -> None:
        self.address = address
        self.at_start = at_start or []
        self.reply = reply
        self.accept = accept
        self.timers = sorted(timers or [], key=lambda t: t[0])
        self.received: list[tuple[int, bytes]] = []
        self.ticks: list[int] = []
        self.started: int | None = None

    def start(self, now_ms: int) -> list[bytes]:
        self.started = now_ms
        return list(self.at_start)

    def receive(self, frame: bytes, now_ms: int) -> tuple[str | None, list[bytes]]:
        self.received.append((now_ms, frame))
        reason = self.accept(frame) if self.accept else None
        replies = self.reply(frame, now_ms) if self.reply and reason is None else []
        return reason, replies

    def tick(self, now_ms: int) -> list[bytes]:
        self.ticks.append(now_ms)
        out = []
        while self.timers and self.timers[0][0] <= now_ms:
            _, frame = self.timers.pop(0)
            if frame is not None:
                out.append(frame)
        return out

    def next_wakeup(self) -> int | None:
        return self.timers[0][0] if self.timers else None


def sender(address: bytes, count: int, period: int, *, first: int = 0, size: int = 32) -> FakeNode:
    """A meter sending ``count`` frames to the gateway, one every ``period`` ms."""
    timers = [(first + i * period, make_frame(address, GW, i, size=size)) for i in range(count)]
    return FakeNode(address, timers=timers)


def echo_gateway() -> FakeNode:
    """A head end acknowledging every frame back to its sender (DOWN flag set)."""
    return FakeNode(GW, reply=lambda f, now: [make_frame(GW, f[2:10], seq_of(f), flags=4)])


def scenario(seed: int, link: LinkParams, meters: int = 5, frames: int = 40) -> Medium:
    medium = Medium(seed, link, GW, trace=True)
    medium.attach(echo_gateway())
    for i in range(meters):
        medium.attach(sender(eui(i), frames, 500, first=37 * i))
    medium.run(60_000)
    return medium


NOISY = LinkParams(loss=0.2, latency_ms=20, jitter_ms=30, duplicate=0.1, corrupt=0.1)


def test_fake_nodes_satisfy_the_protocol() -> None:
    assert isinstance(echo_gateway(), Node)


def test_same_seed_same_trace_different_seed_different() -> None:
    a, b, c = scenario(7, NOISY), scenario(7, NOISY), scenario(8, NOISY)
    assert a.trace and a.trace == b.trace
    assert a.totals().as_dict() == b.totals().as_dict()
    assert a.trace != c.trace


def test_stats_invariants_and_counts() -> None:
    medium = scenario(3, NOISY)
    total = medium.totals()
    assert total.transmitted == sum(medium.stats(a).transmitted for a in (GW, *map(eui, range(5))))
    assert total.accepted + sum(total.rejected.values()) == total.delivered + total.injected
    # Every meter frame went up once; the gateway answered every delivered uplink copy.
    gw = medium.stats(GW)
    assert gw.transmitted == gw.accepted == gw.delivered
    assert sum(medium.stats(eui(i)).transmitted for i in range(5)) == 200


def test_loss_duplicate_corrupt_rates() -> None:
    n = 20_000
    link = LinkParams(loss=0.1, latency_ms=1, jitter_ms=0, duplicate=0.05, corrupt=0.2)
    medium = Medium(11, link, GW)
    gateway = FakeNode(GW)
    template = make_frame(eui(1), GW, 0x5A5A5A5A, size=60)
    medium.attach(gateway)
    medium.attach(FakeNode(eui(1), timers=[(i * 10, template) for i in range(n)]))
    medium.run(n * 10 + 100)
    stats = medium.stats(GW)
    assert medium.stats(eui(1)).transmitted == n
    assert stats.lost == pytest.approx(0.1 * n, rel=0.1)
    arrived = n - stats.lost
    assert stats.duplicated == pytest.approx(0.05 * arrived, rel=0.15)
    assert stats.delivered == len(gateway.received) == arrived + stats.duplicated
    assert stats.corrupted == pytest.approx(0.2 * stats.delivered, rel=0.1)
    # Corrupted copies differ from the frame sent in 1 to 3 distinct bits; the others are intact.
    flips = [
        sum(bin(x ^ y).count("1") for x, y in zip(frame, template, strict=True))
        for _, frame in gateway.received
    ]
    assert sum(1 for d in flips if d) == stats.corrupted
    assert {d for d in flips if d} == {1, 2, 3}


def test_ordering_latency_and_airtime() -> None:
    medium = Medium(1, LinkParams(latency_ms=50), GW)
    gateway = FakeNode(GW)
    frames = [make_frame(eui(1), GW, i, size=30) for i in range(3)]
    medium.attach(gateway)
    medium.attach(FakeNode(eui(1), at_start=frames), start_ms=1000)
    medium.run(2000)
    # 30 bytes at 100 kbit/s: 2.4 ms on the air, rounded up to 3; frames queue behind each other.
    assert gateway.received == [(1053, frames[0]), (1056, frames[1]), (1059, frames[2])]
    assert medium.node(eui(1)).started == 1000  # type: ignore[attr-defined]


def test_bitrate_changes_airtime() -> None:
    medium = Medium(1, PERFECT, GW, bitrate=10_000)
    gateway = FakeNode(GW)
    medium.attach(gateway)
    medium.attach(FakeNode(eui(1), at_start=[make_frame(eui(1), GW, size=255)]))
    medium.run(1000)
    assert gateway.received[0][0] == 204  # 255 * 8 / 10 kbit/s


def test_jitter_reorders() -> None:
    medium = Medium(5, LinkParams(latency_ms=10, jitter_ms=200), GW)
    gateway = FakeNode(GW)
    medium.attach(gateway)
    medium.attach(sender(eui(1), 200, 20))
    medium.run(10_000)
    order = [seq_of(f) for _, f in gateway.received]
    assert sorted(order) == list(range(200))
    assert order != sorted(order)
    times = [t for t, _ in gateway.received]
    assert times == sorted(times)
    # Each frame left at i*20 + airtime and arrived within latency + jitter.
    for t, f in gateway.received:
        sent = seq_of(f) * 20 + 3
        assert sent + 10 <= t <= sent + 210


def test_without_jitter_order_is_kept() -> None:
    medium = Medium(5, LinkParams(latency_ms=10), GW)
    gateway = FakeNode(GW)
    medium.attach(gateway)
    medium.attach(sender(eui(1), 100, 1))  # faster than airtime: the transmitter queues them
    medium.run(10_000)
    assert [seq_of(f) for _, f in gateway.received] == list(range(100))


def test_unicast_and_group_delivery() -> None:
    medium = Medium(1, PERFECT, GW)
    meters = [FakeNode(eui(i)) for i in range(5)]
    down = make_frame(GW, eui(3), 1, flags=4)
    group = make_frame(GW, GROUP, 2, flags=4 | 2)
    medium.attach(FakeNode(GW, at_start=[down, group]))
    for meter in meters:
        medium.attach(meter)
    for i in (0, 2, 4):
        medium.add_to_group(GROUP, eui(i))
    medium.add_to_group(GROUP, eui(9))  # not attached: ignored
    medium.run(100)
    got = {i: [f for _, f in m.received] for i, m in enumerate(meters)}
    assert got == {0: [group], 1: [], 2: [group], 3: [down], 4: [group]}
    assert medium.group(GROUP) == [eui(0), eui(2), eui(4), eui(9)]


def test_group_members_have_independent_links() -> None:
    medium = Medium(1, PERFECT, GW)
    meters = [FakeNode(eui(i)) for i in range(3)]
    medium.attach(FakeNode(GW, at_start=[make_frame(GW, GROUP, flags=6)]))
    for meter in meters:
        medium.attach(meter)
        medium.add_to_group(GROUP, meter.address)
    medium.set_link(eui(1), LinkParams(loss=1.0))
    medium.set_link(eui(2), LinkParams(latency_ms=300))
    medium.run(1000)
    assert [len(m.received) for m in meters] == [1, 0, 1]
    assert meters[2].received[0][0] - meters[0].received[0][0] == 300
    assert medium.stats(eui(1)).lost == 1


def test_uplink_uses_sender_link() -> None:
    medium = Medium(1, PERFECT, GW)
    gateway = FakeNode(GW)
    medium.attach(gateway)
    medium.set_link(eui(1), LinkParams(loss=1.0))  # set before attach: applies on attach
    medium.attach(FakeNode(eui(1), at_start=[make_frame(eui(1), GW)]))
    medium.attach(FakeNode(eui(2), at_start=[make_frame(eui(2), GW)]))
    medium.run(100)
    assert [f[2:10] for _, f in gateway.received] == [eui(2)]
    assert medium.stats(GW).lost == 1
    assert medium.link(eui(1)).loss == 1.0 and medium.link(eui(2)) == PERFECT


def test_unroutable() -> None:
    # Downlinks to nobody, to an empty group, too short to carry a destination; an uplink
    # with no gateway attached.
    medium = Medium(1, PERFECT, GW)
    frames = [make_frame(GW, eui(7)), make_frame(GW, GROUP, flags=2), b"\x14\x04short"]
    medium.attach(FakeNode(GW, at_start=frames))
    medium.run(100)
    assert medium.stats(GW).unroutable == 3
    lonely = Medium(1, PERFECT, GW)
    lonely.attach(FakeNode(eui(1), at_start=[make_frame(eui(1), GW)]))
    lonely.run(100)
    assert lonely.totals().unroutable == 1


def test_mtu_drop() -> None:
    medium = Medium(1, PERFECT, GW)
    gateway = FakeNode(GW)
    ok, big = make_frame(eui(1), GW, 1, size=MTU), make_frame(eui(1), GW, 2, size=MTU + 1)
    medium.attach(gateway)
    medium.attach(FakeNode(eui(1), at_start=[big, ok]))
    medium.run(100)
    assert [f for _, f in gateway.received] == [ok]
    stats = medium.stats(eui(1))
    assert (stats.mtu_dropped, stats.transmitted) == (1, 1)
    assert medium.totals().mtu_dropped == 1


def test_tick_at_next_wakeup_only() -> None:
    medium = Medium(1, PERFECT, GW)
    node = FakeNode(eui(1), timers=[(100, None), (250, None), (250, None), (1000, None)])
    idle = FakeNode(eui(2))
    medium.attach(FakeNode(GW))
    medium.attach(node)
    medium.attach(idle)
    medium.run(5000)
    assert node.ticks == [100, 250, 1000]
    assert idle.ticks == []
    assert medium.stats(eui(1)).ticks == 3
    assert medium.pending == 0


def test_wakeup_rescheduled_after_receive() -> None:
    """A node that moves its timer when it receives: the old wakeup never fires."""

    class Rearming(FakeNode):
        def receive(self, frame: bytes, now_ms: int) -> tuple[str | None, list[bytes]]:
            self.timers = [(now_ms + 500, None)]
            return super().receive(frame, now_ms)

    node = Rearming(eui(1), timers=[(1000, None)])
    medium = Medium(1, LinkParams(latency_ms=0), GW)
    medium.attach(FakeNode(GW, at_start=[make_frame(GW, eui(1), flags=4)]))
    medium.attach(node)
    medium.run(5000)
    assert node.ticks == [503]  # received at 3 (airtime), timer moved to 503


class Stuck:
    """A broken node whose timer is always due: the medium must not spin."""

    def __init__(self) -> None:
        self.address = eui(1)
        self.ticks = 0

    def start(self, now_ms: int) -> list[bytes]:
        return []

    def receive(self, frame: bytes, now_ms: int) -> tuple[str | None, list[bytes]]:
        return None, []

    def tick(self, now_ms: int) -> list[bytes]:
        self.ticks += 1
        return []

    def next_wakeup(self) -> int | None:
        return 0


def test_no_busy_loop_on_a_stuck_timer() -> None:
    medium = Medium(1, PERFECT, GW)
    stuck = Stuck()
    medium.attach(stuck)
    medium.run(99)
    assert stuck.ticks == 100  # once per ms at most


def test_interceptor_drop_delay_modify() -> None:
    medium = Medium(1, LinkParams(latency_ms=10), GW)
    gateway = FakeNode(GW)
    medium.attach(gateway)
    medium.attach(sender(eui(1), 4, 1000))
    evil = make_frame(eui(1), GW, 99)

    def interceptor(now: int, src: bytes, frame: bytes) -> Verdict | None:
        return {0: Verdict.jam(), 1: Verdict.delay(5000), 2: Verdict.replace(evil)}.get(
            seq_of(frame)
        )

    medium.set_interceptor(interceptor)
    medium.run(20_000)
    got = [(t, seq_of(f)) for t, f in gateway.received]
    assert got == [(2013, 99), (3013, 3), (6013, 1)]
    stats = medium.stats(eui(1))
    assert (stats.transmitted, stats.jammed, stats.delayed, stats.modified) == (4, 1, 1, 1)


def test_sniffers_see_every_transmission_before_delivery() -> None:
    medium = Medium(2, LinkParams(loss=0.2, latency_ms=20, jitter_ms=30, duplicate=0.1), GW)
    log: list[tuple[int, bytes, bytes]] = []
    medium.add_sniffer(lambda t, src, f: log.append((t, src, f)))
    gateway = echo_gateway()
    medium.attach(gateway)
    medium.attach(sender(eui(1), 50, 100))
    medium.set_interceptor(lambda t, s, f: Verdict.jam() if seq_of(f) % 5 == 0 else None)
    medium.run(10_000)
    total = medium.totals()
    assert len(log) == total.transmitted
    assert sum(1 for _, src, _ in log if src == eui(1)) == 50
    first_seen = {}
    for t, src, f in log:
        first_seen.setdefault((src, seq_of(f)), t)
    # Every delivered uplink was sniffed (with its original bytes, at the end of its airtime).
    for t, f in gateway.received:
        assert first_seen[(eui(1), seq_of(f))] <= t - 20


class SecretNode(FakeNode):
    """Accepts frames carrying its marker, rejects the others as 'auth'; answers accepted ones."""

    def __init__(self, address: bytes, marker: bytes) -> None:
        super().__init__(
            address,
            accept=lambda f: None if marker in f else "auth",
            reply=lambda f, now: [make_frame(address, f[2:10], flags=4)],
        )


def test_inject_scoring() -> None:
    medium = Medium(1, LinkParams(loss=1.0), GW)  # injection ignores link impairments
    target = SecretNode(GW, b"OPEN")
    meter = FakeNode(eui(1))
    medium.attach(target)
    medium.attach(meter)
    medium.set_link(eui(1), PERFECT)
    done: list[Injection] = []
    good = medium.inject(make_frame(eui(1), GW) + b"OPEN", 100, GW, done.append)
    bad = medium.inject(make_frame(eui(1), GW), 200, None)
    down = medium.inject(make_frame(GW, eui(1), flags=4), 300, None)
    nowhere = medium.inject(make_frame(GW, eui(5), flags=4), 300, None)
    missing = medium.inject(b"x", 300, eui(5))
    short = medium.inject(b"x", 300, None)
    huge = medium.inject(bytes(MTU + 1), 300, GW)
    assert good.status == "pending" and good.result is None
    medium.run(1000)
    assert done == [good]
    assert good.status == "delivered" and good.accepted
    reason, frames = good.result  # type: ignore[misc]
    assert reason is None and frames and frames[0][10:18] == eui(1)
    assert bad.result == ("auth", []) and not bad.accepted
    assert down.accepted and down.results[0].address == eui(1)
    assert [h.status for h in (nowhere, missing, short, huge)] == ["unroutable"] * 3 + ["mtu"]
    # The target's answer to the accepted injection was transmitted normally.
    assert frames[0] in [f for _, f in meter.received]
    stats = medium.stats(GW)
    assert (stats.injected, stats.accepted, stats.rejected["auth"]) == (2, 1, 1)
    with pytest.raises(ValueError):
        medium.inject(b"late", 10, GW)


def test_attach_errors_and_run_backwards() -> None:
    medium = Medium(1, PERFECT, GW)
    medium.attach(FakeNode(GW))
    with pytest.raises(ValueError):
        medium.attach(FakeNode(GW))
    with pytest.raises(ValueError):
        medium.attach(FakeNode(b"short"))
    medium.run(100)
    with pytest.raises(ValueError):
        medium.run(50)
    with pytest.raises(ValueError):
        medium.attach(FakeNode(eui(1)), start_ms=10)
    with pytest.raises(ValueError):
        LinkParams(loss=1.5)


def test_performance_smoke() -> None:
    """10,000 fake meters x 10 frames, each acknowledged: the figure is printed, not asserted."""
    medium = Medium(1, LinkParams(loss=0.01, latency_ms=20, jitter_ms=10, duplicate=0.001), GW)
    medium.attach(FakeNode(GW, reply=lambda f, now: [make_frame(GW, f[2:10], flags=4)]))
    for i in range(10_000):
        medium.attach(sender(eui(i), 10, 60_000, first=(i * 7) % 60_000))
    began = time.perf_counter()
    events = medium.run(11 * 60_000)
    elapsed = time.perf_counter() - began
    total = medium.totals()
    assert total.transmitted == 100_000 + medium.stats(GW).transmitted
    print(
        f"\nradio: 10,000 nodes x 10 frames: {events} events, {total.transmitted} transmissions "
        f"in {elapsed:.2f} s ({elapsed / events * 1e6:.2f} us/event)"
    )


def test_taps_see_transmissions_verdicts_and_injections(tmp_path) -> None:
    a, b = eui(1), eui(2)
    frames = [make_frame(a, GW, i) for i in range(3)]
    medium = Medium(1, PERFECT, GW)
    medium.attach(FakeNode(GW))
    medium.attach(FakeNode(a, at_start=frames))
    medium.attach(FakeNode(b))
    swap = make_frame(a, GW, 99)
    verdicts = {0: Verdict.jam(), 1: Verdict.replace(swap)}
    medium.set_interceptor(lambda t, src, f: verdicts.get(seq_of(f)))
    writer = capture.CaptureWriter(str(tmp_path / "t.pcap"), 3, GW)
    medium.add_tap(writer.tap)
    medium.inject(make_frame(GW, b, 7), 50, to=b)
    medium.inject(make_frame(GW, eui(9), 8), 60)  # nobody there: on the air all the same
    medium.run(1000)
    writer.close()
    got = [(p.flags, p.node, seq_of(p.frame)) for p in capture.read(str(tmp_path / "t.pcap"))]
    assert got == [
        (capture.F_JAMMED, a, 0),
        (0, a, 1),
        (capture.F_MODIFIED, a, 99),
        (0, a, 2),
        (capture.F_INJECTED, b, 7),
        (capture.F_INJECTED, capture.NO_NODE, 8),
    ]
