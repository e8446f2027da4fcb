"""The head end's uplink path as a fuzz target (CPython only; docs/fuzzing.md).

A head end and one firmware meter join over a perfect virtual radio; the frames of that
exchange are the seeds. Inputs start with a mode byte: 0 a frame as received, 1 a frame whose
FCS is recomputed, 2 a DATA plaintext sealed with the meter's uplink key and a fresh counter
(authenticated; the buffered readings are then committed, as the flush timer would). The
invariants are those of amitools.ondevice.fuzztargets: nothing but a reason string or None
comes back, no exception escapes `receive` or `flush`, and input not sealed with the
meter's key is never accepted and changes neither the registry (SQLite's change count) nor
the head end's state for the device.

`RekeyingHeadEndTarget` fuzzes the same path during a session rekey's grace period: the head
end has switched to the new keys and still takes uplinks under the old ones; its mode 2
seals with the old keys (what a meter's uplinks in flight carry).
"""

from __future__ import annotations

from ami.link import frame
from ami.meter import Meter
from ami.ports.anchor import MemoryAnchor
from ami.ports.entropy import DeterministicEntropy
from ami.ports.metrology import SimMetrology

from amitools.headend import HeadEnd
from amitools.headend.node import JOIN_WINDOW_MS, Session
from amitools.office.provision import provision
from amitools.ondevice.fuzztargets import MAX_PLAINTEXT, Violation, fix_fcs
from amitools.sim.radio import PERFECT, Medium

T0_MS = 1_767_225_600_000
FIRST_FCNT = 100_000  # above anything the meter itself sent while the seeds were recorded


class HeadEndTarget:
    """HeadEnd.receive with one joined meter (see the module docstring)."""

    name = "headend"

    def __init__(self) -> None:
        self.prov = prov = provision(1, T0_MS // 1000, seed=1)
        kit = prov.devices[0]
        self.he = HeadEnd(prov.headend, prov.registry(), DeterministicEntropy(b"fuzz-he"))
        meter = Meter(kit.storage(), kit.secret, DeterministicEntropy(b"fuzz-m"),
                      SimMetrology(b"m"), anchor=MemoryAnchor())
        medium = Medium(1, PERFECT, self.he.address)
        self.frames: list[bytes] = []
        medium.add_tap(lambda _t, _kind, _node, data: self.frames.append(data))
        medium.attach(self.he, T0_MS)
        medium.attach(meter, T0_MS)
        medium.run(T0_MS + 3 * 3_600_000)  # join, readings, acknowledgements
        self.medium = medium
        self.eui = kit.eui
        self.dev = self.he.devices[kit.eui]
        if self.dev.session is None:
            raise Violation("the fuzz meter did not join")
        self.now = medium.now
        self.fcnt = FIRST_FCNT

    def uplink_session(self) -> Session | None:
        """The session whose keys mode 2 seals with (None once the head end dropped it)."""
        return self.dev.session

    def seeds(self) -> list[bytes]:
        """The recorded frames in modes 0 and 1."""
        return [bytes((mode,)) + f for f in self.frames for mode in (0, 1)]

    def _state(self) -> tuple:
        d, s = self.dev, self.dev.session
        sess = None if s is None else (s.join_nonce, s.k_up, s.down_next, s.down_limit,
                                       s.window.top, s.window.bits)
        # Live rate-limit entries only: expired ones are pruned lazily by any request.
        live = sum(1 for t in d.join_times if t > self.now - JOIN_WINDOW_MS)
        return (self.he.registry.db.total_changes, len(self.he._rows), len(self.he.outbox),
                self.he.readings_stored, d.revoked, d.last_dev_nonce, d.join_nonce, live,
                d.pending is not None, sess, d.previous is not None, d.rekey is not None,
                len(d.seqs))

    def _authentic(self, data: bytes) -> bool:
        for s in (self.dev.session, self.dev.previous):
            try:
                fr = frame.decode(data)
                frame.open_frame(s.k_up, fr)
                return fr.src == self.eui
            except Exception:  # not a frame, or not sealed with this key
                continue
        return False

    def _call(self, func, *args):  # type: ignore[no-untyped-def]
        try:
            return func(*args)
        except Exception as exc:
            raise Violation(f"HeadEnd.{func.__name__} raised {type(exc).__name__}: {exc!r} "
                            f"on {args[0].hex() if args else ''}") from exc

    def run(self, data: bytes) -> None:
        if not data:
            return
        mode, body = data[0] & 3, bytes(data[1:])
        if mode >= 2:
            if not body:
                return
            s = self.uplink_session()
            if s is None:
                # An authenticated STATUS exhausted the downlink counters: the head end
                # dropped the session (the device must rejoin). Start again from a join.
                self.__init__()  # type: ignore[misc]
                s = self.uplink_session()
            self.fcnt += 1
            wire = frame.seal(s.k_up, frame.DATA, self.eui, self.he.address, frame.KEY_SESSION,
                              s.key_gen, self.fcnt, body[:MAX_PLAINTEXT])
            self._check(self._call(self.he.receive, wire, self.now))
            self._call(self.he.flush)
            return
        if mode == 1 and len(body) >= 2:
            body = fix_fcs(body[:-2])
        before = self._state()
        reason = self._check(self._call(self.he.receive, body, self.now))
        if reason is None:
            changed = "accepted"
        elif self._state() != before:
            changed = f"head-end state changed by a {reason} frame"
        else:
            return
        if not self._authentic(body):
            raise Violation(f"unauthenticated input {changed}: {body.hex()}")

    @staticmethod
    def _check(result: object) -> str | None:
        if not (isinstance(result, tuple) and len(result) == 2
                and (result[0] is None or isinstance(result[0], str))):
            raise Violation(f"HeadEnd.receive answered {result!r}")
        return result[0]


class RekeyingHeadEndTarget(HeadEndTarget):
    """The head end between a rekey's switch and the meter's first uplink under the new keys
    (see the module docstring)."""

    name = "headrekey"

    def __init__(self) -> None:
        super().__init__()
        signer = self.prov.signer()
        now_s = self.now // 1000

        def sign(command: int, kind: int, target: bytes, params: tuple) -> bytes:
            return signer.issue(command, kind, target, now_s - 60, now_s + 3600, params)

        self.he.rekey(self.eui, sign)
        self.medium.poke(self.he.address)
        end = self.now + 600_000
        while self.dev.previous is None and self.medium.now < end:
            self.medium.run(self.medium.now + 5)  # stop at the switch, before new uplinks
        if self.dev.previous is None:
            raise Violation("the rekey did not reach its grace period")
        self.now = self.medium.now
        self.old = self.dev.previous

    def seeds(self) -> list[bytes]:
        """Plus what an eavesdropper can forge: an uplink under the new key generation (read
        from the SESSION_START header), its tag made up."""
        s = self.dev.session
        forged = frame.seal(bytes(16), frame.DATA, self.eui, self.he.address,
                            frame.KEY_SESSION, s.key_gen, 1, b"\x01" + bytes(17))
        return [*super().seeds(), b"\x00" + forged, b"\x01" + forged]

    def uplink_session(self) -> Session:
        return self.old
