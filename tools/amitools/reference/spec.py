"""Declarative spec of the AMI link formats (docs/protocol.md) in ``construct``.

This is an independent second implementation of the protocol's byte formats: it shares no
code with the firmware codec (``ami.link``) so that property tests can prove the two agree
(host_tests/cpython/test_spec_equivalence.py). It is also what the sniffer uses to print
frames. It knows formats only, no keys: secured payloads stay ciphertext.

A frame is parsed in two declarative stages, because the protocol drops a frame failing its
CRC before anything else is parsed: ``ENVELOPE`` (size bounds, body, FCS checked by
``Checksum``), then ``FRAME_BODY`` (every field rule as a ``Check``). Errors map to a
:class:`SpecError` whose ``reason`` is a protocol.md section 6 name.
"""

from __future__ import annotations

from typing import Any

from construct import (
    Array,
    BitsInteger,
    BitStruct,
    Bytes,
    Check,
    Checksum,
    ChecksumError,
    Computed,
    ConstructError,
    Container,
    Error,
    FixedSized,
    Flag,
    GreedyBytes,
    If,
    Int8ub,
    Int16ub,
    Int16ul,
    Int32ub,
    Int64ub,
    Nibble,
    Pass,
    Rebuild,
    Struct,
    Switch,
    Terminated,
    len_,
    this,
)

VERSION = 1
JOIN_REQUEST, JOIN_RESPONSE, JOIN_CONFIRM, DATA = 1, 2, 3, 4
TYPE_NAMES = {
    JOIN_REQUEST: "JOIN_REQUEST",
    JOIN_RESPONSE: "JOIN_RESPONSE",
    JOIN_CONFIRM: "JOIN_CONFIRM",
    DATA: "DATA",
}
MTU = 255
HEADER_LEN = 18
SECURED_HEADER_LEN = 24
FCS_LEN = 2
MIN_FRAME = HEADER_LEN + FCS_LEN
TAG_LENS = (8, 12, 16)
KEY_SESSION, KEY_GROUP = 0, 1
JOIN_PAYLOAD_LENS = {JOIN_REQUEST: 45, JOIN_RESPONSE: 101, JOIN_CONFIRM: 196}

(READINGS, ACK, GET, SET, RESPONSE, SESSION_START, STATUS, COMMAND, COMMAND_RESULT, EVENTS,
 EVENTS_ACK, GROUP_KEY) = range(1, 13)
MESSAGE_NAMES = {
    READINGS: "READINGS",
    ACK: "ACK",
    GET: "GET",
    SET: "SET",
    RESPONSE: "RESPONSE",
    SESSION_START: "SESSION_START",
    STATUS: "STATUS",
    COMMAND: "COMMAND",
    COMMAND_RESULT: "COMMAND_RESULT",
    EVENTS: "EVENTS",
    EVENTS_ACK: "EVENTS_ACK",
    GROUP_KEY: "GROUP_KEY",
}
DOWNLINK_MESSAGES = frozenset((ACK, GET, SET, SESSION_START, COMMAND, EVENTS_ACK, GROUP_KEY))
ENVELOPE_MIN, ENVELOPE_MAX = 89, 160  # a signed command envelope (section 10.1)
MAX_ITEMS = 13
MAX_STATUS = 3  # 0 ok, 1 unknown register, 2 read-only, 3 bad value

CERT_LEN = 116
ROLE_NAMES = {1: "meter", 2: "hub", 3: "headend"}


