"""Frame codec of the AMI link (docs/protocol.md section 1): header, CCM sealing, FCS.

Encoders range-check every field before packing because MicroPython's struct truncates
out-of-range values silently; the decoder checks lengths before unpacking for the same reason
(struct accepts a too-long buffer). Encoders and the decoder share one rule check, so a frame
this module builds is a frame it accepts.
"""

import struct

from ami.crypto import aes_ccm_decrypt, aes_ccm_encrypt, crc16
from ami.runtime import const

VERSION = const(1)

JOIN_REQUEST = const(1)
JOIN_RESPONSE = const(2)
JOIN_CONFIRM = const(3)
DATA = const(4)

SECURED = const(0x01)
GROUP = const(0x02)
DOWN = const(0x04)
TAG_SHIFT = const(3)
TAG_MASK = const(0x18)
RESERVED_FLAGS = const(0xE0)

MTU = const(255)
KEY_SESSION = const(0)
KEY_GROUP = const(1)

HEADER_LEN = const(18)  # vt, flags, src, dst: every frame
SECURED_HEADER_LEN = const(24)  # plus key_id, key_gen, fcnt: the CCM associated data
FCS_LEN = const(2)
MIN_FRAME = const(20)  # the unsecured header and the FCS: anything shorter is not a frame
TAG_LENS = (8, 12, 16)  # indexed by the tag length code
NONCE_LEN = const(13)

# Payload size of each unsecured frame type, indexed by type (sections 3.1 to 3.3).
JOIN_PAYLOAD_LENS = (0, 45, 101, 196)

_HDR = ">BB8s8s"
_SEC = ">BBI"
_SECURED_HDR = ">BB8s8sBBI"


class FrameError(ValueError):
    """A received frame broke protocol.md; reason is its section 6 name (crc or malformed)."""

    def __init__(self, reason, detail=None):
        super().__init__(reason if detail is None else reason + ": " + detail)
        self.reason = reason


class Frame:
    """A decoded frame. Secured-only fields are None (tag b"", tag_len 0) when unsecured.

    payload is the CCM ciphertext of a secured frame, the plaintext otherwise; header is the
    CCM associated data; raw is the frame without its FCS.
    """

    def __init__(self, ftype, flags, src, dst, key_id, key_gen, fcnt, payload, tag, header, raw):
        self.ftype = ftype
        self.flags = flags
        self.src = src
        self.dst = dst
        self.key_id = key_id
        self.key_gen = key_gen
        self.fcnt = fcnt
        self.payload = payload
        self.tag = tag
        self.tag_len = len(tag)
        self.header = header
        self.raw = raw

    @property
    def secured(self):
        return bool(self.flags & SECURED)

    @property
    def group(self):
        return bool(self.flags & GROUP)

    @property
    def down(self):
        return bool(self.flags & DOWN)


def _flag_error(ftype, flags):
    """Why a type and flags byte break section 1.1, or None if they fit together."""
    if not JOIN_REQUEST <= ftype <= DATA:
        return "frame type"
    if flags & RESERVED_FLAGS:
        return "reserved flag bits"
    code = (flags & TAG_MASK) >> TAG_SHIFT
    if ftype == DATA:
        if not flags & SECURED:
            return "DATA frames are secured"
        if code == 3:
            return "tag length code 3"
        # Group traffic is head end -> devices only: nothing may send up to a group.
        if flags & GROUP and not flags & DOWN:
            return "group frames go down"
        return None
    if flags & SECURED:
        return "join frames are not secured"
    if code:
        return "tag length code of an unsecured frame"
    if flags & GROUP:
        return "join frames are unicast"
    if bool(flags & DOWN) != (ftype == JOIN_RESPONSE):
        return "direction"
    return None


def _key_error(flags, key_id):
    """Why a secured frame's key id breaks section 1, or None."""
    if key_id != KEY_SESSION and key_id != KEY_GROUP:
        return "key id"
    # A session key is one device's: it cannot protect a group frame, nor a group key a
    # unicast one.
    if bool(flags & GROUP) != (key_id == KEY_GROUP):
        return "group flag and key id disagree"
    return None


def peek(data):
    """(frame type, flags, src, dst) of a frame's header, read without checking the FCS or
    any rule: for routing and sniffing, where a full decode costs too much. Raises
    FrameError if data is shorter than a header."""
    if len(data) < HEADER_LEN:
        raise FrameError("malformed", "length")
    vt, flags, src, dst = struct.unpack_from(_HDR, data)
    return vt & 0x0F, flags, src, dst


def peek_secured(data):
    """(key id, key generation, fcnt) of a secured frame's header, unchecked like peek();
    None if the frame is not secured or too short to hold them."""
    if len(data) < SECURED_HEADER_LEN or not data[1] & SECURED:
        return None
    return struct.unpack_from(_SEC, data, HEADER_LEN)


