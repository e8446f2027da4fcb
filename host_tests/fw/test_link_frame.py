"""Frame codec (docs/protocol.md section 1): layout, round trips, every rejection rule."""

import struct

from ami.crypto import AuthError, crc16
from ami.link import frame
from ami.link.frame import FrameError
from fwtest import raises, unhex

KEY = unhex("000102030405060708090a0b0c0d0e0f")
OTHER_KEY = unhex("0f0e0d0c0b0a09080706050403020100")
SRC = unhex("0011223344556677")
DST = unhex("8899aabbccddeeff")
GROUP_ID = unhex("ff000000000000a1")
JOIN_LENS = {frame.JOIN_REQUEST: 45, frame.JOIN_RESPONSE: 101, frame.JOIN_CONFIRM: 196}


def with_fcs(raw):
    """raw plus a correct FCS: lets a test reach the checks after the CRC."""
    raw = bytes(raw)
    return raw + struct.pack("<H", crc16(raw))


def patched(data, offset, value):
    """A copy of a frame with one byte replaced and the FCS recomputed."""
    raw = bytearray(data[:-2])
    raw[offset] = value
    return with_fcs(raw)


def sealed(plaintext=b"\x06\x00\x00\x00\x01", **kw):
    args = {"down": False, "group": False, "tag_len": 8}
    args.update(kw)
    key_id = frame.KEY_GROUP if args["group"] else frame.KEY_SESSION
    dst = GROUP_ID if args["group"] else DST
    return frame.seal(KEY, frame.DATA, SRC, dst, key_id, 7, 0x01020304, plaintext, **args)


def join(ftype=frame.JOIN_REQUEST):
    payload = bytes((i * 7) & 0xFF for i in range(JOIN_LENS[ftype]))
    return frame.encode(ftype, SRC, DST, payload, down=ftype == frame.JOIN_RESPONSE), payload


def reason(data):
    return raises(FrameError, frame.decode, data).reason


def test_constants():
    assert frame.VERSION == 1 and frame.MTU == 255
    types = (frame.JOIN_REQUEST, frame.JOIN_RESPONSE, frame.JOIN_CONFIRM, frame.DATA)
    assert types == (1, 2, 3, 4)
    assert (frame.SECURED, frame.GROUP, frame.DOWN) == (1, 2, 4)
    assert (frame.KEY_SESSION, frame.KEY_GROUP) == (0, 1)
    assert frame.HEADER_LEN == 18 and frame.SECURED_HEADER_LEN == 24 and frame.FCS_LEN == 2
    assert issubclass(FrameError, ValueError)


def test_join_layout_and_round_trip():
    for ftype in (frame.JOIN_REQUEST, frame.JOIN_RESPONSE, frame.JOIN_CONFIRM):
        data, payload = join(ftype)
        down = ftype == frame.JOIN_RESPONSE
        assert len(data) == 18 + len(payload) + 2
        assert data[0] == 0x10 | ftype
        assert data[1] == (frame.DOWN if down else 0)
        assert data[2:10] == SRC and data[10:18] == DST and data[18:-2] == payload
        fcs = crc16(data[:-2])
        assert data[-2] == fcs & 0xFF and data[-1] == fcs >> 8  # little-endian FCS
        fr = frame.decode(data)
        assert fr.ftype == ftype and fr.flags == data[1]
        assert fr.src == SRC and fr.dst == DST and fr.payload == payload
        assert fr.key_id is None and fr.key_gen is None and fr.fcnt is None
        assert fr.tag == b"" and fr.tag_len == 0
        assert fr.header == data[:18] and fr.raw == data[:-2]
        assert not fr.secured and not fr.group and fr.down == down
        assert frame.header(ftype, SRC, DST, down=down) == fr.header


def test_known_frame_bytes():
    # The FCS of a fixed frame, computed by hand from the CRC-16/KERMIT definition.
    assert crc16(b"123456789") == 0x2189
    data, _ = join(frame.JOIN_REQUEST)
    assert data[:2] == b"\x11\x00"


