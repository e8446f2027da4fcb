"""Transport port: whole frames in and out, never blocking.

`send(frame)` queues or writes one frame; `poll()` returns the frames that arrived since the
last call (possibly none). Empty frames (SLIP cannot carry them) and frames longer than
`max_frame` are refused with ValueError on send.
"""

import sys

from ami.ports.framing import MAX_FRAME, SlipDecoder, slip_encode
from ami.runtime import const

try:
    import select
except ImportError:  # a port without select: only streams that never block can be used
    select = None

# Bytes taken from a stream per poll() call, so one chatty peer cannot stall the main loop.
READ_BUDGET = const(2048)
# Consecutive writes that make no progress before send() gives up.
WRITE_RETRIES = const(1000)


def _check_frame(frame, max_frame):
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise TypeError("frame must be bytes-like")
    if not 0 < len(frame) <= max_frame:
        raise ValueError("frame must be 1..%d bytes, not %d" % (max_frame, len(frame)))


class LoopbackTransport:
    """One end of an in-memory link; build connected ends with `LoopbackTransport.pair()`."""

    def __init__(self, max_frame=MAX_FRAME):
        self.max_frame = max_frame
        self.peer = None
        self._inbox = []
        self.sent = 0

    @classmethod
    def pair(cls, max_frame=MAX_FRAME):
        """Two connected ends (a, b): a.send(x) makes x appear in b.poll(), and back."""
        a = cls(max_frame)
        b = cls(max_frame)
        a.peer = b
        b.peer = a
        return a, b

    def send(self, frame):
        """Deliver one frame to the peer's inbox."""
        _check_frame(frame, self.max_frame)
        if self.peer is None:
            raise OSError("loopback end not connected")
        self.peer._inbox.append(bytes(frame))
        self.sent += 1

    def poll(self):
        """Frames received since the last poll, oldest first."""
        out = self._inbox
        self._inbox = []
        return out


class StreamTransport:
    """SLIP frames over a byte stream pair: pipes, stdio, a UART, or an in-memory stream.

    How the reader is read without blocking is chosen by what it offers:
    - `any()` (machine.UART): read what is buffered;
    - pollable by `select.poll`: read while it reports data, with `read1` where it exists,
      else byte by byte with `readinto` (MicroPython's `read(n)` waits for all n bytes);
    - otherwise the reader must never block itself (io.BytesIO, files that cannot be polled,
      non-blocking sockets: `read` returns what it has, None for nothing yet, b"" at the end).
    `eof` becomes True once the reader reports end of stream.
    """

    def __init__(self, reader, writer, max_frame=MAX_FRAME):
        self.reader = reader
        self.writer = writer
        self.max_frame = max_frame
        self.decoder = SlipDecoder(max_frame)
        self.eof = False
        self._read_some = self._pick_reader(reader)

    def _pick_reader(self, reader):
        if hasattr(reader, "any"):
            return self._read_any
        poller = _poller_for(reader)
        if poller is None:
            # Read on to the budget, as when polled: a file that cannot be polled (one on
            # littlefs: MicroPython's poll() refuses it with EINVAL) reports its end at once.
            self._chunk, self._more = reader.read, _always
            return self._read_chunks
        # ipoll (MicroPython) reuses its result instead of allocating a list per call.
        self._poll0 = getattr(poller, "ipoll", None) or poller.poll
        if hasattr(reader, "read1"):
            self._chunk, self._more = reader.read1, self._ready
            return self._read_chunks
        self._one = bytearray(1)
        return self._read_polled_bytes

    def send(self, frame):
        """SLIP-encode one frame and write it out, flushing where the writer buffers."""
        _check_frame(frame, self.max_frame)
        data = memoryview(slip_encode(frame))
        stalls = 0
        while len(data):
            n = self.writer.write(data)  # None: a non-blocking writer or UART took nothing
            if n:
                data = data[n:]
                stalls = 0
            else:
                stalls += 1
                if stalls >= WRITE_RETRIES:
                    raise OSError("transport write stalled")
        flush = getattr(self.writer, "flush", None)
        if flush is not None:
            flush()

    def wait(self, ms):
        """Idle until input may have arrived, or ms passed (-1: no limit where the reader
        can be polled; a short nap where it cannot)."""
        poll0 = getattr(self, "_poll0", None)
        if poll0 is not None:
            for _ in poll0(ms):
                break
            return
        import time

        ms = ms if ms >= 0 else 1
        if hasattr(time, "sleep_ms"):
            time.sleep_ms(ms)
        else:
            time.sleep(ms / 1000)

    def poll(self):
        """Frames received since the last poll; never blocks."""
        if self.eof:
            return []
        data = self._read_some()
        if not data:
            return []
        return self.decoder.feed(data)

    def _ready(self):
        for _ in self._poll0(0):
            return True
        return False

    def _read_any(self):
        n = self.reader.any()
        return self.reader.read(min(n, READ_BUDGET)) if n else None

    def _read_chunks(self):
        out = b""
        while len(out) < READ_BUDGET and self._more():
            data = self._chunk(READ_BUDGET - len(out))
            if data is None:  # nothing more yet, or a spurious wake-up
                break
            if not data:
                self.eof = True
                break
            out += data
        return out

    def _read_polled_bytes(self):
        out = bytearray()
        one = self._one
        while len(out) < READ_BUDGET and self._ready():
            n = self.reader.readinto(one)  # a reused buffer: no allocation per byte
            if n is None:
                break
            if not n:
                self.eof = True
                break
            out.append(one[0])
        return out


def _always():
    return True


def _poller_for(stream):
    if select is None:
        return None
    poller = select.poll()
    try:
        poller.register(stream, select.POLLIN)
        # MicroPython registers any stream but fails at poll time if it cannot poll it.
        poller.poll(0)
    except (OSError, ValueError, TypeError, AttributeError):  # no fileno / not pollable
        return None
    return poller


def stdio_transport(max_frame=MAX_FRAME, disable_ctrl_c=True):
    """A StreamTransport over this process's stdin/stdout in binary mode.

    On MicroPython a 0x03 byte on stdin would raise KeyboardInterrupt, so Ctrl-C is turned
    off (where `micropython.kbd_intr` exists) unless disable_ctrl_c is False. Nothing else
    may print to stdout while the transport is in use: it would corrupt the frame stream.
    """
    reader = getattr(sys.stdin, "buffer", sys.stdin)
    writer = getattr(sys.stdout, "buffer", sys.stdout)
    if disable_ctrl_c:
        try:
            import micropython

            micropython.kbd_intr(-1)
        except (ImportError, AttributeError):
            pass
    return StreamTransport(reader, writer, max_frame)
