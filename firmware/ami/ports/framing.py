"""SLIP framing (RFC 1055) for serial links, sans-IO: bytes in, frames out.

Frames are sent as END, payload with END and ESC escaped, END. The leading END flushes any
line noise in the receiver into a junk frame of its own instead of prefixing the real one.
The decoder never raises on input: bad frames are dropped and counted. Frames carry no
checksum here; the link layer above authenticates them.
"""

from ami.runtime import const

END = const(0xC0)
ESC = const(0xDB)
ESC_END = const(0xDC)
ESC_ESC = const(0xDD)
MAX_FRAME = const(1024)

_B_END = b"\xc0"
_B_ESC = b"\xdb"


def slip_encode(frame):
    """The SLIP encoding of one frame (bytes-like), delimited by END on both sides."""
    frame = bytes(frame)
    frame = frame.replace(_B_ESC, b"\xdb\xdd").replace(_B_END, b"\xdb\xdc")
    return _B_END + frame + _B_END


class SlipDecoder:
    """Incremental SLIP decoder with a frame length limit.

    Counters: `frames` delivered, `oversized` frames dropped for length, `errors` frames
    dropped for a bad escape. Empty frames (back-to-back ENDs) are skipped silently.
    """

    def __init__(self, max_frame=MAX_FRAME):
        if not isinstance(max_frame, int) or max_frame < 1:
            raise ValueError("max_frame must be a positive int")
        self.max_frame = max_frame
        self._buf = bytearray(max_frame)  # allocated once: no heap churn per byte
        self._len = 0
        self._esc = False
        self._drop = 0  # 0 keep, 1 oversized, 2 bad escape: frame skipped up to the next END
        self.frames = 0
        self.oversized = 0
        self.errors = 0

    def reset(self):
        """Forget any partial frame (e.g. after the link was reopened)."""
        self._len = 0
        self._esc = False
        self._drop = 0

    def feed(self, data):
        """Consume bytes; return the list of complete frames (bytes) they finished."""
        out = []
        buf = self._buf
        for b in data:
            if b == END:
                if self._drop == 1:
                    self.oversized += 1
                elif self._drop == 2 or self._esc:  # an ESC right before END is malformed
                    self.errors += 1
                elif self._len:
                    out.append(bytes(memoryview(buf)[: self._len]))
                    self.frames += 1
                self.reset()
                continue
            if self._drop:
                continue
            if self._esc:
                self._esc = False
                if b == ESC_END:
                    b = END
                elif b == ESC_ESC:
                    b = ESC
                else:
                    self._drop = 2
                    continue
            elif b == ESC:
                self._esc = True
                continue
            if self._len >= self.max_frame:
                self._drop = 1
                continue
            buf[self._len] = b
            self._len += 1
        return out