def test_seal_layout_and_open():
    pt = b"\x03\x12\x34\x02"
    for tag_len in (8, 12, 16):
        for down in (False, True):
            data = frame.seal(
                KEY,
                frame.DATA,
                SRC,
                DST,
                frame.KEY_SESSION,
                0xAB,
                0xDEADBEEF,
                pt,
                down=down,
                tag_len=tag_len,
            )
            assert len(data) == 24 + len(pt) + tag_len + 2
            assert data[0] == 0x14
            code = (8, 12, 16).index(tag_len)
            assert data[1] == frame.SECURED | (frame.DOWN if down else 0) | code << 3
            assert data[18:24] == b"\x00\xab\xde\xad\xbe\xef"
            fr = frame.decode(data)
            assert fr.secured and fr.down == down and not fr.group
            assert fr.ftype == frame.DATA and fr.src == SRC and fr.dst == DST
            assert (fr.key_id, fr.key_gen, fr.fcnt) == (0, 0xAB, 0xDEADBEEF)
            assert fr.tag_len == tag_len and len(fr.tag) == tag_len
            assert len(fr.payload) == len(pt) and fr.payload != pt
            assert fr.header == data[:24] and fr.raw == data[:-2]
            assert fr.raw == fr.header + fr.payload + fr.tag
            assert frame.open_frame(KEY, fr) == pt


def test_group_frame():
    data = sealed(group=True, down=True)
    fr = frame.decode(data)
    assert fr.group and fr.down and fr.key_id == frame.KEY_GROUP and fr.dst == GROUP_ID
    assert frame.open_frame(KEY, fr) == b"\x06\x00\x00\x00\x01"


def test_nonce():
    assert frame.nonce(SRC, 1, 0x01020304) == SRC + b"\x01\x01\x02\x03\x04"
    assert len(frame.nonce(SRC, 0, 0xFFFFFFFF)) == frame.NONCE_LEN
    raises(ValueError, frame.nonce, SRC[:7], 0, 0)
    raises(ValueError, frame.nonce, SRC, 256, 0)
    raises(ValueError, frame.nonce, SRC, 0, 1 << 32)
    raises(ValueError, frame.nonce, SRC, 0, -1)


def test_ccm_uses_header_and_nonce():
    # Same plaintext and key, differing only in header fields: every ciphertext differs.
    a = frame.decode(sealed())
    pt = b"\x06\x00\x00\x00\x01"
    b = frame.decode(frame.seal(KEY, frame.DATA, SRC, DST, 0, 8, 0x01020304, pt))
    assert a.payload == b.payload and a.tag != b.tag  # key_gen is only in the header (AAD)
    c = frame.decode(frame.seal(KEY, frame.DATA, SRC, DST, 0, 7, 0x01020305, pt))
    assert a.payload != c.payload  # fcnt is in the nonce
    raises(AuthError, frame.open_frame, OTHER_KEY, a)


def test_accepts_bytearray_and_memoryview():
    data = sealed()
    assert frame.decode(bytearray(data)).raw == data[:-2]
    assert frame.decode(memoryview(data)).raw == data[:-2]


def test_length_limits():
    assert reason(b"") == "malformed"
    assert reason(b"\x00" * 19) == "malformed"
    assert reason(with_fcs(b"\x11\x00" + bytes(16))) == "malformed"  # 20 bytes, no payload
    assert reason(bytes(256)) == "malformed"
    assert reason("not bytes") == "malformed"
    assert reason(None) == "malformed"
    assert reason(12345) == "malformed"


def test_mtu():
    for tag_len in (8, 12, 16):
        room = 255 - 24 - tag_len - 2
        data = sealed(b"\x01" * room, tag_len=tag_len)
        assert len(data) == 255
        fr = frame.decode(data)
        assert frame.open_frame(KEY, fr) == b"\x01" * room
        raises(ValueError, sealed, b"\x01" * (room + 1), tag_len=tag_len)
    # A 256-byte frame with a correct FCS is still rejected before anything else.
    long_frame = with_fcs(sealed(b"\x01" * 221)[:-2] + b"\x00")
    assert len(long_frame) == 256 and reason(long_frame) == "malformed"


def test_crc_checked_first():
    data = sealed()
    bad = bytearray(data)
    bad[0] = 0x24  # version 2: would be malformed, but the FCS no longer matches
    assert reason(bytes(bad)) == "crc"
    bad = bytearray(data)
    bad[-1] ^= 0x01
    assert reason(bytes(bad)) == "crc"
    if data[-1] != data[-2]:
        swapped = data[:-2] + data[-1:] + data[-2:-1]  # a big-endian FCS is wrong
        assert reason(swapped) == "crc"


def test_every_bit_flip_caught_by_crc():
    for data in (sealed(), join()[0]):
        for i in range(len(data)):
            for bit in range(8):
                bad = bytearray(data)
                bad[i] ^= 1 << bit
                assert reason(bytes(bad)) == "crc"


def test_bit_flips_with_fcs_fixed_caught_by_ccm():
    data = sealed()
    raw = data[:-2]
    for i in range(len(raw)):
        for bit in range(8):
            bad = bytearray(raw)
            bad[i] ^= 1 << bit
            try:
                fr = frame.decode(with_fcs(bad))
            except FrameError as exc:
                assert exc.reason == "malformed" and i < 24
                continue
            raises(AuthError, frame.open_frame, KEY, fr)


