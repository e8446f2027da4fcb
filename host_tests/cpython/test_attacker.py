"""The radio attacker (amitools.sim.attacker) against fake secured nodes.

The fake nodes speak the frame layout of docs/protocol.md with a stand-in for the crypto: the
payload is plaintext and the tag is a truncated HMAC of header and payload. They check, in the
protocol's order, the FCS (``crc``), the header (``malformed``), the destination
(``not_for_me``), the counter (``replay``) and the tag (``auth``).
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from ami.crypto import crc16
from ami.link.frame import DOWN as FLAG_DOWN
from ami.link.frame import SECURED as FLAG_SECURED
from amitools.sim.attacker import Attacker, fcs, fcs_ok, with_fcs
from amitools.sim.radio import PERFECT, LinkParams, Medium

GW = bytes.fromhex("00000000000000ff")
PERIOD = 1_000


def eui(i: int) -> bytes:
    return (0x0200000000000000 + i).to_bytes(8, "big")


def key_of(address: bytes) -> bytes:
    return hashlib.sha256(b"fake key " + address).digest()


def seal(src: bytes, dst: bytes, fcnt: int, payload: bytes, *, down: bool) -> bytes:
    flags = FLAG_SECURED | (FLAG_DOWN if down else 0)
    header = bytes((0x14, flags)) + src + dst + bytes((0, 7)) + fcnt.to_bytes(4, "big")
    device = dst if down else src
    tag = hmac.new(key_of(device), header + payload, "sha256").digest()[:8]
    return with_fcs(header + payload + tag)


def check(frame: bytes, me: bytes, seen: dict[bytes, set[int]], *, down: bool) -> str | None:
    """The fake receiver's checks; records the counter when everything passes.

    The replay check is a 64-frame window: a counter is accepted once, unless it is 64 or more
    below the highest accepted.
    """
    if not fcs_ok(frame):
        return "crc"
    if len(frame) < 34 or frame[0] != 0x14 or frame[1] != (FLAG_SECURED | (4 if down else 0)):
        return "malformed"
    if frame[10:18] != me:
        return "not_for_me"
    src, fcnt = frame[2:10], int.from_bytes(frame[20:24], "big")
    accepted = seen.get(src, set())
    if fcnt in accepted or (accepted and fcnt <= max(accepted) - 64):
        return "replay"
    device = me if down else src
    header, payload, tag = frame[:24], frame[24:-10], frame[-10:-2]
    if not hmac.compare_digest(
        tag, hmac.new(key_of(device), header + payload, "sha256").digest()[:8]
    ):
        return "auth"
    seen.setdefault(src, set()).add(fcnt)
    return None


class FakeMeter:
    """Sends a reading (plaintext wh) every PERIOD ms; accepts authentic fresh downlinks."""

    def __init__(self, address: bytes, phase: int) -> None:
        self.address = address
        self.due = phase
        self.fcnt = 0
        self.wh = 1_000_003 * (1 + int.from_bytes(address[-2:], "big"))
        self.seen: dict[bytes, set[int]] = {}
        self.accepted: list[bytes] = []

    def reading(self, fcnt: int) -> bytes:
        return (self.wh + fcnt).to_bytes(8, "big")

    def start(self, now_ms: int) -> list[bytes]:
        return []

    def receive(self, frame: bytes, now_ms: int) -> tuple[str | None, list[bytes]]:
        reason = check(frame, self.address, self.seen, down=True)
        if reason is None:
            self.accepted.append(frame)
        return reason, []

    def tick(self, now_ms: int) -> list[bytes]:
        self.due += PERIOD
        self.fcnt += 1
        return [seal(self.address, GW, self.fcnt, b"\x01" + self.reading(self.fcnt), down=False)]

    def next_wakeup(self) -> int | None:
        return self.due


class FakeHeadEnd:
    """Accepts authentic fresh uplinks and acknowledges each with a secured downlink."""

    address = GW

    def __init__(self) -> None:
        self.seen: dict[bytes, set[int]] = {}
        self.down: dict[bytes, int] = {}
        self.accepted: list[bytes] = []

    def start(self, now_ms: int) -> list[bytes]:
        return []

    def receive(self, frame: bytes, now_ms: int) -> tuple[str | None, list[bytes]]:
        reason = check(frame, GW, self.seen, down=False)
        if reason is not None:
            return reason, []
        self.accepted.append(frame)
        meter = frame[2:10]
        self.down[meter] = self.down.get(meter, 0) + 1
        return None, [seal(GW, meter, self.down[meter], b"\x02" + frame[20:24], down=True)]

    def tick(self, now_ms: int) -> list[bytes]:
        return []

    def next_wakeup(self) -> int | None:
        return None


def fleet(
    seed: int = 1, meters: int = 4, link: LinkParams = PERFECT, **kwargs: int
) -> tuple[Medium, Attacker, list[FakeMeter], FakeHeadEnd]:
    medium = Medium(seed, link, GW)
    head = FakeHeadEnd()
    medium.attach(head)
    devices = [FakeMeter(eui(i), 100 + 211 * i) for i in range(meters)]
    for device in devices:
        medium.attach(device)
    return medium, Attacker(medium, seed, **kwargs), devices, head


def test_crc16_is_kermit() -> None:
    assert crc16(b"123456789") == 0x2189  # the catalogue check value of CRC-16/KERMIT
    body = b"\x14\x05" + bytes(30)
    assert fcs(body) == crc16(body).to_bytes(2, "little") and fcs_ok(with_fcs(body))
    tampered = bytearray(with_fcs(body))
    tampered[-1] ^= 0x01
    assert not fcs_ok(bytes(tampered))


def test_fake_fleet_runs_clean() -> None:
    medium, _, devices, head = fleet()
    medium.run(10_000)
    assert len(head.accepted) == 4 * 10
    assert all(len(d.accepted) == 10 for d in devices)
    assert not medium.totals().rejected


def test_recording_is_bounded() -> None:
    medium, attacker, _, _ = fleet(meters=6, keep_per_source=3, sample_size=10)
    medium.run(20_000)
    assert attacker.sniffed == medium.totals().transmitted > 200
    assert set(attacker.recent) == {GW, *map(eui, range(6))}
    assert all(len(q) == 3 for q in attacker.recent.values())
    assert len(attacker.sample) == 10
    held = attacker.captures()
    assert 21 <= len(held) <= 31 and held == sorted(held, key=lambda c: c.time_ms)
    # The newest counter of every link is known (for forging), bounded by the number of links.
    assert len(attacker.links) == 12
    assert attacker.links[(eui(0), GW)].fcnt == 20


def test_replay_is_counted_and_rejected() -> None:
    medium, attacker, devices, head = fleet()
    medium.run(10_000)
    handles = attacker.replay(20, spread_ms=5_000)
    medium.run(20_000)
    assert attacker.report()["replay"] == {"attempted": 20, "accepted": 0}
    assert attacker.reasons["replay"] == {"replay": 20}
    assert all(h.done for h in handles)
    # Up and down: replays reached both the head end and meters.
    targets = {r.address for h in handles for r in h.results}
    assert GW in targets and targets - {GW}


def test_replay_of_a_frame_never_delivered_is_accepted() -> None:
    """The scoring sees a genuine success: a frame lost on the air, replayed, is fresh."""
    medium, attacker, _, head = fleet(meters=1)
    medium.set_link(eui(0), LinkParams(loss=1.0, latency_ms=5))
    medium.run(1_000)  # one reading sent and lost
    assert not head.accepted
    medium.set_link(eui(0), None)
    attacker.replay(1, spread_ms=0)
    medium.run(1_050)
    assert attacker.report()["replay"] == {"attempted": 1, "accepted": 1}


def test_bitflip_recomputes_fcs_and_reaches_crypto() -> None:
    medium, attacker, _, _ = fleet()
    medium.run(10_000)
    held = [c.frame for c in attacker.captures()]
    handles = attacker.bitflip(60, spread_ms=1_000)
    medium.run(12_000)
    assert attacker.report()["bitflip"] == {"attempted": 60, "accepted": 0}
    reasons = attacker.reasons["bitflip"]
    assert "crc" not in reasons and reasons["auth"] > 0
    assert set(reasons) <= {"auth", "malformed", "not_for_me", "replay"}
    for handle in handles:
        assert fcs_ok(handle.frame)
    # Each differs from the nearest captured frame in 1 to 3 bits before the FCS.
    for handle in handles:
        nearest = min(
            sum(bin(x ^ y).count("1") for x, y in zip(frame[:-2], handle.frame[:-2], strict=True))
            for frame in held
            if len(frame) == len(handle.frame)
        )
        assert 1 <= nearest <= 3


def test_live_bitflip_reaches_the_tag_check() -> None:
    medium, attacker, _, head = fleet()
    medium.run(1_000)
    assert attacker.bitflip(40, live=True) == []
    medium.run(20_000)
    assert attacker.report()["bitflip"] == {"attempted": 40, "accepted": 0}
    reasons = attacker.reasons["bitflip"]
    # Fresh counters: no replay verdicts, and most flips (payload, tag, src, key, counter)
    # are caught by the tag; the others by the header checks.
    assert "crc" not in reasons and "replay" not in reasons
    assert reasons["auth"] > 20 and set(reasons) <= {"auth", "malformed", "not_for_me"}
    live = [h for kind, h in attacker.injections if kind == "bitflip"]
    assert len(live) == 40 and all(fcs_ok(h.frame) for h in live)
    assert medium.totals().jammed == 40  # each original was suppressed


def test_forge_well_formed_fresh_and_rejected() -> None:
    medium, attacker, devices, head = fleet()
    medium.run(10_000)
    handles = attacker.forge(40, spread_ms=50)  # no meter transmits meanwhile
    for handle in handles:
        frame = handle.frame
        assert fcs_ok(frame) and frame[0] == 0x14
        src, dst, fcnt = frame[2:10], frame[10:18], int.from_bytes(frame[20:24], "big")
        assert handle.to == dst
        if dst == GW:  # as the meter: READINGS-sized, counter above every one accepted
            assert frame[1] == FLAG_SECURED and len(frame) == 24 + 9 + 8 + 2
            assert fcnt > max(head.seen[src])
        else:  # as the head end: ACK-sized
            assert src == GW and frame[1] == FLAG_SECURED | FLAG_DOWN
            assert len(frame) == 24 + 5 + 8 + 2
            assert fcnt > max(devices[dst[-1]].seen[GW])
        assert frame[19] == 7  # the session's key generation, as sniffed
    medium.run(11_000)
    assert attacker.report()["forge"] == {"attempted": 40, "accepted": 0}
    assert attacker.reasons["forge"] == {"auth": 40}
    targets = [r.address for h in handles for r in h.results]
    assert targets.count(GW) == 20


def test_forge_without_captures_still_sends_frames() -> None:
    medium = Medium(1, PERFECT, GW)
    head = FakeHeadEnd()
    medium.attach(head)
    attacker = Attacker(medium, 1)
    attacker.forge(4)
    medium.run(100_000)
    report = attacker.report()["forge"]
    assert report == {"attempted": 4, "accepted": 0}


def test_corrupt_crc_rejected_as_crc() -> None:
    medium, attacker, _, _ = fleet()
    medium.run(5_000)
    handles = attacker.corrupt_crc(30, spread_ms=100)
    assert all(not fcs_ok(h.frame) for h in handles)
    medium.run(6_000)
    assert attacker.report()["corrupt_crc"] == {"attempted": 30, "accepted": 0}
    assert attacker.reasons["corrupt_crc"] == {"crc": 30}


def test_jam_drops_everything_in_its_window() -> None:
    medium, attacker, devices, head = fleet()
    medium.run(2_000)
    window = attacker.jam(3_000, start_ms=5_000)
    assert window == (5_000, 8_000)
    medium.run(10_000)
    # 4 meters x 3 s of readings jammed (their ACKs never had a reading to answer).
    assert attacker.report()["jam"] == {"attempted": 12, "accepted": 0}
    assert medium.totals().jammed == 12
    received = [int.from_bytes(f[20:24], "big") for f in head.accepted if f[2:10] == eui(0)]
    assert received == [1, 2, 3, 4, 5, 9, 10]


def test_delay_replay_delivers_late() -> None:
    medium, attacker, devices, head = fleet(meters=2)
    medium.run(1_000)
    attacker.delay_replay(3, hold_ms=10_000)
    medium.run(30_000)
    assert attacker.report()["delay_replay"] == {"attempted": 3, "accepted": 3}
    late = [h for kind, h in attacker.injections if kind == "delay_replay"]
    assert [h.at_ms for h in late] == sorted(h.at_ms for h in late)
    assert all(h.at_ms >= 11_000 for h in late)
    assert medium.totals().jammed == 3


def test_eavesdrop_finds_plaintext_readings() -> None:
    medium, attacker, devices, _ = fleet()
    medium.run(3_000)
    secrets = [d.reading(n) for d in devices for n in range(1, 6)]
    attacker.eavesdrop([*secrets, b"never on the air"])
    medium.run(5_000)
    score = attacker.report()["eavesdrop"]
    assert score["attempted"] > 0
    # Readings 1..5 of 4 meters, each in one uplink, all seen (some now, some held).
    assert score["accepted"] == 20 and set(attacker.leaks) == set(secrets)


def test_eavesdrop_scans_many_secrets_the_fast_way() -> None:
    medium, attacker, devices, _ = fleet()
    secrets = [i.to_bytes(8, "big") for i in range(10_000, 10_500)]
    attacker.eavesdrop([*secrets, devices[1].reading(2)])
    medium.run(5_000)
    assert attacker.report()["eavesdrop"]["accepted"] == 1
    assert dict(attacker.leaks) == {devices[1].reading(2): 1}


def test_generic_attempt_with_a_caller_kind() -> None:
    medium, attacker, devices, head = fleet()
    medium.run(2_000)
    rogue = seal(eui(0), GW, 10**6, b"\x01" + bytes(8), down=False)
    handle = attacker.attempt("rogue_join", rogue, GW, medium.now + 10)
    attacker.attempt("rogue_join", b"\x14\x00", None)  # too short to route
    medium.run(3_000)
    assert handle.accepted and handle.result == (None, handle.results[0].frames)
    assert attacker.report()["rogue_join"] == {"attempted": 2, "accepted": 1}
    assert attacker.reasons["rogue_join"] == {"accepted": 1, "unroutable": 1}


def campaign(seed: int) -> tuple[dict[str, dict[str, int]], list[bytes]]:
    link = LinkParams(loss=0.1, latency_ms=10, jitter_ms=20)
    medium, attacker, _, _ = fleet(seed, meters=6, link=link)
    medium.run(8_000)
    frames = []
    for handles in (
        attacker.replay(10),
        attacker.bitflip(10),
        attacker.forge(10),
        attacker.corrupt_crc(10),
    ):
        frames += [h.frame for h in handles]
    attacker.jam(2_000, start_ms=20_000)
    attacker.delay_replay(2)
    medium.run(90_000)
    return attacker.report(), frames


def test_campaigns_are_deterministic() -> None:
    a, b, c = campaign(3), campaign(3), campaign(4)
    assert a == b
    assert a[1] != c[1]
    report = a[0]
    assert set(report) == {"replay", "bitflip", "forge", "corrupt_crc", "jam", "delay_replay"}
    for kind in ("replay", "bitflip", "forge", "corrupt_crc"):
        assert report[kind]["attempted"] == 10
    assert report["jam"]["attempted"] > 0 and report["delay_replay"]["attempted"] == 2


def test_report_is_a_copy() -> None:
    medium, attacker, _, _ = fleet()
    attacker.eavesdrop([b"x" * 9])
    report = attacker.report()
    report["eavesdrop"]["accepted"] = 99
    assert attacker.report()["eavesdrop"]["accepted"] == 0
    with pytest.raises(ValueError):
        attacker.eavesdrop([b""])
