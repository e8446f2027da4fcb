"""`ami sniff`: decode a capture of the air with the independent construct spec.

Every frame is described by `amitools.reference.spec.describe` (type, flags, addresses, key id and
generation, counter, lengths, join fields); frames the spec rejects say why. The summary
counts frames by type and by rejection, which is what an analyst checks first: what an
eavesdropper sees is headers and ciphertext, never a reading or a key.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from amitools.cliargs import check_capture, existing_file, non_negative_int
from amitools.reference import spec


def run(path: str, limit: int = 0) -> int:
    """Print each frame's description (up to limit, 0 for all) and a summary."""
    check_capture(path)  # UsageError before any output for a file that is not a capture
    kinds: Counter[str] = Counter()
    printed = 0
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            data = bytes.fromhex(rec["frame"])
            try:
                parsed = spec.parse_frame(data)
                kinds[spec.TYPE_NAMES.get(parsed.vt.ftype, "?")] += 1
            except spec.SpecError as exc:
                kinds["rejected:" + exc.reason] += 1
            if not limit or printed < limit:
                print(f"{rec['t']:>15} {rec['from']} {spec.describe(data)}")
                printed += 1
    print("summary:", ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    return 0


def add_parser(sub: Any) -> None:
    """Register `ami sniff`."""
    p = sub.add_parser("sniff", help="decode a capture written by `ami demo --capture`")
    p.add_argument("capture", type=existing_file)
    p.add_argument("--limit", type=non_negative_int, default=0,
                   help="print at most N frames (0: all)")
    p.set_defaults(func=lambda args: run(args.capture, args.limit))
