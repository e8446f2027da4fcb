"""An attacker on the virtual radio: sniffs everything, replays, tampers, forges, jams.

``Attacker(medium, seed)`` registers a sniffer on the medium and keeps, in bounded memory,
the last ``keep_per_source`` frames of every sender plus a uniform reservoir sample of
``sample_size`` frames over the whole run, and the newest secured header seen on every
(src, dst) link (key generation, counter, tag length) so forgeries look plausible.

Campaigns schedule their actions on the medium (they run when ``medium.run`` reaches them)
and score into ``attacks[kind] = {"attempted": n, "accepted": m}``. An active attack is
*attempted* when its frame is handed to the receiver(s) and *accepted* when a receiver's
``receive()`` returned None for it. The rejection reasons are tallied in ``reasons[kind]``.

* ``replay(count)``: captured frames, uplinks and downlinks alternately, re-injected later;
* ``bitflip(count)``: a captured secured frame with 1 to 3 bits of its header, payload or tag
  flipped and the FCS recomputed, so the frame passes the CRC; ``live=True`` tampers with the
  next secured transmissions on the air instead (fresh counters: every flip reaches the tag);
* ``forge(count)``: well-formed secured DATA frames with random payload and tag, a real
  link's addresses and key generation and a fresh counter just above the last one seen,
  alternately to the head end (as a meter) and to meters (as the head end);
* ``corrupt_crc(count)``: captured frames with bits flipped and the FCS left wrong;
* ``jam(duration_ms)``: every transmission in the window is dropped. There is no attack frame
  to accept: ``attempted`` counts the frames jammed and ``accepted`` stays 0 (the damage shows
  in the fleet's own figures: readings late, retries);
* ``delay_replay(count)``: the next ``count`` transmissions (secured ones by default) are
  suppressed on the air and delivered ``hold_ms`` later to their receivers;
* ``eavesdrop(secrets)``: every frame sniffed from then on (and, by default, every frame still
  held, rescanned whenever a call brings new secrets) is scanned for each secret byte string;
  ``attempted`` counts frames scanned, ``accepted`` frames holding a secret, ``leaks[secret]``
  the hits per secret;
* ``attempt(kind, frame, to, at_ms)``: the generic mechanism for protocol-specific attacks
  (rogue joins, join-response replays): inject a frame and score it under ``kind``.

``jam``, ``delay_replay`` and ``bitflip(live=True)`` install the attacker as the medium's
interceptor (replacing any other). All randomness comes from ``random.Random`` instances
seeded from ``seed``; with a seeded medium the whole run is repeatable.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import NamedTuple

from ami.crypto import crc16
from ami.link.frame import DOWN as FLAG_DOWN
from ami.link.frame import (
    FCS_LEN,
    HEADER_LEN,
    MTU,
    SECURED_HEADER_LEN,
    TAG_MASK,
    TAG_SHIFT,
    peek,
    peek_secured,
)
from ami.link.frame import GROUP as FLAG_GROUP
from ami.link.frame import SECURED as FLAG_SECURED

from amitools.sim.radio import Injection, Medium, Verdict

VT_DATA = 0x14  # version 1, type 4 (DATA)
TAG_LENGTHS = (8, 12, 16)
DEFAULT_SPREAD_MS = 60_000


class Capture(NamedTuple):
    """One sniffed transmission: when, who sent it (the radio's address), the bytes."""

    time_ms: int
    sender: bytes
    frame: bytes


class LinkState(NamedTuple):
    """The newest secured header seen on a (src, dst) link."""

    key_id: int
    key_gen: int
    fcnt: int
    tag_code: int
    payload_len: int


def fcs(body: bytes) -> bytes:
    """The 2-byte frame check sequence (CRC-16/KERMIT, little-endian) of ``body``."""
    return crc16(body).to_bytes(2, "little")


def fcs_ok(frame: bytes) -> bool:
    return len(frame) >= FCS_LEN and fcs(frame[:-FCS_LEN]) == frame[-FCS_LEN:]


def with_fcs(body: bytes) -> bytes:
    return bytes(body) + fcs(body)


def is_secured(frame: bytes) -> bool:
    return len(frame) >= SECURED_HEADER_LEN + FCS_LEN and peek_secured(frame) is not None


class Attacker:
    """Sniffs the medium from construction on; see the module docstring for the campaigns."""

    def __init__(
        self,
        medium: Medium,
        seed: int | str | bytes,
        *,
        keep_per_source: int = 8,
        sample_size: int = 512,
    ) -> None:
        if keep_per_source < 1 or sample_size < 0:
            raise ValueError("keep_per_source must be positive, sample_size not negative")
        self.medium = medium
        self.gateway = medium.gateway
        self.rng = random.Random(f"attacker:{seed}")
        self._sample_rng = random.Random(f"attacker-sample:{seed}")
        self.keep_per_source = keep_per_source
        self.sample_size = sample_size
        self.recent: dict[bytes, deque[Capture]] = {}
        self.sample: list[Capture] = []
        self.links: dict[tuple[bytes, bytes], LinkState] = {}
        self.sniffed = 0
        self.attacks: dict[str, dict[str, int]] = {}
        self.reasons: dict[str, Counter[str]] = {}
        self.scheduled: Counter[str] = Counter()
        self.injections: deque[tuple[str, Injection]] = deque(maxlen=1024)
        self.leaks: Counter[bytes] = Counter()
        self._secrets: dict[int, set[bytes]] = {}
        self._jams: list[tuple[int, int]] = []
        self._delay_left = 0
        self._bitflip_left = 0
        self._delay_hold = 0
        self._delay_secured_only = True
        self._intercepting = False
        medium.add_sniffer(self._sniff)

    # -- passive -----------------------------------------------------------------------------

    def _sniff(self, time_ms: int, sender: bytes, frame: bytes) -> None:
        capture = Capture(time_ms, sender, frame)
        recent = self.recent.get(sender)
        if recent is None:
            recent = self.recent[sender] = deque(maxlen=self.keep_per_source)
        recent.append(capture)
        self.sniffed += 1
        sample = self.sample
        if len(sample) < self.sample_size:
            sample.append(capture)
        elif self.sample_size:
            slot = self._sample_rng.randrange(self.sniffed)
            if slot < self.sample_size:
                sample[slot] = capture
        secured = peek_secured(frame) if len(frame) >= SECURED_HEADER_LEN + FCS_LEN else None
        if secured is not None:
            _ftype, flags, src, dst = peek(frame)
            tag_code = (flags & TAG_MASK) >> TAG_SHIFT
            if not flags & FLAG_GROUP and tag_code < 3:
                payload_len = len(frame) - SECURED_HEADER_LEN - TAG_LENGTHS[tag_code] - FCS_LEN
                key_id, key_gen, fcnt = secured
                state = LinkState(key_id, key_gen, fcnt, tag_code, max(payload_len, 1))
                self.links[(src, dst)] = state
        if self._secrets:
            self._scan(frame)

    def captures(self, predicate: Callable[[Capture], bool] | None = None) -> list[Capture]:
        """Every frame still held (recent per source, then the sample), oldest first."""
        seen: set[int] = set()
        out = []
        for group in (*self.recent.values(), self.sample):
            for capture in group:
                if id(capture) in seen:
                    continue
                seen.add(id(capture))
                if predicate is None or predicate(capture):
                    out.append(capture)
        out.sort(key=lambda c: c.time_ms)
        return out

    def eavesdrop(self, secrets: Iterable[bytes], *, include_held: bool = True) -> None:
        """Scan for ``secrets`` in every frame from now on (and in the frames held)."""
        self._ensure("eavesdrop")
        new = False
        for secret in secrets:
            secret = bytes(secret)
            if not secret:
                raise ValueError("an empty secret matches everything")
            bucket = self._secrets.setdefault(len(secret), set())
            new |= secret not in bucket
            bucket.add(secret)
        if include_held and new:
            for capture in self.captures():
                self._scan(capture.frame)

    def _scan(self, frame: bytes) -> None:
        score = self.attacks["eavesdrop"]
        score["attempted"] += 1
        hits = []
        for size, bucket in self._secrets.items():
            if len(bucket) <= 8:
                hits.extend(s for s in bucket if s in frame)
            else:
                windows = {frame[i : i + size] for i in range(len(frame) - size + 1)}
                hits.extend(windows & bucket)
        if hits:
            score["accepted"] += 1
            self.leaks.update(hits)

    # -- scoring -------------------------------------------------------------------------------

    def _ensure(self, kind: str) -> dict[str, int]:
        score = self.attacks.get(kind)
        if score is None:
            score = self.attacks[kind] = {"attempted": 0, "accepted": 0}
            self.reasons[kind] = Counter()
        return score

    def attempt(
        self, kind: str, frame: bytes, to: bytes | None = None, at_ms: int | None = None
    ) -> Injection:
        """Inject ``frame`` at ``at_ms`` (default now) to ``to`` (None: routed by its src)
        and score the outcome under ``kind``."""
        score = self._ensure(kind)
        reasons = self.reasons[kind]
        self.scheduled[kind] += 1

        def scored(handle: Injection) -> None:
            score["attempted"] += 1
            if handle.accepted:
                score["accepted"] += 1
            if handle.status != "delivered":
                reasons[handle.status] += 1
            for reception in handle.results:
                reasons[reception.reason or "accepted"] += 1

        at = self.medium.now if at_ms is None else at_ms
        handle = self.medium.inject(frame, at, to, scored)
        self.injections.append((kind, handle))
        return handle

    def report(self) -> dict[str, dict[str, int]]:
        return {kind: dict(score) for kind, score in sorted(self.attacks.items())}

    # -- helpers ------------------------------------------------------------------------------

    def _times(self, count: int, start_ms: int | None, spread_ms: int) -> list[int]:
        start = self.medium.now if start_ms is None else start_ms
        return sorted(start + self.rng.randrange(spread_ms + 1) for _ in range(count))

    def _is_up(self, capture: Capture) -> bool:
        return capture.sender != self.gateway

    def _pick(self, pool: list[Capture], count: int) -> list[Capture]:
        """``count`` captures, uplinks and downlinks alternately while both exist."""
        if not pool:
            return []
        up = [c for c in pool if self._is_up(c)]
        down = [c for c in pool if not self._is_up(c)]
        sides = [side for side in (up, down) if side]
        return [self.rng.choice(sides[i % len(sides)]) for i in range(count)]

    def _receiver(self, capture: Capture) -> bytes | None:
        """The node the captured frame was meant for (None: route it by its header)."""
        if self._is_up(capture):
            return self.gateway
        frame = capture.frame
        if len(frame) < HEADER_LEN:
            return None
        _ftype, flags, _src, dst = peek(frame)
        return None if flags & FLAG_GROUP else dst

    def _flip_bits(self, data: bytearray, start: int, end: int) -> None:
        flips = self.rng.sample(range(start * 8, end * 8), min(1 + self.rng.randrange(3), 8))
        for bit in flips:
            data[bit >> 3] ^= 1 << (bit & 7)

    # -- active campaigns ----------------------------------------------------------------------

    def replay(
        self, count: int, *, start_ms: int | None = None, spread_ms: int = DEFAULT_SPREAD_MS
    ) -> list[Injection]:
        """Re-inject ``count`` captured frames (up and down), routed as originally."""
        self._ensure("replay")
        picks = self._pick(self.captures(), count)
        times = self._times(len(picks), start_ms, spread_ms)
        return [
            self.attempt("replay", c.frame, self._receiver(c), t)
            for c, t in zip(picks, times, strict=True)
        ]

    def bitflip(
        self,
        count: int,
        *,
        live: bool = False,
        start_ms: int | None = None,
        spread_ms: int = DEFAULT_SPREAD_MS,
    ) -> list[Injection]:
        """Flip 1-3 bits of secured frames (header, payload or tag), recompute the FCS and
        deliver them to the frame's receiver.

        By default the frames are held captures, injected later: their counter has usually
        been accepted already, so a flip outside the header mostly ends at the replay check,
        which precedes the tag check. ``live=True`` takes the next ``count`` secured
        transmissions on the air instead, suppresses each and delivers its tampered copy in
        its place at once, with a fresh counter: every flip reaches the tag check. Live
        handles appear in ``injections`` as they happen; the list returned is then empty.
        """
        self._ensure("bitflip")
        if live:
            self._bitflip_left += count
            self._intercept_on()
            return []
        picks = self._pick(self.captures(lambda c: is_secured(c.frame)), count)
        times = self._times(len(picks), start_ms, spread_ms)
        return [
            self.attempt("bitflip", self._tampered(c.frame), self._receiver(c), at)
            for c, at in zip(picks, times, strict=True)
        ]

    def _tampered(self, frame: bytes) -> bytes:
        body = bytearray(frame[:-FCS_LEN])
        self._flip_bits(body, 0, len(body))
        return with_fcs(body)

    def corrupt_crc(
        self, count: int, *, start_ms: int | None = None, spread_ms: int = DEFAULT_SPREAD_MS
    ) -> list[Injection]:
        """Inject captured frames with bits flipped and a frame check sequence that fails."""
        self._ensure("corrupt_crc")
        picks = self._pick(self.captures(lambda c: len(c.frame) > FCS_LEN), count)
        times = self._times(len(picks), start_ms, spread_ms)
        out = []
        for capture, at in zip(picks, times, strict=True):
            data = bytearray(capture.frame)
            self._flip_bits(data, 0, len(data))
            while fcs_ok(data):  # CRC-16 catches 1-3 flips, but never send a valid one
                data[-1] ^= 1 + self.rng.randrange(255)
            out.append(self.attempt("corrupt_crc", bytes(data), self._receiver(capture), at))
        return out

    def forge(
        self, count: int, *, start_ms: int | None = None, spread_ms: int = DEFAULT_SPREAD_MS
    ) -> list[Injection]:
        """Well-formed secured DATA frames with random payload and tag and a fresh counter,
        alternately to the head end (as a meter) and to a meter (as the head end)."""
        self._ensure("forge")
        gw = self.gateway
        meters = sorted(a for a in self.recent if a != gw)
        ups = sorted(k for k in self.links if k[1] == gw and k[0] != gw)
        downs = sorted(k for k in self.links if k[0] == gw)
        times = self._times(count, start_ms, spread_ms)
        out = []
        for i, at in enumerate(times):
            to_meter = i % 2 == 1
            if to_meter:
                if downs:
                    src, dst = self.rng.choice(downs)
                elif meters:
                    src, dst = gw, self.rng.choice(meters)
                else:
                    src, dst = gw, self.rng.randbytes(8)
            elif ups:
                src, dst = self.rng.choice(ups)
            else:
                src, dst = (self.rng.choice(meters) if meters else self.rng.randbytes(8)), gw
            state = self.links.get((src, dst))
            if state is None:  # same session in the other direction, else a guess
                state = self.links.get((dst, src)) or LinkState(0, 0, 0, 0, 16)
                state = state._replace(fcnt=0)
            frame = self.forge_frame(src, dst, state, down=to_meter)
            out.append(self.attempt("forge", frame, dst, at))
        return out

    def forge_frame(self, src: bytes, dst: bytes, state: LinkState, *, down: bool) -> bytes:
        """A well-formed secured DATA frame on ``state``'s session with a counter just ahead."""
        tag_len = TAG_LENGTHS[state.tag_code]
        flags = FLAG_SECURED | (FLAG_DOWN if down else 0) | state.tag_code << 3
        fcnt = min(state.fcnt + 1 + self.rng.randrange(16), 0xFFFFFFFE)
        room = MTU - SECURED_HEADER_LEN - tag_len - FCS_LEN
        payload = self.rng.randbytes(max(1, min(state.payload_len, room)))
        body = (
            bytes((VT_DATA, flags))
            + src
            + dst
            + bytes((state.key_id if state.key_id in (0, 1) else 0, state.key_gen))
            + fcnt.to_bytes(4, "big")
            + payload
            + self.rng.randbytes(tag_len)
        )
        return with_fcs(body)

    # -- campaigns on the air (interceptor) ---------------------------------------------------

    def _intercept_on(self) -> None:
        if not self._intercepting:
            self.medium.set_interceptor(self._intercept)
            self._intercepting = True

    def jam(self, duration_ms: int, *, start_ms: int | None = None) -> tuple[int, int]:
        """Drop every transmission in [start, start + duration); returns the window."""
        self._ensure("jam")
        start = self.medium.now if start_ms is None else start_ms
        window = (start, start + duration_ms)
        self._jams.append(window)
        self._jams.sort()
        self._intercept_on()
        return window

    def delay_replay(
        self, count: int, *, hold_ms: int = DEFAULT_SPREAD_MS, secured_only: bool = True
    ) -> None:
        """Suppress the next ``count`` transmissions (secured only by default) and deliver each
        to its receiver ``hold_ms`` later."""
        self._ensure("delay_replay")
        self._delay_left += count
        self._delay_hold = hold_ms
        self._delay_secured_only = secured_only
        self._intercept_on()

    def _intercept(self, time_ms: int, sender: bytes, frame: bytes) -> Verdict | None:
        jams = self._jams
        while jams and jams[0][1] <= time_ms:
            jams.pop(0)
        if jams and jams[0][0] <= time_ms:
            self.attacks["jam"]["attempted"] += 1
            return Verdict.jam()
        if self._bitflip_left and is_secured(frame):
            self._bitflip_left -= 1
            receiver = self._receiver(Capture(time_ms, sender, frame))
            self.attempt("bitflip", self._tampered(frame), receiver, time_ms)
            return Verdict.jam()
        if self._delay_left and (not self._delay_secured_only or is_secured(frame)):
            self._delay_left -= 1
            capture = Capture(time_ms, sender, frame)
            self.attempt("delay_replay", frame, self._receiver(capture), time_ms + self._delay_hold)
            return Verdict.jam()
        return None
