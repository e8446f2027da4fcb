"""Captures of the virtual radio as classic pcap files (docs/captures.md).

Link type ``LINKTYPE_USER0`` (147), reserved by tcpdump.org for private use: no registered
DLT describes this link, and a private one keeps Wireshark from guessing. Each packet is a
12-byte pseudo-header followed by the radio frame exactly as on the air, FCS included:

version (1) = 1 | length (1) = 12 (a reader skips this many bytes to the frame) |
flags (1): bit 0 DOWN (sent by the gateway), bit 1 INJECTED (an attacker's own frame),
bit 2 MODIFIED (an interceptor's replacement of the packet before it), bit 3 JAMMED (an
interceptor stopped it after its airtime) | partition (1): the demo worker whose radio carried
it | node (8): the transmitter's address; for an injected frame the node it was handed to
(zeros: routed by its header).

Timestamps are the radio's virtual time (ms since the Unix epoch) with microsecond fields.
Written and read with ``struct`` only; a worker writes its own file and ``merge`` joins
them in time order.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

LINKTYPE_USER0 = 147
PH_VERSION = 1
PH_LEN = 12
SNAPLEN = 65535
F_DOWN = 0x01
F_INJECTED = 0x02
F_MODIFIED = 0x04
F_JAMMED = 0x08
# The radio's tap kinds (amitools.sim.radio.Medium.add_tap) as pseudo-header flags.
KIND_FLAGS = {"tx": 0, "jammed": F_JAMMED, "modified": F_MODIFIED, "injected": F_INJECTED}
NO_NODE = bytes(8)

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_PH = struct.Struct(">BBBB8s")
_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D


class CaptureError(ValueError):
    """The file is not a capture this module reads (wrong magic, link type, or truncated)."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One captured frame with its pseudo-header fields."""

    time_ms: int
    flags: int
    partition: int
    node: bytes
    frame: bytes

    def encode(self) -> bytes:
        """The packet's data: pseudo-header then frame."""
        return _PH.pack(PH_VERSION, PH_LEN, self.flags, self.partition, self.node) + self.frame


class CaptureWriter:
    """Appends packets to a new pcap file; a radio tap (``tap``) or ``write`` feeds it."""

    def __init__(self, path: str, partition: int = 0, gateway: bytes = NO_NODE) -> None:
        if not 0 <= partition <= 255:
            raise ValueError("partition must be 0..255")
        self.partition = partition
        self.gateway = bytes(gateway)
        self.count = 0
        self._f: BinaryIO = open(path, "wb")  # noqa: SIM115 (closed in close())
        self._f.write(_GLOBAL.pack(_MAGIC_US, 2, 4, 0, 0, SNAPLEN, LINKTYPE_USER0))

    def write(self, packet: Packet) -> None:
        data = packet.encode()
        sec, ms = divmod(packet.time_ms, 1000)
        self._f.write(_RECORD.pack(sec, ms * 1000, len(data), len(data)))
        self._f.write(data)
        self.count += 1

    def tap(self, time_ms: int, kind: str, node: bytes, frame: bytes) -> None:
        """The radio's tap callback: one packet per frame the medium carried or was handed."""
        flags = KIND_FLAGS[kind]
        if kind != "injected" and node == self.gateway:
            flags |= F_DOWN
        self.write(Packet(time_ms, flags, self.partition, node or NO_NODE, frame))

    def close(self) -> None:
        self._f.close()


def read(path: str) -> Iterator[Packet]:
    """The packets of a capture written here; raises CaptureError on anything else."""
    with open(path, "rb") as f:
        head = f.read(_GLOBAL.size)
        if len(head) < _GLOBAL.size:
            raise CaptureError("not a pcap capture (shorter than a pcap header)")
        magic = struct.unpack("<I", head[:4])[0]
        if magic in (_MAGIC_US, _MAGIC_NS):
            order = "<"
        elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
            order = ">"
        elif magic == 0x0A0D0D0A:
            raise CaptureError("a pcapng file; this reads classic pcap (ami demo --capture)")
        else:
            raise CaptureError("not a pcap capture (bad magic number)")
        fields = struct.unpack(order + "IHHiIII", head)
        nano = fields[0] == _MAGIC_NS
        if fields[6] != LINKTYPE_USER0:
            raise CaptureError(f"link type {fields[6]}, not {LINKTYPE_USER0} (AMI radio)")
        rec = struct.Struct(order + "IIII")
        n = 0
        while True:
            hdr = f.read(rec.size)
            if not hdr:
                return
            n += 1
            if len(hdr) < rec.size:
                raise CaptureError(f"packet {n}: truncated record header")
            sec, frac, incl, _orig = rec.unpack(hdr)
            data = f.read(incl)
            if len(data) < incl or incl < PH_LEN or data[0] != PH_VERSION or data[1] < PH_LEN:
                raise CaptureError(f"packet {n}: truncated or without the AMI pseudo-header")
            _v, size, flags, partition, node = _PH.unpack_from(data)
            ms = sec * 1000 + (frac // 1_000_000 if nano else frac // 1000)
            yield Packet(ms, flags, partition, node, data[size:])


def merge(paths: Iterable[str], out: str) -> int:
    """Join captures (each in time order) into one, in time order; returns the packet count.
    Packets at the same instant keep their files' order (partition by partition)."""
    writer = CaptureWriter(out)
    try:
        streams = [read(p) for p in paths]
        for packet in heapq.merge(*streams, key=lambda p: p.time_ms):
            writer.write(packet)
        return writer.count
    finally:
        writer.close()
