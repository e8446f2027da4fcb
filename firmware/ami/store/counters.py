"""Persisted counters (docs/protocol.md section 5): reserved ahead, never reused after a cut.

Both classes keep one small record in a RecordStore and load it when constructed. A corrupt
record raises RecordCorrupt from the constructor: the owner must then rejoin (new keys), never
carry on from zero, and the new session constructs them with `start=` / `fresh=True`, which
replace the record without loading it. Both are bound to one session key: when a session
changes, persist the new keys BEFORE the reset, so that a cut in between leaves the new keys
with the old (higher) values rather than the old keys with values from zero.
"""

import struct

from ami.runtime import const
from ami.store.records import RecordCorrupt

MAX_COUNTER = const(0xFFFFFFFF)
DEFAULT_RESERVE = const(64)


class CounterExhausted(Exception):
    """The transmit counter reached its cap: the session must be replaced by a rejoin."""

    reason = "counter_exhausted"


def _check_reserve(reserve):
    if not isinstance(reserve, int) or not 1 <= reserve <= MAX_COUNTER:
        raise ValueError("reserve must be an int in 1..2^32-1")
    return reserve


def _load_u32(records, name, empty_ok):
    """The u32 in record name, None if never written (or empty, where allowed)."""
    data = records.read(name)
    if data is None or (empty_ok and not data):
        return None
    if len(data) != 4:
        raise RecordCorrupt(name, "bad payload length %d" % len(data))
    return struct.unpack(">I", data)[0]


class TxCounter:
    """Transmit counter: hands out each value below cap at most once, across power cuts.

    Flash holds a limit L; values below L may be handed out. When the next value reaches L,
    L + reserve is persisted first, so after a reboot counting resumes at L, above every value
    handed out. One record write per `reserve` values.
    """

    def __init__(self, records, name, reserve=DEFAULT_RESERVE, cap=MAX_COUNTER, start=None):
        """Load the persisted state, or with start (an int) begin a new session there (reset)."""
        self._records = records
        self._name = name
        self._reserve = _check_reserve(reserve)
        if not isinstance(cap, int) or not 1 <= cap <= MAX_COUNTER:
            raise ValueError("cap must be an int in 1..2^32-1")
        self._cap = cap
        if start is not None:  # the record is not read: it may be corrupt, it is replaced
            self.reset(start)
            return
        limit = _load_u32(records, name, False)
        # Never written: no value was ever handed out under this name (next() persists first).
        self._limit = 0 if limit is None else limit
        self._next = self._limit

    @property
    def value(self):
        """The value next() hands out next (if below the cap)."""
        return self._next

    @property
    def limit(self):
        """The persisted limit: no value at or above it has been handed out."""
        return self._limit

    def next(self):
        """A counter value never handed out before; CounterExhausted at the cap."""
        n = self._next
        if n >= self._cap:
            raise CounterExhausted("transmit counter reached %d" % self._cap)
        if n >= self._limit:
            self._persist(n)
        self._next = n + 1
        return n

    def reset(self, start=0):
        """Start again at start for a new session key (see the module note); persists."""
        if not isinstance(start, int) or not 0 <= start <= self._cap:
            raise ValueError("start must be an int in 0..cap")
        self._persist(start)
        self._next = start

    def _persist(self, n):
        limit = min(n + self._reserve, self._cap)
        self._records.write(self._name, struct.pack(">I", limit))
        self._limit = limit  # only once the write returned: a failed write leaves the old one


class RxFloor:
    """Receive floor: after a reboot, only counters above `floor` may be accepted.

    The record holds P, at or above every counter noted; note() moves it to counter + reserve
    when a counter reaches it. `floor` is P as loaded (or None: nothing received under this
    key) and stays fixed until reset(), since the replay window guards the counters above it;
    the device reports it in STATUS after a reboot. Call note() after a frame authenticates
    and BEFORE acting on it: a frame whose note() was cut short had no effect, so accepting
    it again once is harmless.
    """

    def __init__(self, records, name, reserve=DEFAULT_RESERVE, fresh=False):
        """Load the persisted floor, or with fresh=True begin a new session (reset)."""
        self._records = records
        self._name = name
        self._reserve = _check_reserve(reserve)
        if fresh:  # the record is not read: it may be corrupt, it is replaced
            self.reset()
            return
        self._persisted = _load_u32(records, name, True)
        self._floor = self._persisted

    @property
    def floor(self):
        """Counters at or below this were (or may have been) accepted; None: nothing yet."""
        return self._floor

    @property
    def persisted(self):
        """The value in flash now (at or above every counter noted), or None."""
        return self._persisted

    def note(self, counter):
        """Record that counter authenticated; persists first when it reaches the stored value."""
        if not isinstance(counter, int) or not 0 <= counter <= MAX_COUNTER:
            raise ValueError("counter must be an int in 0..2^32-1")
        p = self._persisted
        if p is None or counter >= p:
            p = min(counter + self._reserve, MAX_COUNTER)
            self._records.write(self._name, struct.pack(">I", p))
            self._persisted = p

    def reset(self):
        """No floor for a new session key (see the module note); persists an empty record."""
        self._records.write(self._name, b"")
        self._persisted = None
        self._floor = None
