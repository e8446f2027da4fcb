"""DATA message payloads (docs/protocol.md section 4) and join payloads (section 3).

decode() returns (msg_type, fields) where fields is exactly the argument tuple of the
matching encode_* function (READINGS and ACK carry lists), so encode_x(*fields) rebuilds the
bytes. Lengths are exact: a payload with trailing bytes is malformed.
"""

import struct

from ami.link.frame import FrameError
from ami.runtime import const

READINGS = const(0x01)
ACK = const(0x02)
GET = const(0x03)
SET = const(0x04)
RESPONSE = const(0x05)
SESSION_START = const(0x06)
STATUS = const(0x07)
COMMAND = const(0x08)
COMMAND_RESULT = const(0x09)
EVENTS = const(0x0A)
EVENTS_ACK = const(0x0B)
GROUP_KEY = const(0x0C)
_LAST_TYPE = const(0x0C)

REG_ENERGY = const(0x01)  # Wh, low 32 bits, read-only
REG_INTERVAL = const(0x02)  # reporting interval in seconds, read-write
REG_FIRMWARE = const(0x03)  # firmware version, read-only
REG_QUEUED = const(0x04)  # queued readings, read-only
INTERVAL_MIN = const(60)
INTERVAL_MAX = const(86400)

ST_OK = const(0)
ST_UNKNOWN_REGISTER = const(1)
ST_READ_ONLY = const(2)
ST_BAD_VALUE = const(3)

MAX_ITEMS = const(13)  # readings or acks per message: 13 readings fill a frame with a 16-byte tag
READING_LEN = const(16)
EVENT_LEN = const(12)
ENVELOPE_MIN = const(89)  # a signed command envelope without parameters (section 10.1)
ENVELOPE_MAX = const(160)

JOIN_REQUEST_LEN = const(45)
JOIN_MIC_LEN = const(8)
JOIN_RESPONSE_LEN = const(101)
JOIN_CONFIRM_LEN = const(196)

# Body length (after the type byte) of the fixed-size messages, indexed by type; 0: counted
# or variable (READINGS, ACK, COMMAND, EVENTS).
_BODY_LENS = (0, 0, 0, 3, 7, 8, 4, 5, 0, 8, 0, 4, 41)
_FORMATS = (None, None, None, ">HB", ">HBI", ">HBBI", ">I", ">BI", None, ">IBBBB", None, ">I",
            ">8sB24sII")
# Counted messages: item size and struct format of one item.
_ITEMS = {READINGS: (READING_LEN, ">IIQ"), ACK: (4, ">I"), EVENTS: (EVENT_LEN, ">IIBBH")}


def is_downlink(msg_type):
    """True for the head end -> device messages, False for the others (sections 4, 10.4)."""
    return msg_type in (ACK, GET, SET, SESSION_START, COMMAND, EVENTS_ACK, GROUP_KEY)


def _uint(value, bits, name):
    if not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ValueError(name + " out of range")


def _bytes(value, size, name):
    if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) != size:
        raise ValueError(name + " must be %d bytes" % size)
    return bytes(value)


def _count(items):
    if not isinstance(items, (list, tuple)):
        raise ValueError("items must be a list or tuple")
    n = len(items)
    if not 1 <= n <= MAX_ITEMS:
        raise ValueError("1 to 13 items per message")
    return n


def encode_readings(readings):
    """READINGS from a sequence of (seq, time, wh)."""
    parts = [struct.pack(">BB", READINGS, _count(readings))]
    for reading in readings:
        if not isinstance(reading, (list, tuple)) or len(reading) != 3:
            raise ValueError("a reading is (seq, time, wh)")
        seq, t, wh = reading
        _uint(seq, 32, "seq")
        _uint(t, 32, "time")
        _uint(wh, 64, "wh")
        parts.append(struct.pack(">IIQ", seq, t, wh))
    return b"".join(parts)


def encode_ack(seqs):
    """ACK naming the stored readings by seq."""
    parts = [struct.pack(">BB", ACK, _count(seqs))]
    for seq in seqs:
        _uint(seq, 32, "seq")
        parts.append(struct.pack(">I", seq))
    return b"".join(parts)


def encode_get(req_id, register):
    _uint(req_id, 16, "req_id")
    _uint(register, 8, "register")
    return struct.pack(">BHB", GET, req_id, register)


def encode_set(req_id, register, value):
    _uint(req_id, 16, "req_id")
    _uint(register, 8, "register")
    _uint(value, 32, "value")
    return struct.pack(">BHBI", SET, req_id, register, value)


def encode_response(req_id, status, register, value):
    _uint(req_id, 16, "req_id")
    if not isinstance(status, int) or not ST_OK <= status <= ST_BAD_VALUE:
        raise ValueError("unknown status")
    _uint(register, 8, "register")
    _uint(value, 32, "value")
    return struct.pack(">BHBBI", RESPONSE, req_id, status, register, value)


def encode_session_start(join_nonce):
    _uint(join_nonce, 32, "join_nonce")
    return struct.pack(">BI", SESSION_START, join_nonce)


def encode_status(reason, rx_floor):
    _uint(reason, 8, "reason")
    _uint(rx_floor, 32, "rx_floor")
    return struct.pack(">BBI", STATUS, reason, rx_floor)


def encode_command(envelope):
    """COMMAND carrying a signed envelope (opaque here: ami.commands checks it)."""
    envelope = bytes(envelope)
    if not ENVELOPE_MIN <= len(envelope) <= ENVELOPE_MAX:
        raise ValueError("command envelope length")
    return bytes((COMMAND,)) + envelope