class SpecError(ValueError):
    """Input that breaks the spec; ``reason`` is ``crc``, ``malformed`` or ``bad_certificate``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def crc16_kermit(data: bytes) -> int:
    """CRC-16/KERMIT bit by bit (poly 0x1021 reflected, init 0, no final xor).

    Deliberately not the firmware's table-driven code: the two are cross-checked.
    """
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


# --- Frame (section 1) --------------------------------------------------------------------

ENVELOPE = Struct(
    Check(lambda c: MIN_FRAME <= c._params.size <= MTU),
    "body" / Bytes(this._params.size - FCS_LEN),
    "fcs" / Checksum(Int16ul, crc16_kermit, this.body),  # little-endian, as 802.15.4 sends it
    Terminated,
)

VT = BitStruct("version" / Nibble, "ftype" / Nibble)

FLAGS = BitStruct(
    "reserved" / BitsInteger(3),  # bits 7..5
    "tag_code" / BitsInteger(2),  # bits 4..3
    "down" / Flag,  # bit 2
    "group" / Flag,  # bit 1
    "secured" / Flag,  # bit 0
)

SECURITY = Struct("key_id" / Int8ub, "key_gen" / Int8ub, "fcnt" / Int32ub)


def _payload_len(c: Any) -> int:
    if c._parsing:
        return c._params.body_len - c.header_len - c.tag_len
    return len(c.payload)


def _payload_len_ok(c: Any) -> bool:
    if c.flags.secured:
        return c.payload_len >= 1  # a DATA plaintext starts with its message type
    return c.payload_len == JOIN_PAYLOAD_LENS[c.vt.ftype]


FRAME_BODY = Struct(
    "vt" / VT,
    Check(this.vt.version == VERSION),
    Check(lambda c: c.vt.ftype in TYPE_NAMES),
    "flags" / FLAGS,
    Check(this.flags.reserved == 0),
    Check(this.flags.tag_code != 3),
    Check(lambda c: c.flags.secured == (c.vt.ftype == DATA)),
    # Unsecured (join) frames: no tag, unicast, DOWN exactly for JOIN_RESPONSE.
    Check(lambda c: c.flags.secured or c.flags.tag_code == 0),
    Check(lambda c: c.flags.secured or not c.flags.group),
    Check(lambda c: c.flags.secured or c.flags.down == (c.vt.ftype == JOIN_RESPONSE)),
    # Group traffic only flows head end -> devices.
    Check(lambda c: not c.flags.group or c.flags.down),
    "src" / Bytes(8),
    "dst" / Bytes(8),
    "security" / If(this.flags.secured, SECURITY),
    Check(lambda c: not c.flags.secured or c.security.key_id in (KEY_SESSION, KEY_GROUP)),
    Check(lambda c: not c.flags.secured or c.flags.group == (c.security.key_id == KEY_GROUP)),
    "header_len" / Computed(lambda c: SECURED_HEADER_LEN if c.flags.secured else HEADER_LEN),
    "tag_len" / Computed(lambda c: TAG_LENS[c.flags.tag_code] if c.flags.secured else 0),
    "payload_len" / Computed(_payload_len),
    Check(_payload_len_ok),
    "payload" / Bytes(this.payload_len),
    "tag" / If(this.flags.secured, Bytes(this.tag_len)),
    Terminated,
)


def parse_frame(data: bytes | bytearray | memoryview) -> Container:
    """Parse a whole frame (FCS included) into FRAME_BODY's Container plus ``raw`` (the frame
    without FCS), ``header`` (the CCM associated data) and ``fcs``.

    Raises SpecError: ``malformed`` for a size outside [20, 255], then ``crc``, then
    ``malformed`` for any field rule.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SpecError("malformed", "not bytes")
    data = bytes(data)
    try:
        env = ENVELOPE.parse(data, size=len(data))
    except ChecksumError as exc:
        raise SpecError("crc") from exc
    except ConstructError as exc:
        raise SpecError("malformed", str(exc)) from exc
    try:
        body = FRAME_BODY.parse(env.body, body_len=len(env.body))
    except ConstructError as exc:
        raise SpecError("malformed", str(exc)) from exc
    body.raw = env.body
    body.header = env.body[: body.header_len]
    body.fcs = env.fcs
    return body


