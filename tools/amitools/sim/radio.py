"""Virtual radio: a deterministic discrete-event medium that carries frames between nodes.

Time is virtual, in integer milliseconds; nothing reads a clock. Every random decision (loss,
duplication, corruption, jitter) comes from one ``random.Random(seed)`` owned by the medium
and is drawn in event order, so a run is a pure function of the seed, the nodes and the
calls made on the medium.

Topology is a star around the gateway (the head end's EUI-64):

* a frame sent by any other node goes to the gateway, whatever its header says;
* a frame sent by the gateway goes to the node named by its ``dst`` (bytes 10..17), or, when
  its ``GROUP`` flag (byte 1, bit 1) is set, to every member of the group ``dst``.

A node's link (``set_link``, else the medium's default) applies to both directions of its link
with the gateway. Each receiver of a transmission draws its own fate: lost, else delivered
once or (``duplicate``) twice; each copy independently corrupted (1 to 3 bit flips anywhere,
FCS included) and delayed by ``latency_ms`` plus a uniform ``0..jitter_ms``, so jitter
reorders frames.

A transmission's life:

1. a node returns frames from ``start``/``receive``/``tick``; frames over the 255-byte MTU are
   dropped at the transmitter (``mtu_dropped``); the others queue behind the sender's previous
   frames and occupy the air for ``ceil(len * 8 / bitrate)`` (100 kbit/s: 255 bytes 21 ms);
2. when it has been on the air (``end`` of its airtime) every sniffer sees it, then the
   interceptor, if any, decides: deliver, drop (jam), delay by d ms, replace the frame (or
   delay and replace);
3. it is routed and each copy is handed to the receiver's ``receive()`` at
   ``end + delay + latency + jitter``; the receiver's replies are transmitted in turn.

Collisions and half-duplex are not modelled. A node's timers: after every call into a node
the medium re-reads ``next_wakeup()`` and keeps exactly one pending wakeup per node (earlier
ones are invalidated, not searched for); ``tick()`` runs when it is due. A wakeup in the past
runs now; after a ``tick`` a node still asking for a wakeup at or before now is woken 1 ms
later, so a node that forgets to clear a timer cannot spin the medium at one instant.

Attackers: ``add_sniffer`` (passive), ``set_interceptor`` (active on the air),
``inject(frame, at_ms, to)`` (an attacker's own transmission, handed straight to the target
without link impairments, not shown to sniffers; its :class:`Injection` handle collects what
each receiver's ``receive()`` returned). Replies to injected frames are ordinary transmissions.

Recording: ``add_tap(callback(time_ms, kind, node, frame))`` sees every frame a capture must
hold: each transmission after the interceptor's verdict (kind ``tx``, or ``jammed``; a
replacement follows as ``modified``) and each injection within the MTU at its time, routable or
not (``injected``, node: the target, or empty when routed by its header).

Counters are per node (:class:`NodeStats`): the sender counts ``transmitted``, ``mtu_dropped``,
``unroutable``, ``jammed``, ``delayed``, ``modified``; the receiver counts ``delivered`` (copies
carried by the link), ``injected``, ``lost``, ``duplicated``, ``corrupted``, ``accepted``,
``rejected`` (by reason) and ``ticks``. ``accepted + sum(rejected) == delivered + injected``.
``totals()`` adds them up over the fleet.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ami.link.frame import GROUP as FLAG_GROUP
from ami.link.frame import HEADER_LEN, MTU, peek

DEFAULT_BITRATE = 100_000

# Event kinds. Events are (time_ms, seq, kind, a, b) tuples: seq is unique, so tuples never
# compare beyond it and ties run in insertion order.
_START = 0
_TX = 1
_RX = 2
_WAKE = 3
_INJECT = 4


@runtime_checkable
class Node(Protocol):
    """What the medium drives: firmware meters, unix-port adapters, the head end."""

    address: bytes

    def start(self, now_ms: int) -> list[bytes]: ...

    def receive(self, frame: bytes, now_ms: int) -> tuple[str | None, list[bytes]]: ...

    def tick(self, now_ms: int) -> list[bytes]: ...

    def next_wakeup(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class LinkParams:
    """Impairments of one link. Probabilities in [0, 1]; times in ms."""

    loss: float = 0.0
    latency_ms: int = 5
    jitter_ms: int = 0
    duplicate: float = 0.0
    corrupt: float = 0.0

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "corrupt"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], not {value}")
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must not be negative")


PERFECT = LinkParams(loss=0.0, latency_ms=0, jitter_ms=0, duplicate=0.0, corrupt=0.0)


@dataclass(frozen=True, slots=True)
class Verdict:
    """An interceptor's decision about one transmission (``None`` means deliver normally)."""

    drop: bool = False
    delay_ms: int = 0
    frame: bytes | None = None

    @classmethod
    def jam(cls) -> Verdict:
        return _JAM

    @classmethod
    def delay(cls, ms: int) -> Verdict:
        if ms < 0:
            raise ValueError("delay must not be negative")
        return cls(delay_ms=ms)

    @classmethod
    def replace(cls, frame: bytes, delay_ms: int = 0) -> Verdict:
        return cls(frame=bytes(frame), delay_ms=delay_ms)


