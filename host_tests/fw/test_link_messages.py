"""DATA and join payloads (docs/protocol.md sections 3 and 4): exact layouts and rejections."""

from ami.link import messages as m
from ami.link.frame import FrameError
from fwtest import raises, unhex

U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF


def malformed(data, **kw):
    exc = raises(FrameError, m.decode, data, **kw)
    assert exc.reason == "malformed"


def test_constants():
    types = (m.READINGS, m.ACK, m.GET, m.SET, m.RESPONSE, m.SESSION_START, m.STATUS)
    assert types == (1, 2, 3, 4, 5, 6, 7)
    assert (m.REG_ENERGY, m.REG_INTERVAL, m.REG_FIRMWARE, m.REG_QUEUED) == (1, 2, 3, 4)
    assert (m.ST_OK, m.ST_UNKNOWN_REGISTER, m.ST_READ_ONLY, m.ST_BAD_VALUE) == (0, 1, 2, 3)
    assert (m.INTERVAL_MIN, m.INTERVAL_MAX, m.MAX_ITEMS) == (60, 86400, 13)


def test_known_bytes():
    assert m.encode_readings([(1, 2, 3)]) == unhex("010100000001000000020000000000000003")
    assert m.encode_ack([5, U32]) == unhex("020200000005ffffffff")
    assert m.encode_get(0x1234, 2) == unhex("03123402")
    assert m.encode_set(0x1234, 2, 900) == unhex("0412340200000384")
    assert m.encode_response(0xBEEF, 3, 2, 7) == unhex("05beef030200000007")
    assert m.encode_session_start(0x01020304) == unhex("0601020304")
    assert m.encode_status(1, 0x40) == unhex("070100000040")


def test_round_trips():
    readings = [(i, 1700000000 + 60 * i, i * 1000) for i in range(13)]
    readings[0] = (U32, U32, U64)
    cases = (
        (m.READINGS, (readings,), m.encode_readings),
        (m.READINGS, ([(0, 0, 0)],), m.encode_readings),
        (m.ACK, ([1],), m.encode_ack),
        (m.ACK, ([U32 - 12 + i for i in range(13)],), m.encode_ack),  # range() stops at a word
        (m.GET, (0, 0), m.encode_get),
        (m.GET, (0xFFFF, 0xFF), m.encode_get),
        (m.SET, (7, m.REG_INTERVAL, 86400), m.encode_set),
        (m.SET, (0xFFFF, 0xFF, U32), m.encode_set),
        (m.RESPONSE, (9, m.ST_OK, m.REG_ENERGY, U32), m.encode_response),
        (m.RESPONSE, (9, m.ST_BAD_VALUE, 0xFF, 0), m.encode_response),
        (m.SESSION_START, (U32,), m.encode_session_start),
        (m.STATUS, (0xFF, U32), m.encode_status),
        (m.STATUS, (0, 0), m.encode_status),
    )
    for mtype, fields, enc in cases:
        data = enc(*fields)
        got = m.decode(data)
        assert got[0] == mtype
        assert tuple(got[1]) == fields, (got, fields)
        assert enc(*got[1]) == data
        assert m.decode(bytearray(data)) == got and m.decode(memoryview(data)) == got
    # A full READINGS message (with a 16-byte tag) still fits the MTU.
    assert 24 + len(m.encode_readings(readings)) + 16 + 2 <= 255


def test_direction():
    up = (m.encode_readings([(1, 2, 3)]), m.encode_response(1, 0, 1, 0), m.encode_status(0, 0))
    down = (
        m.encode_ack([1]),
        m.encode_get(1, 1),
        m.encode_set(1, 2, 60),
        m.encode_session_start(1),
    )
    for data in up:
        assert not m.is_downlink(data[0])
        m.decode(data, down=False)
        malformed(data, down=True)
    for data in down:
        assert m.is_downlink(data[0])
        m.decode(data, down=True)
        malformed(data, down=False)


def test_rejects_type_and_length():
    malformed(b"")
    malformed(None)
    malformed("\x03\x00\x01\x02")
    for t in (0, 8, 0x80, 0xFF):
        malformed(bytes((t,)) + bytes(8))
    for data in (
        m.encode_get(1, 2),
        m.encode_set(1, 2, 3),
        m.encode_response(1, 0, 2, 3),
        m.encode_session_start(4),
        m.encode_status(5, 6),
        m.encode_ack([1, 2]),
        m.encode_readings([(1, 2, 3), (4, 5, 6)]),
    ):
        m.decode(data)
        malformed(data + b"\x00")
        malformed(data[:-1])
        malformed(data[:1])


