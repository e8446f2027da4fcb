"""Power cuts on an emulated board at random instants, and the invariants of `ami faults`
checked from outside the board (docs/faults.md, "Power cuts on the emulated board").

A cut is armed on a random request: the request is sent, the host waits a random time
within about how long that kind of request takes the board, then QEMU's CPU is stopped
wherever it is, the flash partitions are saved (`pmemsave`) and the board boots from them
(amitools.sim.hil.QemuMeter.reboot). The interrupted request gets no answer; the board's
boot frames go on air instead.

Checked on every frame the board sends, cut or not, and around every cut:
- no counter or nonce reused: every uplink's frame counter is new under its key
  generation; every JOIN_REQUEST's DevNonce is above all before it;
- no key lost or rolled back: a board with a session before a cut still has it after
  (unless the cut request was a downlink, which may carry a key change), and it never
  comes back unprovisioned or counting a rollback or a corrupt record;
- relay as last commanded: after the reboot the relay is where it was before the cut,
  or where the interrupted request could have moved it;
- no acknowledged reading lost: the next reading seq never goes back, and the fleet's
  report counts every reading of the period delivered (`readings.lost`).
"""

from __future__ import annotations

import random
from typing import Any

from ami.link import frame, messages
from ami.relay import ARMED, CONNECTED, DISCONNECTED, STATE_NAMES, TRIPPED

# Stats of a board that found its records rolled back or damaged after a boot.
BAD_BOOT = ("record_rollback", "record_corrupt")
MAX_LISTED = 20


def _name(relay: int | None) -> str:
    return "none" if relay is None else STATE_NAMES[relay]


class PowerCuts:
    """Chooses the cut requests and checks the invariants; `report()` sums them up."""

    def __init__(self, rate: float, seed: int) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("the cut rate is a probability per request")
        self.rate = rate
        self.rng = random.Random(seed)
        self.cuts = 0
        self.by_op: dict[str, int] = {}
        self.violations: list[str] = []
        self.dev_nonce: int | None = None
        self.fcnts: dict[int, set[int]] = {}
        self.frames = 0
        self._took: dict[bytes, float] = {}  # op -> seconds a request last took

    def arm(self, op: bytes) -> float | None:
        """Whether to cut this request; if so, after how many seconds."""
        if op not in (b"S", b"R", b"T") or self.rng.random() >= self.rate:
            return None
        return self.rng.uniform(0.0, 1.2 * self._took.get(op, 0.05))

    def took(self, op: bytes, seconds: float) -> None:
        """How long an uncut request of this kind took the board."""
        self._took[op] = seconds

    def _bad(self, what: str) -> None:
        self.violations.append(what)

    def uplinks(self, frames: list[bytes]) -> None:
        """Check the frames the board put on air for reused counters and nonces."""
        for data in frames:
            self.frames += 1
            try:
                fr = frame.decode(data)
            except frame.FrameError:
                self._bad("board sent a frame that does not decode")
                continue
            if fr.ftype == frame.JOIN_REQUEST:
                nonce = messages.decode_join_request(fr.payload)[0]
                if self.dev_nonce is not None and nonce <= self.dev_nonce:
                    self._bad(f"DevNonce {nonce} on air after {self.dev_nonce}")
                self.dev_nonce = nonce if self.dev_nonce is None else max(nonce, self.dev_nonce)
            elif fr.ftype == frame.DATA:
                seen = self.fcnts.setdefault(fr.key_gen, set())
                if fr.fcnt in seen:
                    self._bad(f"uplink fcnt {fr.fcnt} reused under key generation {fr.key_gen}")
                seen.add(fr.fcnt)

    def after_cut(self, op: bytes, before: dict, after: dict) -> None:
        """Compare the board's state (Q replies) before the cut request and after the boot."""
        self.cuts += 1
        name = op.decode()
        self.by_op[name] = self.by_op.get(name, 0) + 1
        where = f"cut #{self.cuts} in {name}"
        stats = after.get("stats", {})
        for reason in BAD_BOOT:
            if stats.get(reason):
                self._bad(f"{where}: the board counts {reason} after the boot")
        if after.get("state") == "unprovisioned" and before.get("state") != "unprovisioned":
            self._bad(f"{where}: the key store is gone after the boot")
        if before.get("state") == "active" and after.get("state") != "active" and op != b"R":
            self._bad(f"{where}: session lost ({after.get('state')} after the boot)")
        if after.get("next_seq", 0) < before.get("next_seq", 0):
            self._bad(f"{where}: next reading seq {after.get('next_seq')} after the boot, "
                      f"{before.get('next_seq')} before")
        relay_before, relay_after = before.get("relay"), after.get("relay")
        if relay_before is None:  # before the first start: no relay state yet
            return
        allowed = {relay_before}
        if op == b"R":  # a command in flight: executed or not
            allowed |= {DISCONNECTED, ARMED, CONNECTED}
        elif op == b"T" and relay_before in (ARMED, TRIPPED):  # a restore that was due
            allowed.add(CONNECTED)
        if relay_after not in allowed:
            self._bad(f"{where}: relay {_name(relay_after)} after the boot, "
                      f"{_name(relay_before)} before")

    def report(self) -> dict[str, Any]:
        """Cuts, frames checked and the violations (the first MAX_LISTED listed)."""
        return {"rate": self.rate, "cuts": self.cuts,
                "by_request": dict(sorted(self.by_op.items())),
                "frames_checked": self.frames, "violation_count": len(self.violations),
                "violations": self.violations[:MAX_LISTED]}