def test_zero_byte_appended_passes_the_fcs():
    # CRC-16/KERMIT has init 0 and no final xor: frame || 0x00 carries a valid FCS again
    # (the old FCS's high byte). Only the structure rules and CCM catch it.
    for ftype in JOIN_LENS:
        data = join(ftype)[0] + b"\x00"
        assert reason(data) == "malformed"
    fr = frame.decode(sealed() + b"\x00")
    raises(AuthError, frame.open_frame, KEY, fr)


def test_version_and_type():
    data = sealed()
    for vt in (0x04, 0x24, 0xF4, 0x00, 0x10, 0x15, 0x1F, 0x05):
        assert reason(patched(data, 0, vt)) == "malformed"
    jdata, _ = join()
    for vt in (0x01, 0x21, 0x10, 0x16):
        assert reason(patched(jdata, 0, vt)) == "malformed"


def test_flag_rules():
    data = sealed()  # DATA up: flags 0x01
    for flags in (0x21, 0x41, 0x81, 0xE1):
        assert reason(patched(data, 1, flags)) == "malformed"  # reserved bits
    assert reason(patched(data, 1, 0x19)) == "malformed"  # tag code 3
    assert reason(patched(data, 1, 0x00)) == "malformed"  # DATA without SECURED
    assert reason(patched(data, 1, 0x07)) == "malformed"  # group frame under key 0
    assert reason(patched(data, 1, 0x03)) == "malformed"  # group frame going up
    gdata = sealed(group=True, down=True)  # flags 0x07, key 1
    assert frame.decode(gdata).group
    assert reason(patched(gdata, 1, 0x05)) == "malformed"  # key 1 without GROUP
    assert reason(patched(gdata, 1, 0x03)) == "malformed"  # group going up
    rq, _ = join(frame.JOIN_REQUEST)
    rs, _ = join(frame.JOIN_RESPONSE)
    cf, _ = join(frame.JOIN_CONFIRM)
    for flags in (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x80):
        assert reason(patched(rq, 1, flags)) == "malformed"
        assert reason(patched(cf, 1, flags)) == "malformed"
    for flags in (0x00, 0x05, 0x06, 0x0C, 0x14, 0x44):
        assert reason(patched(rs, 1, flags)) == "malformed"


def test_tag_code_changes_lengths():
    # A valid secured frame re-read with another tag length code (FCS fixed): accepted as a
    # frame with a shorter payload, then rejected by CCM.
    data = sealed(b"\x01" * 20, tag_len=8)
    fr = frame.decode(patched(data, 1, 0x01 | 2 << 3))
    assert fr.tag_len == 16 and len(fr.payload) == 12
    raises(AuthError, frame.open_frame, KEY, fr)


def test_key_id():
    data = sealed()
    for key_id in (2, 3, 0x80, 0xFF):
        assert reason(patched(data, 18, key_id)) == "malformed"
    assert reason(patched(data, 18, 1)) == "malformed"  # key 1 without GROUP


def test_secured_lengths():
    data = sealed(b"\x07")  # smallest: 24 + 1 + 8 + 2 = 35 bytes
    assert len(data) == 35 and frame.decode(data).payload
    raw = data[:-2]
    assert reason(with_fcs(raw[:-1])) == "malformed"  # no room for the message type
    assert reason(with_fcs(raw[:24])) == "malformed"
    assert reason(with_fcs(raw[:20])) == "malformed"
    fr = frame.decode(with_fcs(raw + b"\x00"))  # one more byte: a longer (forged) payload
    raises(AuthError, frame.open_frame, KEY, fr)
    big = sealed(b"\x07", tag_len=16)
    assert reason(with_fcs(big[:-3])) == "malformed"


def test_join_payload_lengths():
    for ftype in JOIN_LENS:
        data, _ = join(ftype)
        raw = data[:-2]
        assert reason(with_fcs(raw[:-1])) == "malformed"
        assert reason(with_fcs(raw + b"\x00")) == "malformed"
        assert reason(with_fcs(raw[:18])) == "malformed"


