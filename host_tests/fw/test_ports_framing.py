"""SLIP codec: escapes, any split of the stream, garbage and oversized frames."""

from ami.ports.entropy import DeterministicEntropy
from ami.ports.framing import MAX_FRAME, SlipDecoder, slip_encode
from fwtest import raises

FRAMES = [b"hello", b"\xc0", b"\xdb", b"\xdb\xdc\xc0\xdd", bytes(range(256)), b"\xc0\xc0x\xdb"]


def test_encode_escapes():
    assert slip_encode(b"\xc0\xdb\x01") == b"\xc0\xdb\xdc\xdb\xdd\x01\xc0"
    assert slip_encode(b"\xdb\xdc") == b"\xc0\xdb\xdd\xdc\xc0"
    assert slip_encode(bytearray(b"ab")) == b"\xc0ab\xc0"
    assert slip_encode(memoryview(b"ab")) == b"\xc0ab\xc0"


def test_round_trip():
    d = SlipDecoder()
    for frame in FRAMES:
        assert d.feed(slip_encode(frame)) == [frame]
    assert d.frames == len(FRAMES)
    assert d.errors == 0
    assert d.oversized == 0


def test_every_split_position():
    stream = b"".join([slip_encode(f) for f in FRAMES[:4]])
    for i in range(len(stream) + 1):
        d = SlipDecoder()
        assert d.feed(stream[:i]) + d.feed(stream[i:]) == FRAMES[:4]
    d = SlipDecoder()
    out = []
    for i in range(len(stream)):
        out += d.feed(stream[i : i + 1])
    assert out == FRAMES[:4]


def test_trailing_end_only_and_empty_frames():
    d = SlipDecoder()
    assert d.feed(b"abc\xc0\xc0\xc0\xc0def\xc0") == [b"abc", b"def"]
    assert d.errors == 0


def test_noise_before_a_frame_stays_separate():
    d = SlipDecoder()
    assert d.feed(b"noise" + slip_encode(b"frame")) == [b"noise", b"frame"]


def test_bad_escape_dropped_and_counted():
    d = SlipDecoder()
    assert d.feed(b"\xc0abc\xdb\x01def\xc0") == []
    assert d.errors == 1
    assert d.feed(b"\xc0ab\xdb\xc0") == []  # ESC right before END
    assert d.errors == 2
    assert d.feed(slip_encode(b"ok")) == [b"ok"]
    assert d.errors == 2


def test_oversized_dropped_and_counted():
    d = SlipDecoder(max_frame=8)
    assert d.feed(slip_encode(b"123456789")) == []
    assert d.oversized == 1
    assert d.feed(slip_encode(b"\xc0" * 8)) == [b"\xc0" * 8]  # limit is on decoded bytes
    big = slip_encode(b"x" * 1000)
    assert d.feed(big[:500]) == []
    assert d.feed(big[500:] + slip_encode(b"next")) == [b"next"]
    assert d.oversized == 2
    assert d.frames == 2


def test_reset_drops_partial_frame():
    d = SlipDecoder()
    d.feed(b"\xc0partial")
    d.reset()
    assert d.feed(b"rest\xc0") == [b"rest"]


def test_garbage_never_raises():
    rng = DeterministicEntropy(b"slip-garbage")
    d = SlipDecoder(max_frame=16)
    for _ in range(50):
        for frame in d.feed(rng.random_bytes(97)):
            assert 0 < len(frame) <= 16
    assert d.feed(slip_encode(b"still works")) == [b"still works"]
    assert d.frames + d.errors + d.oversized > 0


def test_defaults_and_bad_limit():
    assert SlipDecoder().max_frame == MAX_FRAME
    raises(ValueError, SlipDecoder, 0)
    raises(ValueError, SlipDecoder, "8")
