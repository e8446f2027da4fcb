"""Sliding replay window per key and direction (docs/protocol.md section 5).

State is explicit: `top is None` means nothing received (no magic counter value); otherwise
`top` is the highest accepted counter and bit i of `bits` records that top - i was accepted,
for i below `size`. The bitmap is a Python int, so any size works and counters span the whole
u32 range. `floor` (e.g. the persisted receive floor after a reboot) rejects every counter at
or below it, whatever the window says.

Use: check(counter) before decrypting (no state change), accept(counter) only after the tag
verified. accept() checks again, so a counter can never be accepted twice.
"""

from ami.runtime import const

MAX_COUNTER = const(0xFFFFFFFF)
DEFAULT_SIZE = const(64)


class ReplayError(Exception):
    """accept() was given a counter the window rejects."""

    reason = "replay"


def _check_counter(counter):
    if not isinstance(counter, int) or not 0 <= counter <= MAX_COUNTER:
        raise ValueError("counter must be an int in 0..2^32-1")
    return counter


class ReplayWindow:
    """The last `size` counters below the highest accepted one, plus an optional floor."""

    def __init__(self, size=DEFAULT_SIZE, floor=None):
        if not isinstance(size, int) or size < 1:
            raise ValueError("window size must be an int >= 1")
        self.size = size
        self._mask = (1 << size) - 1
        self.reset(floor)

    def reset(self, floor=None):
        """Back to nothing received, with a new floor (None: no floor)."""
        if floor is not None:
            _check_counter(floor)
        self.floor = floor
        self.top = None
        self.bits = 0

    def check(self, counter):
        """True if counter may be accepted: above the floor, not seen, not older than the window."""
        _check_counter(counter)
        if self.floor is not None and counter <= self.floor:
            return False
        top = self.top
        if top is None or counter > top:
            return True
        age = top - counter
        return age < self.size and not (self.bits >> age) & 1

    def accept(self, counter):
        """Record an authenticated counter (slide or mark); ReplayError if check() refuses it."""
        if not self.check(counter):
            raise ReplayError("replay: counter %d" % counter)
        top = self.top
        if top is None:
            self.bits = 1
        elif counter > top:
            shift = counter - top
            # A jump past the window clears it; never shift by a huge amount (a huge int).
            self.bits = ((self.bits << shift) | 1) & self._mask if shift < self.size else 1
        else:
            self.bits |= 1 << (top - counter)
            return
        self.top = counter