def decode(data):
    """Parse and check a received frame (FCS included); raises FrameError.

    The CRC is checked before any field is looked at, so line noise is counted as crc.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FrameError("malformed", "not bytes")
    n = len(data)
    if n > MTU or n < MIN_FRAME:
        raise FrameError("malformed", "length")
    data = bytes(data)
    raw = data[: n - FCS_LEN]
    if crc16(raw) != data[n - 2] | data[n - 1] << 8:
        raise FrameError("crc")
    vt, flags, src, dst = struct.unpack(_HDR, raw[:HEADER_LEN])
    if vt >> 4 != VERSION:
        raise FrameError("malformed", "version")
    ftype = vt & 0x0F
    err = _flag_error(ftype, flags)
    if err:
        raise FrameError("malformed", err)
    size = n - FCS_LEN
    if not flags & SECURED:
        if size - HEADER_LEN != JOIN_PAYLOAD_LENS[ftype]:
            raise FrameError("malformed", "join payload length")
        return Frame(
            ftype, flags, src, dst, None, None, None, raw[HEADER_LEN:], b"", raw[:HEADER_LEN], raw
        )
    tag_len = TAG_LENS[(flags & TAG_MASK) >> TAG_SHIFT]
    # At least the message type byte of a DATA payload.
    if size < SECURED_HEADER_LEN + 1 + tag_len:
        raise FrameError("malformed", "too short for its tag")
    key_id, key_gen, fcnt = struct.unpack(_SEC, raw[HEADER_LEN:SECURED_HEADER_LEN])
    err = _key_error(flags, key_id)
    if err:
        raise FrameError("malformed", err)
    end = size - tag_len
    return Frame(
        ftype,
        flags,
        src,
        dst,
        key_id,
        key_gen,
        fcnt,
        raw[SECURED_HEADER_LEN:end],
        raw[end:],
        raw[:SECURED_HEADER_LEN],
        raw,
    )


def _uint(value, bits, name):
    if not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ValueError(name + " out of range")


def _bytes(value, name, size=None):
    if type(value) is not bytes:  # the common case skips the conversion
        if not isinstance(value, (bytearray, memoryview)):
            raise ValueError(name + " must be bytes")
        value = bytes(value)
    if size is not None and len(value) != size:
        raise ValueError(name + " must be %d bytes" % size)
    return value


def _flags(ftype, down, group, tag_code):
    _uint(ftype, 4, "frame type")
    flags = (SECURED if ftype == DATA else 0) | tag_code << TAG_SHIFT
    if down:
        flags |= DOWN
    if group:
        flags |= GROUP
    err = _flag_error(ftype, flags)
    if err:
        raise ValueError(err)
    return flags


def _finish(raw):
    """raw plus its FCS, little-endian as 802.15.4 sends it."""
    if len(raw) + FCS_LEN > MTU:
        raise ValueError("frame longer than the MTU")
    return raw + struct.pack("<H", crc16(raw))


def header(ftype, src, dst, down=False, group=False):
    """The 18-byte header of an unsecured (join) frame, as the join transcripts hash it."""
    if ftype == DATA:
        raise ValueError("DATA frames are sealed: use seal()")
    flags = _flags(ftype, down, group, 0)
    src = _bytes(src, "src", 8)
    dst = _bytes(dst, "dst", 8)
    return struct.pack(_HDR, VERSION << 4 | ftype, flags, src, dst)


def encode(ftype, src, dst, payload, down=False, group=False):
    """An unsecured (join) frame with its FCS; raises ValueError on a bad argument.

    The payload must have the exact size of its join message.
    """
    head = header(ftype, src, dst, down, group)
    return _finish(head + _bytes(payload, "payload", JOIN_PAYLOAD_LENS[ftype]))


def nonce(src, key_id, fcnt):
    """The 13-byte CCM nonce src || key_id || fcnt (section 1.2)."""
    src = _bytes(src, "src", 8)
    _uint(key_id, 8, "key id")
    _uint(fcnt, 32, "fcnt")
    return src + struct.pack(">BI", key_id, fcnt)


def seal(
    key, ftype, src, dst, key_id, key_gen, fcnt, plaintext, down=False, group=False, tag_len=8
):
    """A secured frame: header, CCM ciphertext and tag (header as associated data), FCS.

    Raises ValueError on a bad argument or a frame that would exceed the MTU.
    """
    if tag_len not in TAG_LENS:
        raise ValueError("tag length must be 8, 12 or 16")
    if ftype != DATA:
        raise ValueError("only DATA frames are secured")
    flags = _flags(ftype, down, group, TAG_LENS.index(tag_len))
    _uint(key_id, 8, "key id")
    err = _key_error(flags, key_id)
    if err:
        raise ValueError(err)
    _uint(key_gen, 8, "key generation")
    _uint(fcnt, 32, "fcnt")
    src = _bytes(src, "src", 8)
    dst = _bytes(dst, "dst", 8)
    plaintext = _bytes(plaintext, "plaintext")
    if not plaintext:
        raise ValueError("a DATA payload holds at least its message type")
    if SECURED_HEADER_LEN + len(plaintext) + tag_len + FCS_LEN > MTU:
        raise ValueError("frame longer than the MTU")
    header = struct.pack(_SECURED_HDR, VERSION << 4 | ftype, flags, src, dst, key_id, key_gen, fcnt)
    # The nonce fields were checked above: header[2:10] is src, header[18] key_id, then fcnt.
    body = aes_ccm_encrypt(key, src + header[18:19] + header[20:24], plaintext, header, tag_len)
    return _finish(header + body)


def open_frame(key, frame):
    """Plaintext of a decoded secured frame; raises ami.crypto.AuthError on a bad tag."""
    if not frame.secured:
        raise ValueError("frame is not secured")
    return aes_ccm_decrypt(
        key,
        nonce(frame.src, frame.key_id, frame.fcnt),
        frame.payload + frame.tag,
        frame.header,
        frame.tag_len,
    )