def encode_command_result(counter, command, status, relay_state, reason):
    """COMMAND_RESULT: what a command did (status 0 executed, 1 refused) and why."""
    _uint(counter, 32, "counter")
    for value, name in ((command, "command"), (status, "status"), (relay_state, "state"),
                        (reason, "reason")):
        _uint(value, 8, name)
    return struct.pack(">BIBBBB", COMMAND_RESULT, counter, command, status, relay_state, reason)


def encode_events(events):
    """EVENTS from a sequence of (seq, time, kind, severity, detail)."""
    parts = [struct.pack(">BB", EVENTS, _count(events))]
    for ev in events:
        if not isinstance(ev, (list, tuple)) or len(ev) != 5:
            raise ValueError("an event is (seq, time, kind, severity, detail)")
        for value, bits in zip(ev, (32, 32, 8, 8, 16)):
            _uint(value, bits, "event field")
        parts.append(struct.pack(">IIBBH", *ev))
    return b"".join(parts)


def encode_events_ack(upto_seq):
    """EVENTS_ACK: every event up to upto_seq is held by the head end."""
    _uint(upto_seq, 32, "upto_seq")
    return struct.pack(">BI", EVENTS_ACK, upto_seq)


def encode_group_key(group_id, key_gen, wrapped, next_fcnt=0, last_counter=0):
    """GROUP_KEY: a group id, its key generation, the wrapped group key, and the replay
    floors a new member starts from: the group's next frame counter under this key and its
    last command counter (0: none yet), so nothing broadcast before it joined replays."""
    _uint(key_gen, 8, "key_gen")
    _uint(next_fcnt, 32, "next_fcnt")
    _uint(last_counter, 32, "last_counter")
    return struct.pack(">B8sB24sII", GROUP_KEY, _bytes(group_id, 8, "group id"), key_gen,
                       _bytes(wrapped, 24, "wrapped key"), next_fcnt, last_counter)


def decode(plaintext, down=None):
    """(msg_type, fields) of a DATA plaintext; raises FrameError('malformed').

    With down given (the frame's DOWN flag), a message sent the wrong way is malformed too.
    """
    if not isinstance(plaintext, (bytes, bytearray, memoryview)):
        raise FrameError("malformed", "not bytes")
    data = bytes(plaintext)
    n = len(data)
    if not n:
        raise FrameError("malformed", "empty message")
    t = data[0]
    if not READINGS <= t <= _LAST_TYPE:
        raise FrameError("malformed", "message type")
    if down is not None and bool(down) != is_downlink(t):
        raise FrameError("malformed", "message direction")
    if t in _ITEMS:
        size, fmt = _ITEMS[t]
        count = data[1] if n > 1 else 0
        if not 1 <= count <= MAX_ITEMS or n != 2 + count * size:
            raise FrameError("malformed", "count or length")
        items = []
        for i in range(2, n, size):
            item = struct.unpack(fmt, data[i : i + size])
            items.append(item[0] if t == ACK else item)
        return t, (items,)
    if t == COMMAND:
        if not ENVELOPE_MIN <= n - 1 <= ENVELOPE_MAX:
            raise FrameError("malformed", "command envelope length")
        return t, (data[1:],)
    if n != 1 + _BODY_LENS[t]:
        raise FrameError("malformed", "length")
    fields = struct.unpack(_FORMATS[t], data[1:])
    if t == RESPONSE and fields[1] > ST_BAD_VALUE:
        raise FrameError("malformed", "status")
    return t, fields


def join_request_body(dev_nonce, gx33):
    """dev_nonce (4) || G_X (33): the payload up to the mic, which the mic covers after the
    frame header (M1' of section 3.1)."""
    _uint(dev_nonce, 32, "dev_nonce")
    return struct.pack(">I", dev_nonce) + _bytes(gx33, 33, "G_X")


def encode_join_request(dev_nonce, gx33, mic8):
    """dev_nonce (4) || G_X (33) || mic (8); the point and the mic are checked by the join
    logic, not here."""
    return join_request_body(dev_nonce, gx33) + _bytes(mic8, JOIN_MIC_LEN, "mic")


def encode_join_response(join_nonce, gy33, sig64):
    """join_nonce (4) || G_Y (33) || sig_HE (64)."""
    _uint(join_nonce, 32, "join_nonce")
    return struct.pack(">I", join_nonce) + _bytes(gy33, 33, "G_Y") + _bytes(sig64, 64, "sig")


def encode_join_confirm(cert116, sig64, mac16):
    """certificate (116) || sig_D (64) || mac (16)."""
    return _bytes(cert116, 116, "certificate") + _bytes(sig64, 64, "sig") + _bytes(mac16, 16, "mac")


def _join(payload, size):
    if not isinstance(payload, (bytes, bytearray, memoryview)) or len(payload) != size:
        raise FrameError("malformed", "join payload length")
    return bytes(payload)


def decode_join_request(payload):
    """(dev_nonce, G_X 33 bytes, mic 8 bytes); raises FrameError('malformed') on a wrong
    length."""
    data = _join(payload, JOIN_REQUEST_LEN)
    return struct.unpack(">I", data[:4])[0], data[4:37], data[37:]


def decode_join_response(payload):
    """(join_nonce, G_Y 33 bytes, sig_HE 64 bytes)."""
    data = _join(payload, JOIN_RESPONSE_LEN)
    return struct.unpack(">I", data[:4])[0], data[4:37], data[37:]


def decode_join_confirm(payload):
    """(certificate 116 bytes, sig_D 64 bytes, mac 16 bytes)."""
    data = _join(payload, JOIN_CONFIRM_LEN)
    return data[:116], data[116:180], data[180:]