def build_frame(
    ftype: int,
    src: bytes,
    dst: bytes,
    payload: bytes,
    *,
    down: bool = False,
    group: bool = False,
    key_id: int | None = None,
    key_gen: int = 0,
    fcnt: int = 0,
    tag: bytes = b"",
) -> bytes:
    """Bytes of a frame, FCS included. A frame is secured when key_id is given; for a
    secured frame payload is the ciphertext and tag the CCM tag (this module does no crypto).

    Raises SpecError('malformed') for anything the spec would not accept.
    """
    secured = key_id is not None
    if secured and len(tag) not in TAG_LENS or not secured and tag:
        raise SpecError("malformed", "tag length")
    fields = Container(
        vt=Container(version=VERSION, ftype=ftype),
        flags=Container(
            reserved=0,
            tag_code=TAG_LENS.index(len(tag)) if secured else 0,
            down=bool(down),
            group=bool(group),
            secured=secured,
        ),
        src=src,
        dst=dst,
        security=Container(key_id=key_id, key_gen=key_gen, fcnt=fcnt) if secured else None,
        payload=payload,
        tag=tag if secured else None,
    )
    try:
        body = FRAME_BODY.build(fields)
        return ENVELOPE.build(Container(body=body, fcs=None), size=len(body) + FCS_LEN)
    except (ConstructError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise SpecError("malformed", str(exc)) from exc


# --- Join payloads (section 3) --------------------------------------------------------------

JOIN_REQUEST_PAYLOAD = Struct(
    "dev_nonce" / Int32ub,
    "g_x" / Bytes(33),
    "mic" / Bytes(8),  # AES-CMAC(K_jr, frame up to the mic)[:8]
    Terminated,
)
JOIN_RESPONSE_PAYLOAD = Struct(
    "join_nonce" / Int32ub, "g_y" / Bytes(33), "sig_he" / Bytes(64), Terminated
)
JOIN_CONFIRM_PAYLOAD = Struct(
    "certificate" / Bytes(CERT_LEN), "sig_d" / Bytes(64), "mac" / Bytes(16), Terminated
)
JOIN_PAYLOADS = {
    JOIN_REQUEST: JOIN_REQUEST_PAYLOAD,
    JOIN_RESPONSE: JOIN_RESPONSE_PAYLOAD,
    JOIN_CONFIRM: JOIN_CONFIRM_PAYLOAD,
}


def parse_join(ftype: int, payload: bytes) -> Container:
    """Fields of a join payload (points and signatures unchecked); SpecError('malformed')."""
    if ftype not in JOIN_PAYLOADS or not isinstance(payload, bytes | bytearray | memoryview):
        raise SpecError("malformed", "not a join payload")
    try:
        return JOIN_PAYLOADS[ftype].parse(bytes(payload))
    except ConstructError as exc:
        raise SpecError("malformed", str(exc)) from exc


def build_join(ftype: int, **fields: Any) -> bytes:
    """A join payload from its fields (names as in JOIN_PAYLOADS)."""
    if ftype not in JOIN_PAYLOADS:
        raise SpecError("malformed", "not a join type")
    try:
        return JOIN_PAYLOADS[ftype].build(fields)
    except (ConstructError, TypeError, ValueError, KeyError) as exc:
        raise SpecError("malformed", str(exc)) from exc


# --- DATA messages (section 4) --------------------------------------------------------------


def _count_ok(c: Any) -> bool:
    return 1 <= c.count <= MAX_ITEMS


READING = Struct("seq" / Int32ub, "time" / Int32ub, "wh" / Int64ub)
EVENT = Struct(
    "seq" / Int32ub, "time" / Int32ub, "kind" / Int8ub, "severity" / Int8ub, "detail" / Int16ub
)


def _envelope_len_ok(c: Any) -> bool:
    return ENVELOPE_MIN <= len(c.envelope) <= ENVELOPE_MAX

MESSAGE = Struct(
    "msg_type" / Int8ub,
    "body"
    / Switch(
        this.msg_type,
        {
            READINGS: Struct(
                "count" / Rebuild(Int8ub, len_(this.readings)),
                Check(_count_ok),
                "readings" / Array(this.count, READING),
            ),
            ACK: Struct(
                "count" / Rebuild(Int8ub, len_(this.seqs)),
                Check(_count_ok),
                "seqs" / Array(this.count, Int32ub),
            ),
            GET: Struct("req_id" / Int16ub, "register" / Int8ub),
            SET: Struct("req_id" / Int16ub, "register" / Int8ub, "value" / Int32ub),
            RESPONSE: Struct(
                "req_id" / Int16ub,
                "status" / Int8ub,
                Check(this.status <= MAX_STATUS),
                "register" / Int8ub,
                "value" / Int32ub,
            ),
            SESSION_START: Struct("join_nonce" / Int32ub),
            STATUS: Struct("reason" / Int8ub, "rx_floor" / Int32ub),
            COMMAND: Struct("envelope" / GreedyBytes, Check(_envelope_len_ok)),
            COMMAND_RESULT: Struct(
                "counter" / Int32ub,
                "command" / Int8ub,
                "status" / Int8ub,
                "relay_state" / Int8ub,
                "reason" / Int8ub,
            ),
            EVENTS: Struct(
                "count" / Rebuild(Int8ub, len_(this.events)),
                Check(_count_ok),
                "events" / Array(this.count, EVENT),
            ),
            EVENTS_ACK: Struct("upto_seq" / Int32ub),
            GROUP_KEY: Struct("group_id" / Bytes(8), "key_gen" / Int8ub, "wrapped" / Bytes(24),
                              "next_fcnt" / Int32ub, "last_counter" / Int32ub),
        },
        default=Error,
    ),
    Terminated,
)


def parse_message(plaintext: bytes) -> Container:
    """A DATA plaintext as Container(msg_type, body); SpecError('malformed')."""
    if not isinstance(plaintext, bytes | bytearray | memoryview):
        raise SpecError("malformed", "not bytes")
    try:
        return MESSAGE.parse(bytes(plaintext))
    except ConstructError as exc:
        raise SpecError("malformed", str(exc)) from exc


def build_message(msg_type: int, **body: Any) -> bytes:
    """A DATA plaintext; body fields named as in MESSAGE (readings: dicts seq/time/wh)."""
    try:
        return MESSAGE.build(Container(msg_type=msg_type, body=Container(body)))
    except (ConstructError, TypeError, ValueError, KeyError) as exc:
        raise SpecError("malformed", str(exc)) from exc


# --- Certificate (section 2) ----------------------------------------------------------------

CERTIFICATE = Struct(
    "version" / Int8ub,
    Check(this.version == 1),
    "role" / Int8ub,
    Check(lambda c: c.role in ROLE_NAMES),
    "eui" / Bytes(8),
    "not_before" / Int32ub,
    "not_after" / Int32ub,
    Check(this.not_before <= this.not_after),
    "public_key" / Bytes(33),  # compressed SEC1 point
    Check(lambda c: c.public_key[0] in (2, 3)),
    "issuer_id" / Int8ub,
    "signature" / Bytes(64),  # r || s over "AMI-CERT-1" || bytes 0..51
    Terminated,
)


def parse_certificate(data: bytes) -> Container:
    """Certificate fields (structure only, no signature check); SpecError('bad_certificate')."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SpecError("bad_certificate", "not bytes")
    try:
        return CERTIFICATE.parse(bytes(data))
    except ConstructError as exc:
        raise SpecError("bad_certificate", str(exc)) from exc


def build_certificate(**fields: Any) -> bytes:
    """116 certificate bytes from its fields (version defaults to 1)."""
    fields.setdefault("version", 1)
    try:
        return CERTIFICATE.build(fields)
    except (ConstructError, TypeError, ValueError, KeyError) as exc:
        raise SpecError("bad_certificate", str(exc)) from exc


# --- Signed command envelope (section 10) --------------------------------------------------

CMD_DISCONNECT, CMD_ARM_RECONNECT, CMD_RECONNECT, CMD_LOAD_LIMIT, CMD_NOTIFY = range(1, 6)
CMD_KEY_CHANGE, CMD_FIRMWARE_ACTIVATE = 6, 7  # FIRMWARE_ACTIVATE: no parameter layout yet
CMD_REJOIN, CMD_DECOMMISSION = 8, 9
COMMAND_NAMES = {
    CMD_DISCONNECT: "DISCONNECT",
    CMD_ARM_RECONNECT: "ARM_RECONNECT",
    CMD_RECONNECT: "RECONNECT",
    CMD_LOAD_LIMIT: "LOAD_LIMIT",
    CMD_NOTIFY: "NOTIFY",
    CMD_KEY_CHANGE: "KEY_CHANGE",
    CMD_REJOIN: "REJOIN",
    CMD_DECOMMISSION: "DECOMMISSION",
}
# KEY_CHANGE kinds (section 13) and the length of their key material.
KC_SESSION, KC_GROUP, KC_ROOT, KC_SIGNER = 1, 2, 3, 4
KEY_CHANGE_KINDS = {KC_SESSION: "session", KC_GROUP: "group", KC_ROOT: "root", KC_SIGNER: "signer"}
KEY_CHANGE_MATERIAL = {
    KC_SESSION: 40,  # K_up || K_down wrapped (RFC 3394) under the rekey KEK
    KC_GROUP: 32,  # group id (8) || group key wrapped under the group KEK (24)
    KC_ROOT: 24,  # root key wrapped under the root KEK
    KC_SIGNER: 33,  # compressed SEC1 public key of the new signer
}
KEY_CHANGE_HEADER = 10  # kind, key id, generation, grace_s
REJOIN_COMPROMISE = 0x01  # the only REJOIN flag
# Parameter length n per command (section 10.2); a code missing here is malformed. KEY_CHANGE's
# depends on its kind: KEY_CHANGE_HEADER + KEY_CHANGE_MATERIAL[kind].
COMMAND_PARAM_LENS: dict[int, int | None] = {
    CMD_DISCONNECT: 0,
    CMD_ARM_RECONNECT: 0,
    CMD_RECONNECT: 0,
    CMD_LOAD_LIMIT: 7,
    CMD_NOTIFY: 36,
    CMD_KEY_CHANGE: None,
    CMD_REJOIN: 1,
    CMD_DECOMMISSION: 0,
}
DEVICE_ONLY_COMMANDS = frozenset((CMD_KEY_CHANGE, CMD_DECOMMISSION))  # never to a group
TARGET_DEVICE, TARGET_GROUP = 0, 1
TARGET_KINDS = {TARGET_DEVICE: "device", TARGET_GROUP: "group"}
COMMAND_MAX_WINDOW = 7 * 86400
COMMAND_DOMAIN = b"AMI-CMD-1"  # signed: COMMAND_DOMAIN || envelope without its signature
COMMAND_SIG_LEN = 64
COMMAND_MAX_LEN = 160

LOAD_LIMIT_PARAMS = Struct(
    "limit_w" / Int32ub,  # 0 lifts the limit
    "duration_s" / Int16ub,
    "restore" / Int8ub,  # 0 manual (button after an arm), 1 automatic
    Check(lambda c: c.restore in (0, 1)),
)
NOTIFY_PARAMS = Struct("action_hash" / Bytes(32), "deadline" / Int32ub)
KEY_CHANGE_PARAMS = Struct(
    "kind" / Int8ub,
    Check(lambda c: c.kind in KEY_CHANGE_MATERIAL),
    "key_id" / Int8ub,  # the new signer's key id (KC_SIGNER)
    "generation" / Int32ub,
    "grace_s" / Int32ub,  # how long the replaced key stays accepted
    "material" / Bytes(lambda c: KEY_CHANGE_MATERIAL[c.kind]),
    Check(lambda c: c.kind != KC_SIGNER or c.material[0] in (2, 3)),
    Terminated,  # FixedSized would otherwise ignore bytes past the material
)
REJOIN_PARAMS = Struct("flags" / Int8ub, Check(lambda c: c.flags & ~REJOIN_COMPROMISE == 0))


def command_param_len(command: int, params: Any = None) -> int:
    """n of an envelope of this command (for KEY_CHANGE: of its kind); KeyError if none."""
    want = COMMAND_PARAM_LENS[command]
    if want is None:
        return KEY_CHANGE_HEADER + KEY_CHANGE_MATERIAL[params["kind"]]
    return want


def _param_len_ok(c: Any) -> bool:
    want = COMMAND_PARAM_LENS[c.command]
    if want is None:  # KEY_CHANGE: one of its kinds' lengths (the kind is checked with it)
        return c.param_len - KEY_CHANGE_HEADER in KEY_CHANGE_MATERIAL.values()
    return c.param_len == want


COMMAND_ENVELOPE = Struct(
    "version" / Int8ub,
    Check(this.version == 1),
    "command" / Int8ub,
    Check(lambda c: c.command in COMMAND_PARAM_LENS),
    "target_kind" / Int8ub,
    Check(lambda c: c.target_kind in TARGET_KINDS),
    Check(lambda c: c.target_kind == TARGET_DEVICE or c.command not in DEVICE_ONLY_COMMANDS),
    "target" / Bytes(8),
    "counter" / Int32ub,
    "not_before" / Int32ub,
    "not_after" / Int32ub,
    Check(this.not_before <= this.not_after),
    Check(this.not_after - this.not_before <= COMMAND_MAX_WINDOW),
    "key_id" / Int8ub,
    "param_len" / Rebuild(Int8ub, lambda c: command_param_len(c.command, c.params)),
    Check(_param_len_ok),
    "params"
    / FixedSized(
        this.param_len,
        Switch(
            this.command,
            {
                CMD_LOAD_LIMIT: LOAD_LIMIT_PARAMS,
                CMD_NOTIFY: NOTIFY_PARAMS,
                CMD_KEY_CHANGE: KEY_CHANGE_PARAMS,
                CMD_REJOIN: REJOIN_PARAMS,
            },
            Pass,
        ),
    ),
    Check(lambda c: c.command != CMD_KEY_CHANGE
          or c.param_len == KEY_CHANGE_HEADER + KEY_CHANGE_MATERIAL[c.params.kind]),
    "signature" / Bytes(COMMAND_SIG_LEN),
    Terminated,
)


def parse_command_envelope(data: bytes | bytearray | memoryview) -> Container:
    """Envelope fields (signature unchecked) plus ``signed_part`` (the bytes after the
    domain string in the signed message); SpecError('malformed')."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SpecError("malformed", "not bytes")
    data = bytes(data)
    if len(data) > COMMAND_MAX_LEN:
        raise SpecError("malformed", "envelope longer than 160 bytes")
    try:
        env = COMMAND_ENVELOPE.parse(data)
    except ConstructError as exc:
        raise SpecError("malformed", str(exc)) from exc
    env.signed_part = data[:-COMMAND_SIG_LEN]
    return env


def build_command_envelope(
    command: int,
    target_kind: int,
    target: bytes,
    counter: int,
    not_before: int,
    not_after: int,
    key_id: int,
    params: dict[str, Any] | None = None,
    signature: bytes = bytes(COMMAND_SIG_LEN),
) -> bytes:
    """Envelope bytes from its fields; params: limit_w/duration_s/restore for LOAD_LIMIT,
    action_hash/deadline for NOTIFY, kind/key_id/generation/grace_s/material for KEY_CHANGE,
    flags for REJOIN, None otherwise. SpecError('malformed')."""
    fields = Container(
        version=1,
        command=command,
        target_kind=target_kind,
        target=target,
        counter=counter,
        not_before=not_before,
        not_after=not_after,
        key_id=key_id,
        params=None if params is None else Container(params),
        signature=signature,
    )
    try:
        return COMMAND_ENVELOPE.build(fields)
    except (ConstructError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise SpecError("malformed", str(exc)) from exc


# --- Sniffer ---------------------------------------------------------------------------------


def _short(data: bytes) -> str:
    return data[:4].hex() + "..."


def _join_summary(ftype: int, payload: bytes) -> str:
    j = parse_join(ftype, payload)  # sizes were checked by the frame rules
    if ftype == JOIN_REQUEST:
        return f"dev_nonce={j.dev_nonce} G_X={_short(j.g_x)} mic={j.mic.hex()}"
    if ftype == JOIN_RESPONSE:
        return f"join_nonce={j.join_nonce} G_Y={_short(j.g_y)} sig={_short(j.sig_he)}"
    try:
        cert = parse_certificate(j.certificate)
        who = (
            f"cert={ROLE_NAMES[cert.role]}/{cert.eui.hex()} issuer={cert.issuer_id}"
            f" valid={cert.not_before}..{cert.not_after}"
        )
    except SpecError:
        who = "cert=invalid"
    return f"{who} sig={_short(j.sig_d)} mac={_short(j.mac)}"


def describe(data: bytes | bytearray | memoryview) -> str:
    """One line for the sniffer: type, flags, addresses, security fields, lengths; the join
    fields of an unsecured join frame. Never raises: a rejected frame says why."""
    size = len(data) if isinstance(data, bytes | bytearray | memoryview) else 0
    try:
        f = parse_frame(data)
    except SpecError as exc:
        return f"invalid frame ({exc.reason}) len={size}"
    parts = [TYPE_NAMES[f.vt.ftype], "down" if f.flags.down else "up"]
    if f.flags.group:
        parts.append("group")
    parts += [f"src={f.src.hex()}", f"dst={f.dst.hex()}"]
    if f.flags.secured:
        s = f.security
        parts += [
            f"key={'group' if s.key_id == KEY_GROUP else 'session'}",
            f"gen={s.key_gen}",
            f"fcnt={s.fcnt}",
            f"payload={f.payload_len}",
            f"tag={f.tag_len}",
        ]
    else:
        parts.append(_join_summary(f.vt.ftype, f.payload))
    parts.append(f"len={size}")
    return " ".join(parts)


def describe_command(data: bytes | bytearray | memoryview) -> str:
    """One line for a COMMAND envelope (as a head end or a test sees it in clear; on the
    radio it travels inside a secured DATA frame). Never raises."""
    size = len(data) if isinstance(data, bytes | bytearray | memoryview) else 0
    try:
        e = parse_command_envelope(data)
    except SpecError as exc:
        return f"invalid command ({exc.reason}) len={size}"
    parts = [
        COMMAND_NAMES[e.command],
        f"{TARGET_KINDS[e.target_kind]}={e.target.hex()}",
        f"counter={e.counter}",
        f"valid={e.not_before}..{e.not_after}",
        f"signer={e.key_id}",
    ]
    if e.command == CMD_LOAD_LIMIT:
        p = e.params
        restore = "auto" if p.restore else "manual"
        parts.append(f"limit_w={p.limit_w} duration_s={p.duration_s} restore={restore}")
    elif e.command == CMD_NOTIFY:
        parts.append(f"action={_short(e.params.action_hash)} deadline={e.params.deadline}")
    elif e.command == CMD_KEY_CHANGE:
        p = e.params
        parts.append(
            f"kind={KEY_CHANGE_KINDS[p.kind]} key_id={p.key_id} generation={p.generation}"
            f" grace_s={p.grace_s} material={_short(p.material)}"
        )
    elif e.command == CMD_REJOIN:
        parts.append("compromise" if e.params.flags & REJOIN_COMPROMISE else "ordered")
    parts += [f"sig={_short(e.signature)}", f"len={size}"]
    return " ".join(parts)
