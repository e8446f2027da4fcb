"""Command envelope codec (docs/protocol.md sections 10.1 and 10.2).

    version (1) | command (1) | target kind (1) | target (8) | counter (4) | not_before (4) |
    not_after (4) | signer key id (1) | n (1) | parameters (n) | signature (64)

The signature is ECDSA P-256 SHA-256 over ``DOMAIN | body``, body being bytes 0 .. 24+n
(``Envelope.signed_part``). Encoders range-check every field before packing (MicroPython's
struct truncates silently) and the decoder checks exact lengths before unpacking; both share
one rule check, so an envelope this module builds is one it accepts. Every failure is a
CommandError with reason ``malformed``.

Command 7 (FIRMWARE_ACTIVATE) has no parameter layout yet: it is rejected as malformed
until one is specified (add it to _PARAM_LENS and _check_params). KEY_CHANGE and
DECOMMISSION act on one device's keys, so they must target a device.
"""

import struct

from ami.crypto import ecdsa_sign, sha256
from ami.runtime import const

VERSION = const(1)

DISCONNECT = const(1)
ARM_RECONNECT = const(2)
RECONNECT = const(3)
LOAD_LIMIT = const(4)
NOTIFY = const(5)
KEY_CHANGE = const(6)
FIRMWARE_ACTIVATE = const(7)
REJOIN = const(8)
DECOMMISSION = const(9)

# KEY_CHANGE kinds (section 13.2) and the length of their key material.
KC_SESSION = const(1)  # wrapped K_up || K_down (40)
KC_GROUP = const(2)  # group id (8) || wrapped group key (24)
KC_ROOT = const(3)  # wrapped root key (24)
KC_SIGNER = const(4)  # compressed public key of the new signer (33)
KC_HEADER = const(10)  # kind, key id, generation, grace_s
_KC_MATERIAL = (None, 40, 32, 24, 33)
REJOIN_COMPROMISE = const(1)  # REJOIN flag: keys may be known, drop them before rejoining

TARGET_DEVICE = const(0)
TARGET_GROUP = const(1)

HEADER_LEN = const(25)  # the body without its parameters
SIG_LEN = const(64)
MAX_PARAMS = const(71)
MAX_ENVELOPE = const(160)
MIN_ENVELOPE = const(89)  # header and signature, no parameters
MAX_WINDOW = const(604800)  # 7 days: not_after - not_before
HASH_LEN = const(32)
MAX_U32 = const(0xFFFFFFFF)
RESTORE_MANUAL = const(0)
RESTORE_AUTO = const(1)

DOMAIN = b"AMI-CMD-1"

# Parameter length by command code; None: no layout (malformed); -1: by KEY_CHANGE kind.
_PARAM_LENS = (None, 0, 0, 0, 7, 36, -1, None, 1, 0)
_PER_DEVICE = (KEY_CHANGE, DECOMMISSION)
_HDR = ">BBB8sIIIBB"
_LOAD_LIMIT = ">IHB"  # limit_w, duration_s, restore
_NOTIFY = ">32sI"  # action_hash, deadline
_KC = ">BBII"  # kind, key id, generation, grace_s


class CommandError(ValueError):
    """An envelope that breaks section 10; reason is ``malformed``."""

    def __init__(self, reason, detail=None):
        super().__init__(reason if detail is None else reason + ": " + detail)
        self.reason = reason


def _bad(detail):
    return CommandError("malformed", detail)


class Envelope:
    """A decoded envelope. ``args`` is the parameter tuple as encode() takes it: () or
    (limit_w, duration_s, restore) for LOAD_LIMIT, (action_hash, deadline) for NOTIFY,
    (kind, key_id, generation, grace_s, material) for KEY_CHANGE, (flags,) for REJOIN."""

    def __init__(self, fields, params, args, signature, signed_part):
        (
            self.version,
            self.command,
            self.target_kind,
            self.target,
            self.counter,
            self.not_before,
            self.not_after,
            self.key_id,
            _,
        ) = fields
        self.params = params
        self.args = args
        self.signature = signature
        self.signed_part = signed_part
        self.raw = signed_part + signature
        self.checked_by = None  # set by a CommandVerifier whose checks it passed

    def digest(self):
        """SHA-256 of the whole envelope (what a NOTIFY's action_hash names)."""
        return sha256(self.raw)


def param_len(command):
    """Parameter length of a command code, or None if it has no layout."""
    if not isinstance(command, int) or not 0 <= command < len(_PARAM_LENS):
        return None
    return _PARAM_LENS[command]


def _u(value, bits, name):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise _bad(name + " out of range")


def _b(value, size, name):
    if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) != size:
        raise _bad(name + " must be %d bytes" % size)
    return bytes(value)


def _check_header(command, target_kind, not_before, not_after, n):
    """Rules shared by encode and decode on already range-checked fields."""
    want = param_len(command)
    if want is None:
        raise _bad("command")
    if target_kind != TARGET_DEVICE and target_kind != TARGET_GROUP:
        raise _bad("target kind")
    if target_kind == TARGET_GROUP and command in _PER_DEVICE:
        raise _bad("command must target a device")
    if not_before > not_after:
        raise _bad("not_before after not_after")
    if not_after - not_before > MAX_WINDOW:
        raise _bad("window longer than 7 days")
    if want < 0:
        if n <= KC_HEADER:
            raise _bad("parameter length")
    elif n != want:
        raise _bad("parameter length")


