"""Transport port: loopback pairs, SLIP over in-memory streams, files, UARTs and pipes."""

import io
import os

from ami.ports.clock import SystemClock
from ami.ports.framing import slip_encode
from ami.ports.transport import READ_BUDGET, LoopbackTransport, StreamTransport
from fwtest import Fifo, raises, remove_tree, temp_dir

FRAMES = [b"one", b"\xc0\xdb", bytes(range(256)), b"\x03\r\n"]


class FakeUart(Fifo):
    """machine.UART-like: any() says how much is buffered."""

    def any(self):
        return self.pending()


class DribbleWriter:
    """Takes at most 3 bytes per write and sometimes nothing (None), like a busy UART."""

    def __init__(self):
        self.data = b""
        self.calls = 0

    def write(self, data):
        self.calls += 1
        if self.calls % 2:
            return None
        self.data += bytes(data[:3])
        return min(3, len(data))


class StalledWriter:
    def write(self, data):
        return 0


def _poll_until(t, count, rounds=100):
    got = []
    for _ in range(rounds):
        got += t.poll()
        if len(got) >= count:
            break
    return got


def test_loopback_pair():
    a, b = LoopbackTransport.pair()
    assert a.poll() == []
    for f in FRAMES:
        a.send(f)
    b.send(bytearray(b"back"))
    assert b.poll() == FRAMES
    assert b.poll() == []
    got = a.poll()
    assert got == [b"back"]
    assert isinstance(got[0], bytes)
    assert a.sent == len(FRAMES)


def test_loopback_refuses_bad_frames():
    a, b = LoopbackTransport.pair(max_frame=4)
    a.send(b"1234")
    raises(ValueError, a.send, b"12345")
    raises(ValueError, a.send, b"")
    raises(TypeError, a.send, "text")
    assert b.poll() == [b"1234"]
    raises(OSError, LoopbackTransport().send, b"x")


def test_stream_send_writes_slip():
    out = io.BytesIO()
    t = StreamTransport(io.BytesIO(), out)
    for f in FRAMES:
        t.send(f)
    assert out.getvalue() == b"".join([slip_encode(f) for f in FRAMES])
    raises(ValueError, t.send, b"")
    raises(ValueError, t.send, b"x" * (t.max_frame + 1))


def test_stream_reads_bytesio_until_eof():
    stream = b"".join([slip_encode(f) for f in FRAMES])
    t = StreamTransport(io.BytesIO(stream), io.BytesIO())
    assert _poll_until(t, len(FRAMES)) == FRAMES
    assert t.poll() == []
    assert t.eof


def test_stream_pair_over_fifos():
    ab, ba = Fifo(), Fifo()
    a = StreamTransport(ba, ab)
    b = StreamTransport(ab, ba)
    assert a.poll() == [] and b.poll() == []
    assert not a.eof  # None means "nothing yet", not end of stream
    for f in FRAMES:
        a.send(f)
    b.send(b"reply")
    assert b.poll() == FRAMES
    assert a.poll() == [b"reply"]


def test_stream_read_budget_spreads_over_polls():
    ab = Fifo()
    a = StreamTransport(Fifo(), ab)
    b = StreamTransport(ab, Fifo())
    frames = [bytes([i]) + b"\xc0" * 700 for i in range(4)]  # ~1.4 KB each on the wire
    for f in frames:
        a.send(f)
    first = b.poll()
    assert len(first) < len(frames)  # one poll reads at most READ_BUDGET bytes
    assert ab.pending() > 0
    assert first + _poll_until(b, len(frames) - len(first)) == frames
    assert READ_BUDGET >= 1


def test_stream_over_uart():
    rx, tx = FakeUart(), FakeUart()
    t = StreamTransport(rx, tx)
    rx.write(slip_encode(b"from host")[:4])
    assert t.poll() == []
    rx.write(slip_encode(b"from host")[4:])
    assert t.poll() == [b"from host"]
    t.send(b"to host")
    assert tx.read(100) == slip_encode(b"to host")


def test_stream_partial_and_refused_writes():
    w = DribbleWriter()
    t = StreamTransport(Fifo(), w)
    t.send(bytes(range(256)))
    assert w.data == slip_encode(bytes(range(256)))
    raises(OSError, StreamTransport(Fifo(), StalledWriter()).send, b"x")


def test_stream_over_a_polled_file():
    root = temp_dir()
    try:
        os.mkdir(root)
        path = root + "/stream"
        with open(path, "wb") as f:
            f.write(b"".join([slip_encode(x) for x in FRAMES]))
        with open(path, "rb") as f:
            t = StreamTransport(f, io.BytesIO())
            assert _poll_until(t, len(FRAMES)) == FRAMES
            assert t.eof
    finally:
        remove_tree(root)


ECHO = """
import time
from ami.ports.transport import stdio_transport
t = stdio_transport()
while not t.eof:
    for f in t.poll():
        t.send(b"echo:" + f)
    time.sleep(0.002)
"""


def _echo_through(cmd, env):
    import subprocess
    import time

    proc = subprocess.Popen(
        cmd + ["-c", ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        t = StreamTransport(proc.stdout, proc.stdin)
        for f in FRAMES:
            t.send(f)
        clock = SystemClock()
        start = clock.ticks_ms()
        got = []
        while len(got) < len(FRAMES) and clock.ticks_diff(clock.ticks_ms(), start) < 10000:
            got += t.poll()
            time.sleep(0.001)
        proc.stdin.close()
        assert proc.wait(10) == 0
        assert got == [b"echo:" + f for f in FRAMES]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_stdio_transport_over_pipes():
    """CPython only: a child (CPython, then the MicroPython unix port) echoes frames on stdio."""
    try:
        import subprocess  # noqa: F401
        import sys

        from amitools.runtimes import micropython_binary
    except ImportError:  # MicroPython: no processes to spawn
        return
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    firmware = os.path.join(root, "firmware")
    env = dict(os.environ)
    env["PYTHONPATH"] = firmware
    _echo_through([sys.executable], env)
    env["MICROPYPATH"] = firmware + os.pathsep + ".frozen"
    _echo_through([micropython_binary()], env)