def test_rejects_counts():
    malformed(b"\x01")
    malformed(b"\x02")
    malformed(b"\x01\x00")
    malformed(b"\x02\x00")
    malformed(b"\x01\x0e" + bytes(14 * 16))
    malformed(b"\x02\x0e" + bytes(14 * 4))
    malformed(b"\x02\xff" + bytes(255 * 4))
    malformed(b"\x02\x02" + bytes(4))  # count says 2, one present
    malformed(b"\x02\x01" + bytes(8))  # count says 1, two present
    malformed(b"\x01\x01" + bytes(15))


def test_rejects_unknown_status():
    data = bytearray(m.encode_response(1, 0, 1, 0))
    for status in (4, 0x80, 0xFF):
        data[3] = status
        malformed(bytes(data))


def test_unknown_register_is_not_malformed():
    # A GET of an unknown register decodes: the meter answers it with status 1.
    assert m.decode(m.encode_get(1, 0x99)) == (m.GET, (1, 0x99))
    assert m.decode(m.encode_set(1, 0, 5)) == (m.SET, (1, 0, 5))


def test_encode_range_checks():
    def bad(func, *args):
        raises(ValueError, func, *args)

    bad(m.encode_readings, [])
    bad(m.encode_readings, [(1, 2, 3)] * 14)
    bad(m.encode_readings, [(1 << 32, 0, 0)])
    bad(m.encode_readings, [(0, 1 << 32, 0)])
    bad(m.encode_readings, [(0, 0, 1 << 64)])
    bad(m.encode_readings, [(-1, 0, 0)])
    bad(m.encode_readings, [(0, 0)])
    bad(m.encode_readings, [5])
    bad(m.encode_readings, None)
    bad(m.encode_ack, [])
    bad(m.encode_ack, [0] * 14)
    bad(m.encode_ack, [1 << 32])
    bad(m.encode_ack, [-1])
    bad(m.encode_ack, ["1"])
    bad(m.encode_get, 1 << 16, 1)
    bad(m.encode_get, 1, 256)
    bad(m.encode_set, 1, 1, 1 << 32)
    bad(m.encode_set, 1, 1, -1)
    bad(m.encode_response, 1, 4, 1, 0)
    bad(m.encode_response, 1, -1, 1, 0)
    bad(m.encode_response, -1, 0, 1, 0)
    bad(m.encode_response, 1, 0, 1, 1 << 32)
    bad(m.encode_session_start, 1 << 32)
    bad(m.encode_status, 256, 0)
    bad(m.encode_status, 0, 1 << 32)


def test_join_payloads():
    gx = b"\x02" + bytes(range(32))
    sig = bytes(range(64))
    mic = unhex("0102030405060708")
    req = m.encode_join_request(0x01020304, gx, mic)
    assert req == b"\x01\x02\x03\x04" + gx + mic and len(req) == m.JOIN_REQUEST_LEN == 45
    assert m.join_request_body(0x01020304, gx) == req[:37]
    assert m.decode_join_request(req) == (0x01020304, gx, mic)
    resp = m.encode_join_response(U32, gx, sig)
    assert len(resp) == m.JOIN_RESPONSE_LEN and resp[:4] == b"\xff\xff\xff\xff"
    assert m.decode_join_response(resp) == (U32, gx, sig)
    cert = bytes(i & 0xFF for i in range(116))
    mac = bytes(16)
    conf = m.encode_join_confirm(cert, sig, mac)
    assert conf == cert + sig + mac and len(conf) == m.JOIN_CONFIRM_LEN
    assert m.decode_join_confirm(conf) == (cert, sig, mac)
    # Points are not validated here, only sizes.
    assert m.decode_join_request(bytes(45)) == (0, bytes(33), bytes(8))
    for dec, data in (
        (m.decode_join_request, req),
        (m.decode_join_response, resp),
        (m.decode_join_confirm, conf),
    ):
        for bad in (data[:-1], data + b"\x00", b"", None, "x" * len(data)):
            assert raises(FrameError, dec, bad).reason == "malformed"
        assert dec(bytearray(data)) == dec(data)


def test_join_encode_checks():
    gx = bytes(33)
    sig = bytes(64)
    mic = bytes(8)
    raises(ValueError, m.encode_join_request, 1 << 32, gx, mic)
    raises(ValueError, m.encode_join_request, -1, gx, mic)
    raises(ValueError, m.encode_join_request, 0, gx[:32], mic)
    raises(ValueError, m.encode_join_request, 0, bytes(65), mic)
    raises(ValueError, m.encode_join_request, 0, gx, bytes(7))
    raises(ValueError, m.encode_join_request, 0, gx, bytes(16))
    raises(ValueError, m.encode_join_request, 0, gx, None)
    raises(ValueError, m.join_request_body, 1 << 32, gx)
    raises(ValueError, m.encode_join_response, 0, gx, sig[:63])
    raises(ValueError, m.encode_join_response, 0, gx + b"\x00", sig)
    raises(ValueError, m.encode_join_confirm, bytes(115), sig, bytes(16))
    raises(ValueError, m.encode_join_confirm, bytes(116), sig, bytes(32))