def _check_params(command, params):
    """The parameter tuple of params (exact length already checked)."""
    if command == LOAD_LIMIT:
        args = struct.unpack(_LOAD_LIMIT, params)
        if args[2] != RESTORE_MANUAL and args[2] != RESTORE_AUTO:
            raise _bad("restore")
        return args
    if command == NOTIFY:
        return struct.unpack(_NOTIFY, params)
    if command == KEY_CHANGE:
        kind, key_id, gen, grace = struct.unpack(_KC, params[:KC_HEADER])
        if not 0 < kind < len(_KC_MATERIAL) or len(params) - KC_HEADER != _KC_MATERIAL[kind]:
            raise _bad("key change kind or material length")
        if kind == KC_SIGNER and params[KC_HEADER] not in (2, 3):
            raise _bad("signer key must be a compressed point")
        return kind, key_id, gen, grace, params[KC_HEADER:]
    if command == REJOIN:
        if params[0] & ~REJOIN_COMPROMISE:
            raise _bad("rejoin flags")
        return (params[0],)
    return ()


def _pack_params(command, args):
    if not isinstance(args, tuple):
        raise _bad("parameters must be a tuple")
    if command == LOAD_LIMIT:
        if len(args) != 3:
            raise _bad("LOAD_LIMIT takes limit_w, duration_s, restore")
        _u(args[0], 32, "limit_w")
        _u(args[1], 16, "duration_s")
        _u(args[2], 8, "restore")
        return struct.pack(_LOAD_LIMIT, args[0], args[1], args[2])
    if command == NOTIFY:
        if len(args) != 2:
            raise _bad("NOTIFY takes action_hash, deadline")
        h = _b(args[0], HASH_LEN, "action_hash")
        _u(args[1], 32, "deadline")
        return struct.pack(_NOTIFY, h, args[1])
    if command == KEY_CHANGE:
        if len(args) != 5:
            raise _bad("KEY_CHANGE takes kind, key_id, generation, grace_s, material")
        _u(args[0], 8, "kind")
        _u(args[1], 8, "key id")
        _u(args[2], 32, "generation")
        _u(args[3], 32, "grace_s")
        if not isinstance(args[4], (bytes, bytearray)):
            raise _bad("material must be bytes")
        return struct.pack(_KC, args[0], args[1], args[2], args[3]) + bytes(args[4])
    if command == REJOIN:
        if len(args) != 1:
            raise _bad("REJOIN takes flags")
        _u(args[0], 8, "flags")
        return bytes((args[0],))
    if args:
        raise _bad("command takes no parameters")
    return b""


def encode(command, target_kind, target, counter, not_before, not_after, key_id, params=()):
    """The unsigned body (bytes 0 .. 24+n); raises CommandError('malformed')."""
    _u(command, 8, "command")
    _u(target_kind, 8, "target kind")
    target = _b(target, 8, "target")
    _u(counter, 32, "counter")
    _u(not_before, 32, "not_before")
    _u(not_after, 32, "not_after")
    _u(key_id, 8, "key id")
    if param_len(command) is None:
        raise _bad("command")
    p = _pack_params(command, params)
    _check_header(command, target_kind, not_before, not_after, len(p))
    _check_params(command, p)
    hdr = struct.pack(
        _HDR, VERSION, command, target_kind, target, counter, not_before, not_after, key_id, len(p)
    )
    return hdr + p


def _parse_body(body):
    """(header fields, params, args) of a body of exact length; raises CommandError."""
    n = len(body)
    if n < HEADER_LEN or n > HEADER_LEN + MAX_PARAMS:
        raise _bad("length")
    fields = struct.unpack(_HDR, body[:HEADER_LEN])
    if fields[0] != VERSION:
        raise _bad("version")
    if fields[8] != n - HEADER_LEN:
        raise _bad("parameter length byte")
    _check_header(fields[1], fields[2], fields[5], fields[6], fields[8])
    params = body[HEADER_LEN:]
    return fields, params, _check_params(fields[1], params)


def signing_input(body):
    """The bytes ECDSA signs: DOMAIN | body."""
    return DOMAIN + body


def sign(body, private32):
    """body followed by its signature under private32 (the body is checked first)."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise _bad("not bytes")
    body = bytes(body)
    _parse_body(body)
    return body + ecdsa_sign(private32, DOMAIN + body)


def decode(data):
    """An Envelope from its bytes (signature not checked); raises CommandError('malformed')."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _bad("not bytes")
    n = len(data)
    if n < MIN_ENVELOPE or n > MAX_ENVELOPE:
        raise _bad("length")
    data = bytes(data)
    body = data[: n - SIG_LEN]
    fields, params, args = _parse_body(body)
    return Envelope(fields, params, args, data[n - SIG_LEN :], body)
