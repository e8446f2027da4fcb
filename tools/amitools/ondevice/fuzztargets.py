"""Fuzz targets of the firmware's decoders and receive path (docs/fuzzing.md); firmware dialect.

Each target is ``Target.run(data)``: it feeds one input to the code under test and raises
``Violation`` if an invariant breaks:

- no exception escapes other than the typed rejection the decoder documents (FrameError,
  CertificateError, CommandError, RecordCorrupt, KeystoreError); a node (``Meter.receive``)
  raises nothing at all and answers with a reason string or None;
- unauthenticated input changes no state: for the meter, its persistent storage (every
  record but the security event log, whose entries are the documented reaction to bad
  input) and its protocol state (session, counters, replay windows, groups, relay, queue,
  command state) are equal before and after, and it is never accepted.

Inputs of the meter target start with a mode byte: 0 the rest is a frame as received; 1 a
frame whose FCS is recomputed (so the parser gets past the CRC); 2 a DATA plaintext sealed
with the session's downlink key and the next counter (authenticated: only the exception
invariant applies); 3 a COMMAND plaintext sealed with the group key in a group frame
(authenticated likewise). Both the CPython driver (atheris, amitools.measure.fuzz) and the
MicroPython driver (mutation, ``fuzzmp``) call these targets.
"""

import struct

from ami import crypto
from ami import identity as ident
from ami.commands import envelope
from ami.commands.envelope import CommandError
from ami.commands.verify import CommandVerifier, decode_state
from ami.crypto.crc import crc16
from ami.keyschedule import derive_storage_key, group_kek
from ami.keystore import KeystoreError, image
from ami.keystore import decode as decode_keystore
from ami.link import frame, messages
from ami.link.frame import FrameError
from ami.meter import Config, Meter
from ami.ports.anchor import MemoryAnchor
from ami.ports.entropy import DeterministicEntropy
from ami.ports.metrology import SimMetrology
from ami.ports.storage import MemoryStorage
from ami.store.records import RecordCorrupt, RecordStore

EUI, HE = b"\x02AMI\x00\x0f\x00\x01", b"\x02AMI\xff\xff\x00\x01"  # the meter, its head end
SECRET = b"\x5a" * 32
K_UP, K_DOWN, JOIN_NONCE = b"\x11" * 16, b"\x22" * 16, 7  # the session a join left
GROUP = b"GRP\x00\x00\x00\x00\x07"
GROUP_KEY = b"\x33" * 16
SIGNER_ID = 1
SIGNER_PRIVATE = b"\x00" * 31 + b"\x2a"
CA_PRIVATE = b"\x00" * 31 + b"\x17"
T0_MS = 1767225600000
NOW_MS = T0_MS + 3600000
MAX_PLAINTEXT = 221  # the MTU less the secured header, an 8-byte tag and the FCS
EVENT_PREFIX = "ev"  # the security event log's records (amitools: Meter's EventLog prefix)


class Violation(Exception):
    """An invariant broke: the message says which and for what input."""


def fix_fcs(body):
    """body followed by its correct FCS (little-endian CRC-16/KERMIT)."""
    return body + struct.pack("<H", crc16(body))


def _typed(func, data, allowed):
    """Call func(data); a typed rejection is fine, any other exception is a violation."""
    try:
        return func(data)
    except allowed:
        return None
    except Exception as exc:  # what the fuzzer looks for
        raise Violation("%s raised %s: %r on %s" % (func.__name__, type(exc).__name__, exc,
                                                    bytes(data).hex())) from exc


class DecoderTarget:
    """A pure decoder: typed rejections only."""

    def __init__(self, name, funcs, allowed):
        self.name = name
        self._funcs = funcs
        self._allowed = allowed

    def run(self, data):
        if not data:
            return
        # The first byte picks the decoder, so one corpus covers a family of them.
        func = self._funcs[data[0] % len(self._funcs)]
        _typed(func, bytes(data[1:]), self._allowed)


def _frame_fixed(data):
    return frame.decode(fix_fcs(data))


def _messages_any(data):
    return messages.decode(data)


def _messages_down(data):
    return messages.decode(data, down=True)


def _messages_up(data):
    return messages.decode(data, down=False)


