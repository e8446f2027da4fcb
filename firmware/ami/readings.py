"""Store-and-forward reading queue (docs/protocol.md section 8): a ring of sealed pages.

A reading is 16 bytes, `seq (4) | time (4) | wh (8)`, big-endian, as in READINGS (section 4);
in code a tuple (seq, time, wh). The queue keeps every reading until the head end
acknowledges it (ACK), oldest first, across power cuts.

Records (sealed A/B records of section 5), for a prefix "rq", N slots (default 7) and pages
of P = ceil(max_queue / (N - 1)) readings (32 for the default max_queue of 192):

- `rq.0` .. `rq.{N-1}`: pages, each `floor (4) | n x reading (16)`, 1 <= n <= 64, seqs
  strictly increasing. floor is the lowest unacknowledged seq when the page was written
  (every reading below it was acknowledged or dropped). The ring fills a page with P
  readings, then moves on to the next one (mod N), replacing what that one held; so it
  always holds the last (N - 1) * P >= max_queue readings.
- `rq.hi`: `limit (4)`: every seq ever handed out is below it. Before a seq at or above it
  is handed out, limit = seq + RESERVE (1024) is written.

Writes (flash wear). append() rewrites the current page with the new reading added: one
page write per reading, plus one `rq.hi` write per RESERVE readings (and two more after a
boot that found a corrupt page). The pages take turns, P appends each, so each page
record gets 1/N of the writes and each of its two slots 1/(2N): at 96 readings a day and
N = 7, 6.9 writes a day per slot, about 40 years for a 100,000-cycle flash with fixed A/B
sectors (N = 2 would be 11). ack() writes nothing: acknowledgements reach flash with the
floor of the next page written, so a reading acknowledged since may be sent again after a
reboot (the head end drops duplicates by seq); an unacknowledged one is never dropped.

Boot. The page holding the highest seq (top) is the current one (the next append goes to
the following page if it is full); the next seq is top + 1, or 0 on an empty flash. The
queue is every reading in the pages with seq >= the highest floor found, in seq order;
energy is the wh of the newest reading.

Durability. append() returns once its page is written: a reading whose append returned is
in flash until acknowledged. A write torn at any byte damages only the older copy of that
page (section 5), so the page reads as it was before that append (for the first write of a
page in a ring cycle: as it was a cycle ago, the oldest page of the ring): the readings of
returned appends are all still there, and top + 1 is the seq the torn append would have
handed out, which nobody saw. An unacknowledged reading leaves the queue only by overflow:
append drops the oldest beyond max_queue, and any whose page it replaces (only acks that
left holes, or a max_queue raised since, let one stay that long), and reports how many in
`overflow`.

Sequence numbers strictly increase across power cuts torn at any byte and are never
reused; without a corrupt record they are contiguous. A record with no valid copy (its very
first write torn, or tampering) is named in `corrupt` and read as empty. A corrupt page may
have held the newest seqs, so the boot then resumes at `rq.hi`'s limit. A torn first write
is always to the page the next append rewrites and hid nothing: that skips at most
RESERVE numbers, and one more for each boot until a page write heals the page (the first
limit written after a skip is only one ahead). With `rq.hi` unusable as well (two damaged
records: tampering) the boot skips RESERVE + N * 64 numbers per corrupt page, best effort.
The readings a corrupt page held are lost. Like every record (section 5), an attacker who
puts back old genuine slots can roll the queue back; nothing here detects that. N and the
prefix must not change over a device's life (max_queue may: the page size follows it).
"""

import struct

from ami.runtime import const
from ami.store.records import check_record_name, read_valid

READING_LEN = const(16)
MAX_PAGE = const(64)  # readings a page may hold (P is at most this)
SLOTS = const(7)  # page records in the ring, by default
MAX_SLOTS = const(16)
RESERVE = const(1024)  # seqs handed out per rq.hi write, by default
MAX_U32 = const(0xFFFFFFFF)
MAX_U64 = 0xFFFFFFFFFFFFFFFF  # not a const: above a small int on 32-bit ports
_HEAD = const(4)


def _u(value, top, name):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
        raise ValueError("%s out of range" % name)
    return value


def _seq(data, off):
    return struct.unpack_from(">I", data, off)[0]


def _valid_page(data):
    """True if data is floor and 1..MAX_PAGE readings with strictly increasing seqs."""
    n = len(data) - _HEAD
    if n < READING_LEN or n % READING_LEN or n > MAX_PAGE * READING_LEN:
        return False
    last = -1
    for off in range(_HEAD, len(data), READING_LEN):
        seq = _seq(data, off)
        if seq <= last:
            return False
        last = seq
    return True