def test_encode_checks():
    p45 = bytes(45)
    raises(ValueError, frame.encode, frame.DATA, SRC, DST, b"\x01")
    raises(ValueError, frame.encode, 0, SRC, DST, p45)
    raises(ValueError, frame.encode, 5, SRC, DST, p45)
    raises(ValueError, frame.encode, 17, SRC, DST, p45)  # would wrap into the version nibble
    raises(ValueError, frame.encode, -1, SRC, DST, p45)
    raises(ValueError, frame.encode, "1", SRC, DST, p45)
    raises(ValueError, frame.encode, frame.JOIN_REQUEST, SRC[:7], DST, p45)
    raises(ValueError, frame.encode, frame.JOIN_REQUEST, SRC, DST + b"\x00", p45)
    raises(ValueError, frame.encode, frame.JOIN_REQUEST, "01234567", DST, p45)
    raises(ValueError, frame.encode, frame.JOIN_REQUEST, SRC, DST, p45 + b"\x00")
    raises(ValueError, frame.encode, frame.JOIN_REQUEST, SRC, DST, p45[:-1])
    raises(ValueError, frame.encode, frame.JOIN_REQUEST, SRC, DST, None)
    raises(ValueError, frame.encode, frame.JOIN_REQUEST, SRC, DST, p45, down=True)
    raises(ValueError, frame.encode, frame.JOIN_REQUEST, SRC, DST, p45, group=True)
    raises(ValueError, frame.encode, frame.JOIN_RESPONSE, SRC, DST, bytes(101))
    raises(ValueError, frame.encode, frame.JOIN_CONFIRM, SRC, DST, bytes(196), down=True)
    raises(ValueError, frame.header, frame.JOIN_RESPONSE, SRC, DST)


def test_seal_checks():
    pt = b"\x01"

    def bad(*args, **kw):
        raises(ValueError, frame.seal, *args, **kw)

    bad(KEY, frame.JOIN_REQUEST, SRC, DST, 0, 0, 0, pt)
    bad(KEY, 0x14, SRC, DST, 0, 0, 0, pt)
    bad(KEY, frame.DATA, SRC[:7], DST, 0, 0, 0, pt)
    bad(KEY, frame.DATA, SRC, DST * 2, 0, 0, 0, pt)
    bad(KEY, frame.DATA, SRC, DST, 2, 0, 0, pt)
    bad(KEY, frame.DATA, SRC, DST, -1, 0, 0, pt)
    bad(KEY, frame.DATA, SRC, DST, 256, 0, 0, pt)
    bad(KEY, frame.DATA, SRC, DST, 0, 256, 0, pt)
    bad(KEY, frame.DATA, SRC, DST, 0, -1, 0, pt)
    bad(KEY, frame.DATA, SRC, DST, 0, 0, 1 << 32, pt)
    bad(KEY, frame.DATA, SRC, DST, 0, 0, -1, pt)
    bad(KEY, frame.DATA, SRC, DST, 0, 0, None, pt)
    bad(KEY, frame.DATA, SRC, DST, 0, 0, 0, b"")
    bad(KEY, frame.DATA, SRC, DST, 0, 0, 0, "text")
    for tag_len in (0, 4, 6, 10, 14, 17):
        bad(KEY, frame.DATA, SRC, DST, 0, 0, 0, pt, tag_len=tag_len)
    bad(KEY, frame.DATA, SRC, DST, 1, 0, 0, pt, down=True)  # key 1 without GROUP
    bad(KEY, frame.DATA, SRC, DST, 0, 0, 0, pt, down=True, group=True)  # GROUP under key 0
    bad(KEY, frame.DATA, SRC, DST, 1, 0, 0, pt, group=True)  # group frame going up
    bad(KEY[:15], frame.DATA, SRC, DST, 0, 0, 0, pt)
    # The extremes of every field are accepted.
    data = frame.seal(KEY, frame.DATA, SRC, DST, 0, 255, 0xFFFFFFFF, pt)
    fr = frame.decode(data)
    assert (fr.key_gen, fr.fcnt) == (255, 0xFFFFFFFF)
    fr = frame.decode(frame.seal(KEY, frame.DATA, SRC, DST, 0, 0, 0, pt, down=True))
    assert (fr.key_gen, fr.fcnt, fr.down) == (0, 0, True)


def test_open_unsecured():
    fr = frame.decode(join()[0])
    raises(ValueError, frame.open_frame, KEY, fr)


def test_peek_reads_the_header_without_decoding():
    data = sealed(down=True)
    assert frame.peek(data) == (frame.DATA, data[1], SRC, DST)
    assert frame.peek(bytearray(data)) == frame.peek(data)
    assert frame.peek_secured(data) == (frame.KEY_SESSION, 7, 0x01020304)
    data, _ = join()
    assert frame.peek(data) == (frame.JOIN_REQUEST, 0, SRC, DST)
    assert frame.peek_secured(data) is None
    assert raises(FrameError, frame.peek, data[:17]).reason == "malformed"
    assert frame.peek_secured(sealed()[:23]) is None