_JAM = Verdict(drop=True)

Sniffer = Callable[[int, bytes, bytes], None]
Interceptor = Callable[[int, bytes, bytes], Verdict | None]
Tap = Callable[[int, str, bytes, bytes], None]


class NodeStats:
    """Counters of one node (or, from ``Medium.totals()``, of all of them)."""

    FIELDS = (
        "transmitted",
        "mtu_dropped",
        "unroutable",
        "jammed",
        "delayed",
        "modified",
        "delivered",
        "injected",
        "lost",
        "duplicated",
        "corrupted",
        "accepted",
        "ticks",
    )
    __slots__ = (*FIELDS, "rejected")

    def __init__(self) -> None:
        for name in self.FIELDS:
            setattr(self, name, 0)
        self.rejected: Counter[str] = Counter()

    def add(self, other: NodeStats) -> None:
        for name in self.FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejected.update(other.rejected)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {name: getattr(self, name) for name in self.FIELDS}
        out["rejected"] = dict(sorted(self.rejected.items()))
        return out

    def __repr__(self) -> str:
        return f"NodeStats({self.as_dict()})"


class Reception:
    """What one receiver made of an injected frame."""

    __slots__ = ("address", "reason", "frames")

    def __init__(self, address: bytes, reason: str | None, frames: list[bytes]) -> None:
        self.address = address
        self.reason = reason
        self.frames = frames

    def __repr__(self) -> str:
        return f"Reception({self.address.hex()}, {self.reason!r}, {len(self.frames)} frames)"


class Injection:
    """Handle of an injected frame; filled in when the medium delivers it.

    ``status`` is ``pending``, then ``delivered`` (``results`` has one :class:`Reception` per
    receiver), ``unroutable`` (no such node, no gateway, or too short to route) or ``mtu``
    (longer than the MTU; nothing sent). ``callback(injection)``, if given, runs once, when the
    status leaves ``pending``.
    """

    __slots__ = ("frame", "at_ms", "to", "callback", "status", "results")

    def __init__(
        self,
        frame: bytes,
        at_ms: int,
        to: bytes | None,
        callback: Callable[[Injection], None] | None,
    ) -> None:
        self.frame = frame
        self.at_ms = at_ms
        self.to = to
        self.callback = callback
        self.status = "pending"
        self.results: list[Reception] = []

    @property
    def done(self) -> bool:
        return self.status != "pending"

    @property
    def result(self) -> tuple[str | None, list[bytes]] | None:
        """(reason, frames) of the first receiver, None until delivered or if nobody got it."""
        if not self.results:
            return None
        first = self.results[0]
        return first.reason, first.frames

    @property
    def accepted(self) -> bool:
        """True when at least one receiver accepted the frame (``receive`` returned None)."""
        return any(r.reason is None for r in self.results)

    def __repr__(self) -> str:
        return f"Injection(at={self.at_ms}, status={self.status}, results={self.results})"


class _Port:
    """The medium's per-node state."""

    __slots__ = ("node", "address", "stats", "link", "busy_until", "wake_at", "wake_gen")

    def __init__(self, node: Node, link: LinkParams | None) -> None:
        self.node = node
        self.address = bytes(node.address)
        self.stats = NodeStats()
        self.link = link
        self.busy_until = 0
        self.wake_at: int | None = None
        self.wake_gen = 0