class ReadingQueue:
    """The persistent queue of unacknowledged readings of one meter (see the module doc)."""

    def __init__(self, records, prefix="rq", slots=SLOTS, max_queue=192, reserve=RESERVE):
        """Load the queue from records (a RecordStore); a corrupt record is never fatal.
        reserve: seqs handed out per `rq.hi` write (tests use a small one)."""
        if not isinstance(prefix, str):
            raise TypeError("prefix must be a str")
        _u(slots, MAX_SLOTS, "slots")
        if slots < 2:
            raise ValueError("slots must be at least 2")
        _u(max_queue, (slots - 1) * MAX_PAGE, "max_queue")
        if not max_queue:
            raise ValueError("max_queue must be positive")
        self._reserve = _u(reserve, MAX_U32, "reserve")
        if not reserve:
            raise ValueError("reserve must be positive")
        self.max_queue = max_queue
        self.slots = slots
        self.page = (max_queue + slots - 2) // (slots - 1)  # readings per page: ceil
        self._records = records
        self._names = [check_record_name(prefix + ".%d" % i) for i in range(slots)]
        self._hi = check_record_name(prefix + ".hi")
        self.corrupt = []  # record names found corrupt at boot (replaced at their next write)
        self.overflow = 0  # unacknowledged readings the last append() dropped
        self._load()

    # --- boot ---------------------------------------------------------------------------

    def _load(self):
        n = self.slots
        data = [read_valid(self._records, self._names[i], _valid_page, self.corrupt)
                for i in range(n)]
        bad = len(self.corrupt)
        hi = read_valid(self._records, self._hi, _valid_hi, self.corrupt)
        order = []  # (first seq, index) of the pages holding readings
        lasts = [-1] * n  # last seq of each page (-1: none known)
        top = -1
        head = 0
        floor = 0
        for i in range(n):
            page = data[i]
            if page is None:
                continue
            floor = max(floor, _seq(page, 0))
            last = _seq(page, len(page) - READING_LEN)
            lasts[i] = last
            order.append((_seq(page, _HEAD), i))
            if last > top:
                top, head = last, i
        nxt = top + 1
        limit = _seq(hi, 0) if hi is not None else None
        if bad:
            # A corrupt page may have held seqs above top: resume above every seq handed out.
            if limit is not None:
                nxt = max(nxt, limit)
            else:
                nxt += bad * (self._reserve + n * MAX_PAGE)
        self._next = nxt
        # An absent or corrupt limit is written again before the next seq is handed out.
        self._limit = limit if limit is not None else 0
        # After a skip, the first limit written is nxt + 1 only: should a cut come before
        # its page write again and again, each boot skips one number, not RESERVE.
        self._skipped = bool(bad)
        # The queue: readings from the highest floor on, oldest page first (seq order).
        order.sort()
        q = bytearray()
        energy = 0
        last = -1
        for _first, i in order:
            page = data[i]
            for off in range(_HEAD, len(page), READING_LEN):
                seq = _seq(page, off)
                if seq <= last:
                    continue  # pages never overlap, unless an attacker put old ones back
                last = seq
                if seq >= floor:
                    q.extend(page[off : off + READING_LEN])
                if seq == top:
                    energy = struct.unpack_from(">Q", page, off + 8)[0]
        self._q = q
        self._energy = energy
        self._cur = head
        self._buf = bytearray(data[head][_HEAD:]) if data[head] is not None else bytearray()
        self._lasts = lasts

    # --- the queue ---------------------------------------------------------------------

    @property
    def next_seq(self):
        """The seq the next reading gets."""
        return self._next

    @property
    def energy(self):
        """The wh of the newest reading (0 before the first)."""
        return self._energy

    def __len__(self):
        return len(self._q) // READING_LEN

    def append(self, time_s, wh):
        """Queue a reading; returns its seq. In flash when this returns (see the module
        doc); `overflow` tells how many unacknowledged readings it dropped."""
        _u(time_s, MAX_U32, "time")
        _u(wh, MAX_U64, "wh")
        seq = self._next
        if seq >= MAX_U32:
            raise OverflowError("reading sequence exhausted")
        q = self._q
        size = self.page * READING_LEN
        fresh = len(self._buf) >= size  # the current page is full: replace the next one
        cur = (self._cur + 1) % self.slots if fresh else self._cur
        # Readings leaving: those of the page replaced, then the oldest beyond max_queue.
        drop = 0
        if fresh:
            gone = self._lasts[cur]
            while drop < len(q) and _seq(q, drop) <= gone:
                drop += READING_LEN
        drop = max(drop, len(q) + READING_LEN - self.max_queue * READING_LEN)
        floor = _seq(q, drop) if drop < len(q) else seq
        reading = struct.pack(">IIQ", seq, time_s, wh)
        if seq >= self._limit:
            limit = min(seq + (1 if self._skipped else self._reserve), MAX_U32)
            self._records.write(self._hi, struct.pack(">I", limit))
            self._limit = limit
        body = reading if fresh else bytes(self._buf) + reading
        self._records.write(self._names[cur], struct.pack(">I", floor) + body)
        # Written: nothing below can fail.
        self._buf = bytearray(body)
        self._cur = cur
        self._lasts[cur] = seq
        self._skipped = False
        if drop:
            q = q[drop:]
        q.extend(reading)
        self._q = q
        self._next = seq + 1
        self._energy = wh
        self.overflow = drop // READING_LEN
        return seq

    def ack(self, seqs):
        """Drop the acknowledged readings (seqs: ints); returns how many were queued.
        Not written: the next append's page carries the new floor."""
        q = self._q
        keep = bytearray()
        for off in range(0, len(q), READING_LEN):
            if _seq(q, off) not in seqs:
                keep.extend(q[off : off + READING_LEN])
        n = (len(q) - len(keep)) // READING_LEN
        if n:
            self._q = keep
        return n

    def pending(self, limit=None):
        """The oldest unacknowledged readings, at most limit (all if None), as
        (seq, time, wh) tuples in seq order."""
        q = self._q
        n = len(q) // READING_LEN
        if limit is not None:
            n = min(n, _u(limit, MAX_U32, "limit"))
        return [struct.unpack_from(">IIQ", q, i * READING_LEN) for i in range(n)]


def _valid_hi(data):
    return len(data) == 4
