"""`ami sniff`: decode a capture of the air with the independent construct spec.

The capture is the pcap `ami demo --capture` writes (docs/captures.md). Every frame is
described by `amitools.reference.spec.describe` (type, flags, addresses, key id and
generation, counter, lengths, join fields), after its pseudo-header: time, partition,
transmitter and how it got on the air (injected by the attacker, jammed or replaced by an
interceptor); frames the spec rejects say why. The summary counts frames by type and by
rejection, which is what an analyst checks first: what an eavesdropper sees is headers and
ciphertext, never a reading or a key.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from amitools.cliargs import existing_file, non_negative_int
from amitools.reference import spec
from amitools.sim import capture


def _how(flags: int) -> str:
    names = [n for bit, n in ((capture.F_INJECTED, "injected"), (capture.F_JAMMED, "jammed"),
                              (capture.F_MODIFIED, "modified")) if flags & bit]
    return ",".join(names) or "air"


def run(path: str, limit: int = 0) -> int:
    """Print each frame's description (up to limit, 0 for all) and a summary; 2 with a
    one-line error if the file is not a capture."""
    kinds: Counter[str] = Counter()
    how: Counter[str] = Counter()
    printed = 0
    try:
        for p in capture.read(path):
            try:
                parsed = spec.parse_frame(p.frame)
                kinds[spec.TYPE_NAMES[parsed.vt.ftype]] += 1
            except spec.SpecError as exc:
                kinds["rejected:" + exc.reason] += 1
            how[_how(p.flags)] += 1
            if not limit or printed < limit:
                print(f"{p.time_ms:>15} w{p.partition} {p.node.hex()} {_how(p.flags):8} "
                      f"{spec.describe(p.frame)}")
                printed += 1
    except (OSError, capture.CaptureError) as exc:
        print(f"ami sniff: error: {path}: {exc}", file=sys.stderr)
        return 2
    print("summary:", ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print("sources:", ", ".join(f"{k} {n}" for k, n in sorted(how.items())))
    return 0


def add_parser(sub: Any) -> None:
    """Register `ami sniff`."""
    p = sub.add_parser("sniff", help="decode a pcap capture written by `ami demo --capture`")
    p.add_argument("capture", type=existing_file)
    p.add_argument("--limit", type=non_negative_int, default=0,
                   help="print at most N frames (0: all)")
    p.set_defaults(func=lambda args: run(args.capture, args.limit))