class Medium:
    """A star network on virtual time. See the module docstring for the model."""

    def __init__(
        self,
        seed: int | str | bytes,
        default: LinkParams | None = None,
        gateway: bytes = b"",
        *,
        bitrate: int = DEFAULT_BITRATE,
        trace: bool = False,
    ) -> None:
        if bitrate <= 0:
            raise ValueError("bitrate must be positive")
        self.seed = seed
        self.rng = random.Random(seed)
        self.default = default if default is not None else LinkParams()
        self.gateway = bytes(gateway)
        self.bitrate = bitrate
        self.now = 0
        self.events = 0
        # Airtime in whole ms (rounded up) for every frame length the MTU allows.
        self._airtime = [-(-n * 8000 // bitrate) for n in range(MTU + 1)]
        self._heap: list[tuple] = []
        self._seq = itertools.count()
        self._ports: dict[bytes, _Port] = {}
        self._gw: _Port | None = None
        self._links: dict[bytes, LinkParams] = {}
        self._groups: dict[bytes, list[bytes]] = {}
        self._sniffers: list[Sniffer] = []
        self._interceptor: Interceptor | None = None
        self._taps: list[Tap] = []
        self.trace: list[tuple] | None = [] if trace else None

    # -- configuration ---------------------------------------------------------------------

    def attach(self, node: Node, start_ms: int | None = None) -> None:
        """Add a node; its ``start()`` runs at ``start_ms`` (default: now)."""
        address = bytes(node.address)
        if len(address) != 8:
            raise ValueError("a node's address must be an 8-byte EUI-64")
        if address in self._ports:
            raise ValueError(f"node {address.hex()} is already attached")
        at = self.now if start_ms is None else start_ms
        if at < self.now:
            raise ValueError(f"start time {at} is in the past (now {self.now})")
        port = _Port(node, self._links.get(address))
        self._ports[address] = port
        if address == self.gateway:
            self._gw = port
        heapq.heappush(self._heap, (at, next(self._seq), _START, port, None))

    def nodes(self) -> list[Node]:
        return [port.node for port in self._ports.values()]

    def node(self, address: bytes) -> Node:
        return self._ports[bytes(address)].node

    def set_link(self, address: bytes, params: LinkParams | None) -> None:
        """Impairments of the link between ``address`` and the gateway (None: the default)."""
        address = bytes(address)
        if params is None:
            self._links.pop(address, None)
        else:
            self._links[address] = params
        port = self._ports.get(address)
        if port is not None:
            port.link = params

    def link(self, address: bytes) -> LinkParams:
        return self._links.get(bytes(address), self.default)

    def add_to_group(self, group_id: bytes, address: bytes) -> None:
        group_id, address = bytes(group_id), bytes(address)
        if len(group_id) != 8:
            raise ValueError("a group id is 8 bytes (the dst field)")
        members = self._groups.setdefault(group_id, [])
        if address not in members:
            members.append(address)

    def remove_from_group(self, group_id: bytes, address: bytes) -> None:
        members = self._groups.get(bytes(group_id))
        if members and bytes(address) in members:
            members.remove(bytes(address))

    def group(self, group_id: bytes) -> list[bytes]:
        return list(self._groups.get(bytes(group_id), ()))

    def add_sniffer(self, callback: Sniffer) -> None:
        """``callback(time_ms, sender_address, frame)`` for every transmission, before delivery."""
        self._sniffers.append(callback)

    def remove_sniffer(self, callback: Sniffer) -> None:
        self._sniffers.remove(callback)

    def add_tap(self, callback: Tap) -> None:
        """``callback(time_ms, kind, node, frame)`` for every frame a capture records (see the
        module docstring)."""
        self._taps.append(callback)

    def set_interceptor(self, interceptor: Interceptor | None) -> None:
        """``interceptor(time_ms, sender_address, frame) -> Verdict | None`` per transmission."""
        self._interceptor = interceptor

    @property
    def interceptor(self) -> Interceptor | None:
        return self._interceptor

    # -- attacker's transmissions -------------------------------------------------------------

    def inject(
        self,
        frame: bytes,
        at_ms: int,
        to: bytes | None = None,
        callback: Callable[[Injection], None] | None = None,
    ) -> Injection:
        """Deliver ``frame`` at ``at_ms`` to node ``to``, or (None) route it as if its ``src``
        had transmitted it. Returns the handle that receives the outcome."""
        if at_ms < self.now:
            raise ValueError(f"injection time {at_ms} is in the past (now {self.now})")
        handle = Injection(bytes(frame), at_ms, None if to is None else bytes(to), callback)
        heapq.heappush(self._heap, (at_ms, next(self._seq), _INJECT, handle, None))
        return handle

    # -- statistics ------------------------------------------------------------------------

    def stats(self, address: bytes) -> NodeStats:
        return self._ports[bytes(address)].stats

    def totals(self) -> NodeStats:
        total = NodeStats()
        for port in self._ports.values():
            total.add(port.stats)
        return total

    @property
    def pending(self) -> int:
        """Events queued (including invalidated wakeups not yet popped)."""
        return len(self._heap)

    # -- the event loop --------------------------------------------------------------------

    def run(self, until_ms: int) -> int:
        """Process every event due at or before ``until_ms``; return how many ran."""
        if until_ms < self.now:
            raise ValueError(f"cannot run back to {until_ms} (now {self.now})")
        heap = self._heap
        pop = heapq.heappop
        on_rx = self._on_rx
        on_tx = self._on_tx
        count = 0
        while heap and heap[0][0] <= until_ms:
            now, _, kind, a, b = pop(heap)
            self.now = now
            if kind == _RX:
                on_rx(a, b, now)
            elif kind == _TX:
                on_tx(a, b, now)
            elif kind == _WAKE:
                if b != a.wake_gen:
                    continue  # superseded by a later next_wakeup()
                self._on_wake(a, now)
            elif kind == _START:
                self._on_start(a, now)
            else:
                self._on_inject(a, now)
            count += 1
        self.now = until_ms
        self.events += count
        return count

    def _on_start(self, port: _Port, now: int) -> None:
        if self.trace is not None:
            self.trace.append((now, "start", port.address))
        frames = port.node.start(now)
        if frames:
            self._transmit(port, frames, now)
        self._rearm(port, now, False)

    def _on_wake(self, port: _Port, now: int) -> None:
        port.wake_at = None
        port.stats.ticks += 1
        if self.trace is not None:
            self.trace.append((now, "tick", port.address))
        frames = port.node.tick(now)
        if frames:
            self._transmit(port, frames, now)
        self._rearm(port, now, True)

    def poke(self, address: bytes) -> None:
        """Re-read a node's next wakeup after an input from outside the radio (a local
        button press, say) changed its timers."""
        self._rearm(self._ports[address], self.now, False)

    def restart(self, address: bytes, node: Node | None = None) -> None:
        """A power cycle: optionally a new node object for the address, then start() now;
        its frames go on the air as at attach time."""
        port = self._ports[address]
        if node is not None:
            port.node = node
        frames = port.node.start(self.now)
        if frames:
            self._transmit(port, frames, self.now)
        self._rearm(port, self.now, False)

    def _rearm(self, port: _Port, now: int, after_tick: bool) -> None:
        """Keep exactly one pending wakeup, at the node's current next_wakeup()."""
        due = port.node.next_wakeup()
        if due is None:
            if port.wake_at is not None:
                port.wake_at = None
                port.wake_gen += 1
            return
        if due <= now:
            due = now + 1 if after_tick else now
        if due == port.wake_at:
            return
        port.wake_at = due
        port.wake_gen += 1
        heapq.heappush(self._heap, (due, next(self._seq), _WAKE, port, port.wake_gen))

    def _transmit(self, port: _Port, frames: Iterable[bytes], now: int) -> None:
        """Queue a node's frames on its transmitter (serialised, one after the other)."""
        airtime = self._airtime
        heap = self._heap
        seq = self._seq
        start = port.busy_until if port.busy_until > now else now
        for frame in frames:
            size = len(frame)
            if size > MTU:
                port.stats.mtu_dropped += 1
                if self.trace is not None:
                    self.trace.append((now, "mtu", port.address, bytes(frame)))
                continue
            start += airtime[size]
            heapq.heappush(heap, (start, next(seq), _TX, port, bytes(frame)))
        port.busy_until = start

    def _route(self, sender: bytes, frame: bytes) -> list[_Port] | _Port | None:
        """Receivers of a frame sent by ``sender``: one port, a list (group) or None."""
        gw = self._gw
        if sender != self.gateway:
            return gw
        if len(frame) < HEADER_LEN:
            return None
        _ftype, flags, _src, dst = peek(frame)
        if flags & FLAG_GROUP:
            members = self._groups.get(dst)
            if not members:
                return None
            ports = self._ports
            found = [ports[a] for a in members if a in ports and a != sender]
            return found or None
        port = self._ports.get(dst)
        return None if port is gw else port

    def _on_tx(self, port: _Port, frame: bytes, now: int) -> None:
        stats = port.stats
        stats.transmitted += 1
        sender = port.address
        if self.trace is not None:
            self.trace.append((now, "tx", sender, frame))
        for sniff in self._sniffers:
            sniff(now, sender, frame)
        extra = 0
        verdict = None
        if self._interceptor is not None:
            verdict = self._interceptor(now, sender, frame)
        for tap in self._taps:
            tap(now, "jammed" if verdict is not None and verdict.drop else "tx", sender, frame)
        if verdict is not None:
            if verdict.drop:
                stats.jammed += 1
                if self.trace is not None:
                    self.trace.append((now, "jammed", sender, frame))
                return
            if verdict.frame is not None:
                stats.modified += 1
                frame = verdict.frame
                for tap in self._taps:
                    tap(now, "modified", sender, frame)
            if verdict.delay_ms:
                stats.delayed += 1
                extra = verdict.delay_ms
        receivers = self._route(sender, frame)
        if receivers is None:
            stats.unroutable += 1
            if self.trace is not None:
                self.trace.append((now, "unroutable", sender, frame))
            return
        if type(receivers) is _Port:
            link = port.link if port is not self._gw else receivers.link
            self._carry(receivers, frame, now + extra, link or self.default)
        else:
            default = self.default
            for rx in receivers:
                self._carry(rx, frame, now + extra, rx.link or default)

    def _carry(self, rx: _Port, frame: bytes, at: int, link: LinkParams) -> None:
        """Draw one receiver's fate for a frame and schedule its copies."""
        rnd = self.rng.random
        stats = rx.stats
        if link.loss and rnd() < link.loss:
            stats.lost += 1
            if self.trace is not None:
                self.trace.append((at, "lost", rx.address, frame))
            return
        copies = 1
        if link.duplicate and rnd() < link.duplicate:
            copies = 2
            stats.duplicated += 1
        heap = self._heap
        latency = link.latency_ms
        jitter = link.jitter_ms
        for _ in range(copies):
            copy = frame
            if link.corrupt and rnd() < link.corrupt and frame:
                copy = self._flip(frame)
                stats.corrupted += 1
            delay = latency + int(rnd() * (jitter + 1)) if jitter else latency
            heapq.heappush(heap, (at + delay, next(self._seq), _RX, rx, copy))

    def _flip(self, frame: bytes) -> bytes:
        """1 to 3 distinct random bit flips anywhere in the frame."""
        rnd = self.rng.random
        data = bytearray(frame)
        bits = len(data) * 8
        flips = min(1 + int(rnd() * 3), bits)
        chosen: set[int] = set()
        while len(chosen) < flips:
            chosen.add(int(rnd() * bits))
        for bit in sorted(chosen):
            data[bit >> 3] ^= 1 << (bit & 7)
        return bytes(data)

    def _on_rx(self, port: _Port, frame: bytes, now: int) -> None:
        port.stats.delivered += 1
        self._hand_over(port, frame, now, "rx")

    def _hand_over(
        self, port: _Port, frame: bytes, now: int, kind: str
    ) -> tuple[str | None, list[bytes]]:
        """Give a frame to a node: count its verdict, send its replies, re-read its timer."""
        stats = port.stats
        reason, frames = port.node.receive(frame, now)
        if reason is None:
            stats.accepted += 1
        else:
            stats.rejected[reason] += 1
        if self.trace is not None:
            self.trace.append((now, kind, port.address, frame, reason))
        if frames:
            self._transmit(port, frames, now)
        self._rearm(port, now, False)
        return reason, frames

    def _on_inject(self, handle: Injection, now: int) -> None:
        frame = handle.frame
        receivers: list[_Port] | _Port | None
        if len(frame) > MTU:
            handle.status = "mtu"
            receivers = None
        elif handle.to is not None:
            receivers = self._ports.get(handle.to)
        elif len(frame) < HEADER_LEN:
            receivers = None
        else:
            receivers = self._route(peek(frame)[2], frame)
        if handle.status != "mtu":
            for tap in self._taps:
                tap(now, "injected", handle.to or b"", frame)
        if receivers is not None:
            handle.status = "delivered"
            for rx in [receivers] if type(receivers) is _Port else receivers:
                rx.stats.injected += 1
                reason, frames = self._hand_over(rx, frame, now, "injected")
                handle.results.append(Reception(rx.address, reason, list(frames or ())))
        elif handle.status == "pending":
            handle.status = "unroutable"
        if handle.callback is not None:
            handle.callback(handle)