class CertificateTarget:
    """decode_certificate, then the full check under a CA key (typed verdicts only)."""

    name = "identity"

    def __init__(self):
        self._ca = crypto.p256_public_key(CA_PRIVATE)

    def run(self, data):
        cert = _typed(ident.decode_certificate, bytes(data), ident.CertificateError)
        verdict = _typed(self._verify, bytes(data), ())
        if verdict not in (None, ident.BAD_CERTIFICATE, ident.EXPIRED_CERTIFICATE):
            raise Violation("verify_certificate answered %r" % (verdict,))
        if verdict is None and cert is None:
            raise Violation("a certificate that does not decode verified: " + data.hex())

    def _verify(self, data):
        return ident.verify_certificate(data, self._ca, now=NOW_MS // 1000)


class EnvelopeTarget:
    """envelope.decode, then the device's checks (section 10.3), which change nothing. The
    first input byte: even, the rest is an envelope; odd, an unsigned body the target signs
    with the meter's signer key (so targets, windows and counters are fuzzed too)."""

    name = "envelope"

    def __init__(self):
        self.storage = MemoryStorage()
        records = RecordStore(self.storage, derive_storage_key(SECRET), DeterministicEntropy(b"e"))
        anchors = {SIGNER_ID: crypto.p256_public_key(SIGNER_PRIVATE)}
        self.verifier = CommandVerifier(records, anchors, EUI, [(GROUP, 0)])

    def run(self, data):
        if not data:
            return
        data = signed(bytes(data[1:])) if data[0] & 1 else bytes(data[1:])
        _typed(envelope.decode, data, CommandError)
        before = self.storage.snapshot()
        result = _typed(self._check, data, ())
        if not isinstance(result, tuple) or len(result) != 2:
            raise Violation("check() answered %r" % (result,))
        if self.storage.snapshot() != before:
            raise Violation("check() changed storage on " + data.hex())

    def _check(self, data):
        return self.verifier.check(data, NOW_MS // 1000)


class RecordTarget:
    """A sealed record slot as found in flash (both slots), and the record payload decoders
    the key store and command state use."""

    name = "records"

    def __init__(self):
        self.storage = MemoryStorage()
        self.records = RecordStore(self.storage, derive_storage_key(SECRET),
                                   DeterministicEntropy(b"r"))

    def run(self, data):
        if not data:
            return
        sel, body = data[0] % 4, bytes(data[1:])
        if sel == 0:
            self.storage.write("fz.a", body)
            _typed(self._read, body, RecordCorrupt)
        elif sel == 1:
            self.storage.write("fz.a", body)
            self.storage.write("fz.b", bytes(reversed(body)))
            _typed(self._read, body, RecordCorrupt)
        elif sel == 2:
            _typed(decode_keystore, body, KeystoreError)
        else:
            _typed(decode_state, body, RecordCorrupt)

    def _read(self, _data):
        return self.records.read("fz")


def provision(storage, session=True):
    """A meter's flash as provisioning and (session) a completed join leave it (firmware
    code only): key store with a command signer, session, counters."""
    records = RecordStore(storage, derive_storage_key(SECRET), DeterministicEntropy(b"p"))
    records.write("keystore", image(
        EUI, bytes(116), crypto.p256_public_key(CA_PRIVATE), HE,
        crypto.p256_public_key(b"\x77" * 32), b"\x44" * 16, b"\x55" * 32,
        ((SIGNER_ID, crypto.p256_public_key(SIGNER_PRIVATE)),),
    ))
    if session:
        records.write("session", struct.pack(">I", JOIN_NONCE) + K_UP + K_DOWN)
        records.write("txctr", struct.pack(">I", 0))
        records.write("rxfloor", b"")
    return storage


def down_frame(plaintext, fcnt):
    """A downlink sealed with the session key (what the head end sends)."""
    return frame.seal(K_DOWN, frame.DATA, HE, EUI, frame.KEY_SESSION, JOIN_NONCE & 0xFF, fcnt,
                      plaintext, True)


def group_frame(plaintext, fcnt):
    return frame.seal(GROUP_KEY, frame.DATA, HE, GROUP, frame.KEY_GROUP, 1, fcnt, plaintext,
                      True, True)


def signed(body):
    """body (an unsigned envelope, or anything) signed by the meter's command signer, so that
    the checks after the signature see fuzzed fields; body itself if it is no envelope body."""
    try:
        return envelope.sign(body, SIGNER_PRIVATE)
    except CommandError:
        return body


def authentic(data):
    """True if data is a frame sealed with the fuzz meter's session or group key."""
    try:
        fr = frame.decode(data)
        frame.open_frame(GROUP_KEY if fr.group else K_DOWN, fr)
        return True
    except Exception:  # not a frame, or not sealed with those keys
        return False


def signed_command(command, params=(), counter=1, target=EUI, kind=0):
    """An envelope the meter's signer would accept (valid now, for this meter or group)."""
    body = envelope.encode(command, kind, target, counter, NOW_MS // 1000 - 60,
                           NOW_MS // 1000 + 3600, SIGNER_ID, params)
    return envelope.sign(body, SIGNER_PRIVATE)


def meter_state(m):
    """Everything of a meter that unauthenticated input must leave alone, but its flash."""
    s = m._session
    sess = None
    if s is not None:
        w = s.window
        sess = (s.key_gen, s.k_up, s.k_down, w.top, w.bits, w.floor, s.tx._next, s.tx._limit,
                s.rx.floor)
    wake = list(m._wake.items())
    wake.sort()
    return (m.state, sess, m._pending is not None, m.relay.state, len(m.queue), m.next_seq,
            m.cfg.interval_s, m.last_join_nonce, tuple(m.groups.ids()),
            m.commands.verifier.groups, tuple(wake))


def _persistent(storage):
    out = {}
    snap = storage.snapshot()
    for name in snap:
        if not name.startswith(EVENT_PREFIX):
            out[name] = snap[name]
    return out


class MeterTarget:
    """Meter.receive on a joined meter that is a member of a group (see the module note)."""

    name = "meter"

    def __init__(self):
        self._build()

    def _renew(self):
        """A fresh meter when an authentic command took this one out of its session
        (rejoin, decommission): unauthenticated input is only judged against a joined one."""
        if self.meter.state != "active":
            self._build()

    def _build(self):
        self.storage = provision(MemoryStorage())
        self.meter = Meter(self.storage, SECRET, DeterministicEntropy(b"fz"), SimMetrology(b"m"),
                           Config(), anchor=MemoryAnchor())
        self.meter.start(T0_MS)
        self.fcnt = 1
        self.group_fcnt = 1
        wrapped = crypto.aes_key_wrap(group_kek(K_DOWN), GROUP_KEY)
        reason, _ = self._authentic(messages.encode_group_key(GROUP, 1, wrapped))
        if reason is not None or self.meter.groups.current(GROUP) is None:
            raise Violation("the fuzz meter did not join its group: %r" % (reason,))

    def _authentic(self, plaintext):
        self.fcnt += 1
        return self.meter.receive(down_frame(plaintext, self.fcnt), NOW_MS)

    def run(self, data):
        if not data:
            return
        mode, body = data[0] & 3, bytes(data[1:])
        if mode == 2:
            if body[:1] == b"\x08":  # a COMMAND: its envelope signed, to reach execution
                body = b"\x08" + signed(body[1:])
            body = body[:MAX_PLAINTEXT]
            if not body:
                return
            self.fcnt += 1
            self._receive(down_frame(body, self.fcnt), body)
            self._renew()
            return
        if mode == 3:
            self.group_fcnt += 1
            env = signed(body)
            if not messages.ENVELOPE_MIN <= len(env) <= messages.ENVELOPE_MAX:
                env = bytes(messages.ENVELOPE_MIN)
            self._receive(group_frame(messages.encode_command(env), self.group_fcnt), body)
            self._renew()
            return
        self._unauthenticated(body, mode)

    def _unauthenticated(self, body, mode):
        """Modes 0 and 1: a frame nobody sealed with the meter's keys changes nothing."""
        if mode == 1 and len(body) >= 2:
            body = fix_fcs(body[:-2])
        flash = _persistent(self.storage)
        state = meter_state(self.meter)
        reason = self._receive(body, body)
        if reason is None:
            changed = "accepted"
        elif _persistent(self.storage) != flash:
            changed = "flash changed by a %s frame" % reason
        elif meter_state(self.meter) != state:
            changed = "meter state changed by a %s frame" % reason
        else:
            return
        # Only a frame sealed with a key the meter holds may do that (a seed's, or the
        # fuzzer's copy of one with a counter still unused).
        if not authentic(body):
            raise Violation("unauthenticated input %s: %s" % (changed, body.hex()))

    def _receive(self, wire, data):
        try:
            result = self.meter.receive(wire, NOW_MS)
        except Exception as exc:
            raise Violation("Meter.receive raised %s: %r on %s" % (type(exc).__name__, exc,
                                                                   data.hex())) from exc
        if not isinstance(result, tuple) or len(result) != 2 or not (
            result[0] is None or isinstance(result[0], str)
        ):
            raise Violation("Meter.receive answered %r" % (result,))
        return result[0]


class JoiningMeterTarget(MeterTarget):
    """Meter.receive on a meter waiting for its JOIN_RESPONSE: nothing the fuzzer sends is
    signed by the head end, so nothing may be accepted or change state (modes 0 and 1)."""

    name = "meterjoin"

    def _build(self):
        self.storage = provision(MemoryStorage(), session=False)
        self.meter = Meter(self.storage, SECRET, DeterministicEntropy(b"fj"), SimMetrology(b"m"),
                           Config(), anchor=MemoryAnchor())
        self.meter.start(T0_MS)
        self.request = self.meter.tick(self.meter.next_wakeup())
        if self.meter.state != "joining" or len(self.request) != 1:
            raise Violation("the fuzz meter did not send its JOIN_REQUEST")

    def run(self, data):
        if data:
            self._unauthenticated(bytes(data[1:]), data[0] & 1)


def targets():
    """name -> target factory, every firmware target (both runtimes)."""
    return {
        "frame": lambda: DecoderTarget("frame", (frame.decode, _frame_fixed), FrameError),
        "messages": lambda: DecoderTarget(
            "messages", (_messages_any, _messages_down, _messages_up), FrameError),
        "join": lambda: DecoderTarget("join", (messages.decode_join_request,
                                               messages.decode_join_response,
                                               messages.decode_join_confirm), FrameError),
        "identity": CertificateTarget,
        "envelope": EnvelopeTarget,
        "records": RecordTarget,
        "meter": MeterTarget,
        "meterjoin": JoiningMeterTarget,
    }


def seeds():
    """Inputs of every target built with firmware code alone (the CPython driver adds frames
    of a fleet run): name -> list of bytes."""
    down = [messages.encode_ack([0, 1]), messages.encode_get(1, messages.REG_INTERVAL),
            messages.encode_set(2, messages.REG_INTERVAL, 900), messages.encode_events_ack(3),
            messages.encode_session_start(JOIN_NONCE),
            messages.encode_group_key(GROUP, 2, b"\x01" * 24)]
    up = [messages.encode_readings([(1, 2, 3), (2, 3, 4)]), messages.encode_status(1, 64),
          messages.encode_response(1, 0, 2, 900), messages.encode_command_result(1, 1, 0, 1, 0),
          messages.encode_events([(1, 2, 3, 2, 0)])]
    cmds = [signed_command(envelope.DISCONNECT), signed_command(envelope.REJOIN, (0,), 2),
            signed_command(envelope.LOAD_LIMIT, (5000, 60, 1), 3),
            signed_command(envelope.NOTIFY, (b"\x01" * 32, NOW_MS // 1000 + 60), 4),
            signed_command(envelope.KEY_CHANGE, (1, 0, 9, 60, b"\x01" * 40), 6),
            signed_command(envelope.KEY_CHANGE, (2, 0, 2, 60, GROUP + b"\x02" * 24), 7),
            signed_command(envelope.KEY_CHANGE, (3, 0, 2, 60, b"\x03" * 24), 8),
            signed_command(envelope.KEY_CHANGE,
                           (4, 2, 1, 60, ident.compress_point(crypto.p256_public_key(
                               b"\x08" * 32))), 9),
            signed_command(envelope.DECOMMISSION, (), 10),
            signed_command(envelope.ARM_RECONNECT, (), 5, GROUP, 1)]
    kp = crypto.p256_public_key(b"\x66" * 32)
    cert = ident.make_certificate(CA_PRIVATE, 1, ident.ROLE_METER, EUI, 0, 0xFFFFFFFF,
                                  kp).to_bytes()
    jr = messages.encode_join_request(1, ident.compress_point(kp), b"\x02" * 8)
    jresp = messages.encode_join_response(2, ident.compress_point(kp), b"\x03" * 64)
    jconf = messages.encode_join_confirm(cert, b"\x04" * 64, b"\x05" * 16)
    frames = [down_frame(p, 1) for p in down] + [group_frame(messages.encode_command(cmds[-1]), 1)]
    frames += [frame.encode(frame.JOIN_REQUEST, EUI, HE, jr),
               frame.encode(frame.JOIN_RESPONSE, HE, EUI, jresp, down=True),
               frame.encode(frame.JOIN_CONFIRM, EUI, HE, jconf)]
    storage = provision(MemoryStorage())
    slots = [storage.read(n) for n in storage.names()]
    ks = RecordStore(storage, derive_storage_key(SECRET), None).read("keystore")
    meter = [b"\x00" + f for f in frames] + [b"\x01" + f for f in frames]
    meter += [b"\x02" + p for p in down + [messages.encode_command(c) for c in cmds]]
    meter += [b"\x02\x08" + c[:-64] for c in cmds] + [b"\x03" + cmds[-1][:-64]]
    return {
        "frame": [b"\x00" + f for f in frames] + [b"\x01" + f for f in frames],
        "messages": [bytes((i,)) + p for i in range(3) for p in down + up],
        "join": [b"\x00" + jr, b"\x01" + jresp, b"\x02" + jconf],
        "identity": [cert],
        "envelope": [b"\x00" + c for c in cmds] + [b"\x01" + c[:-64] for c in cmds],
        "records": [b"\x00" + s for s in slots] + [b"\x02" + ks,
                                                   b"\x03\x01\x00" + bytes(13)],
        "meter": meter,
        "meterjoin": [bytes((m,)) + f for f in frames for m in (0, 1)
                      if f[0] & 0x0F == frame.JOIN_RESPONSE],
    }
