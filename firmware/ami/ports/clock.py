"""Clock port: wall time for validity windows, monotonic ticks for timers.

The core never reads the clock itself; it is handed one of these. Ticks wrap like
MicroPython's `time.ticks_ms`, so the core must compare them with `ticks_diff` only.
"""

import time

from ami.runtime import const

# Seconds from 1970-01-01 to 2000-01-01: boards whose time epoch is 2000 are shifted by this.
EPOCH_2000_OFFSET = const(946684800)
# 2025-01-01T00:00:00Z: a fixed default start keeps virtual runs reproducible.
DEFAULT_START = const(1735689600)
# The tick period of MicroPython on 32-bit boards; the virtual clock wraps at it by default so
# host runs exercise the same wrap-around as a board.
TICKS_PERIOD = const(1 << 30)

try:
    _EPOCH_OFFSET = EPOCH_2000_OFFSET if time.gmtime(0)[0] == 2000 else 0
except (AttributeError, OSError):  # no gmtime: assume the Unix epoch
    _EPOCH_OFFSET = 0

# Bare-metal ports without an RTC binding (the emulated MPS2 boards) have no time.time().
_time = getattr(time, "time", None)

if hasattr(time, "ticks_ms"):  # MicroPython: wrapping ticks with their own arithmetic
    _ticks_ms = time.ticks_ms
    _ticks_diff = time.ticks_diff
    _ticks_add = time.ticks_add
else:  # CPython: an unbounded monotonic count needs no wrap handling

    def _ticks_ms():
        return time.monotonic_ns() // 1000000

    def _ticks_diff(a, b):
        return a - b

    def _ticks_add(t, delta):
        return t + delta


class SystemClock:
    """The platform clock. `now()` is only as good as the RTC: unsynced boards report ~2000.

    Without any wall clock (no `time.time`), `now()` counts from 2000-01-01 at boot, as an
    unset RTC would, from the ticks: it must then be called at least once per half tick
    period (6 days on 32-bit boards) to carry their wrap-around.
    """

    def __init__(self):
        self._last = _ticks_ms()
        self._since_boot_ms = self._last  # ticks start at boot, within their first period

    def now(self):
        """Seconds since 1970-01-01 UTC, as an int."""
        if _time is not None:
            return int(_time()) + _EPOCH_OFFSET
        t = _ticks_ms()
        self._since_boot_ms += _ticks_diff(t, self._last)
        self._last = t
        return EPOCH_2000_OFFSET + self._since_boot_ms // 1000

    def ticks_ms(self):
        """Monotonic milliseconds; may wrap, compare with ticks_diff."""
        return _ticks_ms()

    def ticks_diff(self, a, b):
        """Signed a - b in ms, correct across one wrap."""
        return _ticks_diff(a, b)

    def ticks_add(self, t, delta):
        """The tick value delta ms after t (for deadlines)."""
        return _ticks_add(t, delta)


class VirtualClock:
    """A clock that moves only when told to: deterministic time for hosts and tests."""

    def __init__(self, start=DEFAULT_START, ticks=0, period=TICKS_PERIOD):
        if period <= 1 or period & (period - 1):
            raise ValueError("tick period must be a power of two")
        self._mask = period - 1
        self._half = period >> 1
        self._wall_ms = _check_int(start, "start") * 1000
        self._ticks = _check_int(ticks, "ticks") & self._mask

    def now(self):
        """Seconds since 1970-01-01 UTC, as an int."""
        return self._wall_ms // 1000

    def ticks_ms(self):
        """Monotonic milliseconds, wrapping at the period."""
        return self._ticks

    def ticks_diff(self, a, b):
        """Signed a - b in ms, correct across one wrap."""
        return ((a - b + self._half) & self._mask) - self._half

    def ticks_add(self, t, delta):
        """The tick value delta ms after t (for deadlines)."""
        return (t + delta) & self._mask

    def advance_ms(self, ms):
        """Move wall time and ticks forward together by ms (>= 0)."""
        if _check_int(ms, "ms") < 0:
            raise ValueError("time only moves forward")
        self._wall_ms += ms
        self._ticks = (self._ticks + ms) & self._mask

    def set(self, epoch_seconds):
        """Step wall time, as an RTC sync would; ticks are untouched (they stay monotonic)."""
        self._wall_ms = _check_int(epoch_seconds, "epoch_seconds") * 1000


def _check_int(value, what):
    # bool is an int subclass; True seconds is almost certainly a caller bug.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(what + " must be an int")
    return value
