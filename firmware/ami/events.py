"""Security event log (docs/protocol.md section 11): a persistent ring of audit events.

An event is 12 bytes, `seq (4) | time (4) | kind (1) | severity (1) | detail (2)`, big-endian;
in code a tuple (seq, time, kind, severity, detail). Severity 0 info, 1 warning, 2 alarm,
3 critical; bit 7 (AGGREGATED) marks a flood aggregate whose detail is a count. Alarms
(severity >= 2) are kept pending until the head end acknowledges them (`ack`).

Records (sealed A/B records of section 5), for a prefix "ev" and capacity C (a multiple of 8):

- `ev.p0` .. `ev.pN`, N = C / 8: pages, each `n x event (12)`, 1 <= n <= 8, seqs increasing.
  The ring rotates over the C / 8 + 1 pages, so at least the last C events are always kept.
- `ev.al`: `acked (4) | dropped (2) | k x event (12)`: the highest acknowledged seq, alarms
  evicted from a full pending list (saturating), and the k <= max_pending pending alarms.

Writes (flash wear). Events are collected in RAM in the current page, written when it fills:
1/8 write per event. An alarm is also written at once to `ev.al` (1 write) before log()
returns; aggregates closing a window share one `ev.al` write. ack() costs at most 2 writes
(the current page if unwritten, then `ev.al`) per call, whatever it acknowledges. The first
event after each boot is written at once (1 write per boot). There is no sequence record: at
boot the next seq is derived from the records (below), so seqs cost no writes at all.

Durability. An alarm whose log() returned survives any power cut until acknowledged (and
stays in the history: ack() writes the current page first). An ack() that returned is never
undone. Events below alarm severity are best effort: a cut loses those not yet written (at
most 7, never their seqs). Only the last C (to C + 7) events are kept; a pending alarm
older than the ring stays in `ev.al` until acknowledged.

Sequence numbers strictly increase across power cuts torn at any byte and are never reused;
they are not contiguous. Invariant: every seq handed out but not in flash belongs to an event
in the unwritten slots of the page of the newest event in flash (or of the next page if that
one is full), numbered on from it: a full page is written before the next event gets a seq,
and the first event after a boot is written before any other. A boot therefore resumes past
those slots, skipping at most 8 numbers; with nothing in flash it starts at 1. A record found
corrupt (a first write torn, or tampering) is treated as empty, named in `corrupt`, and the
boot skips `capacity` more numbers. Like every record (section 5), an attacker who puts back
old genuine slots can roll the log back; nothing here detects that.

Flood rule. Time is cut into aligned windows of `window_s` seconds (now // window_s). In a
window, each kind gets at most `burst` individually logged events, and all kinds together at
most `window_cap`; a kind that was suppressed in the previous window gets none. Events over
the limit are only counted; when the window ends (at the next log() or tick() in a later
window) each suppressed kind is logged once, AGGREGATED, with the highest severity seen, the
time of the last one and the count (saturating at 65535) in detail. So any flood yields at
most window_cap + K events per window (K kinds flooding), so at most window_cap + 1 +
K / 8 writes to `ev.al` (individual alarms, then the aggregates: one write, plus one per page
they fill, since a page is never written before `ev.al` holds its alarms) and (window_cap +
K) / 8 page writes; a sustained flood costs one event per kind and window. Noise can neither
wear the flash nor flush the ring. A count still in RAM is lost by a power cut; the first
events of a flood that were logged individually are not. Call tick() by `wakeup_s()`.
"""

import struct

from ami.link import messages
from ami.link.frame import FrameError
from ami.runtime import const
from ami.store.records import check_record_name, read_valid

EVENT_LEN = const(12)
MAX_EVENTS = const(13)  # per EVENTS message (section 10.4)
PAGE_LEN = const(8)  # events per page record
_PAGE_BYTES = const(96)
_AL_HEAD = const(6)
MAX_U32 = const(0xFFFFFFFF)
MAX_DETAIL = const(0xFFFF)
MAX_CAPACITY = const(1024)

INFO = const(0)
WARNING = const(1)
ALARM = const(2)
CRITICAL = const(3)
AGGREGATED = const(0x80)  # severity flag: a flood aggregate, detail = count
SEVERITY_MASK = const(0x03)

# Kind codes; KIND_NAMES[code] is the name used in reports (and by the head-end monitor).
CRC = const(1)
MALFORMED = const(2)
REPLAY = const(3)
AUTH = const(4)
KEY_GENERATION = const(5)
BAD_SIGNATURE = const(6)
WRONG_TARGET = const(7)
EXPIRED = const(8)
NOT_YET_VALID = const(9)
COUNTER_REUSED = const(10)
THROTTLED = const(11)
WINDOW_VIOLATION = const(12)
UNKNOWN_SIGNER = const(13)
RELAY_OPEN = const(14)
RELAY_CLOSE = const(15)
RELAY_REFUSED = const(16)
LOAD_TRIP = const(17)
JOIN_FAILED = const(18)
RECORD_CORRUPT = const(19)
REBOOT = const(20)
TAMPER = const(21)
UNKNOWN_KEY = const(22)
UNEXPECTED = const(23)
JOIN_NONCE_REPLAY = const(24)
COUNTER_EXHAUSTED = const(25)
QUEUE_OVERFLOW = const(26)
RELAY_ARMED = const(27)
LOAD_LIMIT = const(28)
RELAY_BOOT = const(29)
RELAY_CORRUPT = const(30)
KEY_CHANGE = const(31)
OTHER = const(32)  # a rejection reason this table does not know
REJOIN = const(33)  # detail 1: ordered after a suspected compromise
ZEROIZED = const(34)  # detail: cause << 14 | key store generation & 0x3FFF (ami.meter)
KEY_FALLBACK = const(35)  # a delivered key was never confirmed and was given up
RECORD_ROLLBACK = const(36)  # an anchored record older than its anchor

KIND_NAMES = (
    "",
    "crc",
    "malformed",
    "replay",
    "auth",
    "key_generation",
    "bad_signature",
    "wrong_target",
    "expired",
    "not_yet_valid",
    "counter_reused",
    "throttled",
    "window_violation",
    "unknown_signer",
    "relay_open",
    "relay_close",
    "relay_refused",
    "load_trip",
    "join_failed",
    "record_corrupt",
    "reboot",
    "tamper",
    "unknown_key",
    "unexpected",
    "join_nonce_replay",
    "counter_exhausted",
    "queue_overflow",
    "relay_armed",
    "load_limit",
    "relay_boot",
    "relay_corrupt",
    "key_change",
    "other",
    "rejoin",
    "zeroized",
    "key_fallback",
    "record_rollback",
)
# Default severity per kind code (index 0 unused). Forgeries that passed the link's CCM
# (signature, signer, replayed or unannounced commands, replayed join responses), a load trip
# and lost state are alarms or worse; line noise is info.
_SEVERITY = bytes(
    # -  crc mal rep aut gen sig tgt exp nyv ctr thr win sgn opn cls ref
    (0, 0, 1, 1, 1, 1, 2, 1, 1, 1, 2, 1, 2, 2, 1, 0, 1)
    # trp jnf cor rbt tmp key une jnr cex qov arm lim bot rco kch oth
    # (a load trip is a warning: the expected effect of the utility's own signed limit)
    + (1, 1, 3, 0, 3, 1, 1, 2, 1, 1, 0, 0, 1, 3, 1, 1)
    # rjn zer kfb rbk
    + (1, 3, 2, 3)
)

# Rejection reasons (sections 3, 6, 10.3; relay and meter counters) that are not kind names.
# None: not a security event (a frame for another device on a shared channel, a success).
REASON_KINDS = {
    "not_for_me": None,
    "unprovisioned": None,
    "ok": None,
    "unchanged": None,
    "join_timeout": JOIN_FAILED,
    "unknown_device": JOIN_FAILED,
    "revoked": JOIN_FAILED,
    "rate_limited": JOIN_FAILED,
    "dev_nonce_replay": JOIN_FAILED,
    "bad_certificate": JOIN_FAILED,
    "expired_certificate": JOIN_FAILED,
    "key_confirmation": JOIN_FAILED,
    "keystore_corrupt": RECORD_CORRUPT,
    "keystore_rollback": RECORD_ROLLBACK,
    "unwrap_failed": AUTH,
    "policy": RELAY_REFUSED,
    "state": RELAY_REFUSED,
    "not_armed": RELAY_REFUSED,
    "bad_param": RELAY_REFUSED,
    "device_command_in_group": WRONG_TARGET,
    "retiring_signer": UNKNOWN_SIGNER,
}


class EventError(FrameError):
    """An EVENTS body that breaks section 10.4 / 11; reason is `malformed`."""


def kind_name(kind):
    """The report name of a kind code ("kind_N" for codes this firmware does not know)."""
    if 0 < kind < len(KIND_NAMES):
        return KIND_NAMES[kind]
    return "kind_%d" % kind


def kind_for(reason):
    """Kind code for a rejection reason or event name; None if it is not a security event.

    Unknown strings map to OTHER, so a reason added elsewhere is still logged."""
    if reason in REASON_KINDS:
        return REASON_KINDS[reason]
    for i in range(1, len(KIND_NAMES)):
        if KIND_NAMES[i] == reason:
            return i
    return OTHER


def default_severity(kind):
    """Default severity of a kind code (warning for codes this firmware does not know)."""
    return _SEVERITY[kind] if 0 < kind < len(_SEVERITY) else WARNING


def is_alarm(severity):
    """True for severity bytes at or above ALARM (aggregates included)."""
    return severity & SEVERITY_MASK >= ALARM


def _u(value, top, name):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
        raise ValueError("%s out of range" % name)
    return value


def _check_severity(sev):
    if not isinstance(sev, int) or sev & ~(AGGREGATED | SEVERITY_MASK) or sev < 0:
        raise ValueError("severity out of range")
    return sev


def pack_event(seq, time, kind, severity, detail):
    """The 12 bytes of one event (every field range-checked: struct truncates silently)."""
    _u(seq, MAX_U32, "seq")
    _u(time, MAX_U32, "time")
    _u(kind, 255, "kind")
    if not kind:
        raise ValueError("kind 0 is reserved")
    _check_severity(severity)
    _u(detail, MAX_DETAIL, "detail")
    return struct.pack(">IIBBH", seq, time, kind, severity, detail)


def unpack_event(data, off=0):
    """(seq, time, kind, severity, detail) of the 12 bytes at off (length checked by caller)."""
    return struct.unpack_from(">IIBBH", data, off)


def _seq(ev):
    return struct.unpack_from(">I", ev, 0)[0]


def encode_events(events):
    """EVENTS body (after the type byte): `count (1) | count x event (12)`, 1 <= count <= 13,
    seqs strictly increasing; events are (seq, time, kind, severity, detail) tuples. The
    bytes are the message layer's (ami.link.messages); this adds the log's own rules."""
    last = -1
    for ev in events:
        if len(ev) != 5:
            raise ValueError("an event is (seq, time, kind, severity, detail)")
        if not isinstance(ev[0], int) or ev[0] <= last:
            raise ValueError("event seqs must strictly increase")
        last = ev[0]
        pack_event(ev[0], ev[1], ev[2], ev[3], ev[4])  # the field checks
    return messages.encode_events(events)[1:]


def decode_events(body):
    """Events of an EVENTS body; EventError("malformed") unless it is exactly one."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise EventError("malformed", "EVENTS body must be bytes")
    try:
        _t, (events,) = messages.decode(bytes((messages.EVENTS,)) + bytes(body))
    except FrameError as exc:
        raise EventError("malformed", "EVENTS: %s" % exc) from None
    last = -1
    for ev in events:
        if ev[0] <= last:
            raise EventError("malformed", "event seqs must strictly increase")
        if not ev[2]:
            raise EventError("malformed", "event kind 0")
        if ev[3] & ~(AGGREGATED | SEVERITY_MASK):
            raise EventError("malformed", "event severity 0x%02x" % ev[3])
        last = ev[0]
    return events


def _valid_page(data):
    return _valid_events(data, PAGE_LEN)


def _valid_al(data):
    return len(data) >= _AL_HEAD and _valid_events(data[_AL_HEAD:], 255)


def _valid_events(data, limit):
    """True if data is 0..limit whole events with increasing seqs and valid fields."""
    if len(data) % EVENT_LEN or len(data) > limit * EVENT_LEN:
        return False
    last = -1
    for off in range(0, len(data), EVENT_LEN):
        ev = unpack_event(data, off)
        if ev[0] <= last or not ev[2] or ev[3] & ~(AGGREGATED | SEVERITY_MASK):
            return False
        last = ev[0]
    return True


class EventLog:
    """The persistent security event log of one device (see the module docstring).

    Sans-IO: every call that logs takes the time (Unix seconds) from its caller.
    """

    exhausted = False  # every seq was used: new events are no longer kept (set per log)

    def __init__(
        self,
        records,
        capacity=64,
        name_prefix="ev",
        window_s=300,
        burst=3,
        window_cap=16,
        max_pending=32,
    ):
        """Load the log from records (a RecordStore); a corrupt record is never fatal."""
        _u(capacity, MAX_CAPACITY, "capacity")
        if capacity < PAGE_LEN or capacity % PAGE_LEN:
            raise ValueError("capacity must be a multiple of %d" % PAGE_LEN)
        if not isinstance(name_prefix, str):
            raise TypeError("name prefix must be a str")
        self._window_s = _u(window_s, MAX_U32, "window_s")
        if not window_s:
            raise ValueError("window_s must be positive")
        self._burst = _u(burst, MAX_U32, "burst")
        self._cap = _u(window_cap, MAX_U32, "window_cap")
        self._max_pending = _u(max_pending, 255, "max_pending")
        if not max_pending:
            raise ValueError("max_pending must be positive")
        self.capacity = capacity
        self._records = records
        self._npages = capacity // PAGE_LEN + 1
        self._names = [check_record_name(name_prefix + ".p%d" % i) for i in range(self._npages)]
        self._al = check_record_name(name_prefix + ".al")
        self.corrupt = []  # record names found corrupt at boot (replaced at their next write)
        # Flood limiter: current window index, events logged in it, and per kind
        # [logged, suppressed, last time, highest severity, flooded in the previous window].
        self._win = None
        self._win_logged = 0
        self._kinds = {}
        self._load()

    # --- boot ---------------------------------------------------------------------------

    def _load(self):
        pages = []
        top = 0  # highest seq in any page
        head = 0  # the page holding it
        anything = False
        for i in range(self._npages):
            data = read_valid(self._records, self._names[i], _valid_page, self.corrupt)
            if data is None:
                data = b""
            else:
                anything = True
            pages.append(data)
            if data:
                last = _seq(data[-EVENT_LEN:])
                if last > top:
                    top, head = last, i
        self._pages = pages
        acked, dropped, pending = 0, 0, []
        al = read_valid(self._records, self._al, _valid_al, self.corrupt)
        if al is not None:
            anything = True
            acked, dropped = struct.unpack_from(">IH", al, 0)
            for off in range(_AL_HEAD, len(al), EVENT_LEN):
                if _seq(al[off : off + EVENT_LEN]) > acked:
                    pending.append(al[off : off + EVENT_LEN])
            pending = pending[-self._max_pending :]  # max_pending may have been lowered
        elif self._al in self.corrupt:
            # Acknowledgements lost: every alarm still in the ring is pending again (the head
            # end drops duplicates by seq); resending beats losing one.
            for data in pages:
                for off in range(0, len(data), EVENT_LEN):
                    ev = data[off : off + EVENT_LEN]
                    if is_alarm(ev[9]):
                        pending.append(ev)
            pending.sort(key=_seq)
            pending = pending[-self._max_pending :]
        self._acked = acked
        self._dropped = dropped
        self._pending = pending
        # The first event numbered after a boot is written at once (a page written without
        # one, e.g. by ack(), does not count), so the seqs handed out and not in flash are
        # again those of the unwritten slots after the newest event in flash.
        self._through = True
        n = len(pages[head]) // EVENT_LEN
        if n == PAGE_LEN:  # the newest page is full: resume in the next one
            head = (head + 1) % self._npages
            n = 0
            buf = bytearray()
        else:
            buf = bytearray(pages[head])
        free = PAGE_LEN - n
        # Alarms written to ev.al whose page never made it back into the ring.
        back = [ev for ev in pending if _seq(ev) > top][-free:]
        for ev in back:
            buf.extend(ev)
        self._cur = head
        self._buf = buf
        self._dirty = bool(back)
        # Empty flash: nothing was ever handed out (see _through); else skip the free slots.
        nxt = top + 1 + free if anything else 1
        if pending:
            nxt = max(nxt, _seq(pending[-1]) + 1)
        nxt = max(nxt, acked + 1)
        self._next = nxt + len(self.corrupt) * self.capacity
        self._resume = self._next  # _through holds until a page with a seq from here is written

    # --- logging ------------------------------------------------------------------------

    @property
    def next_seq(self):
        """The seq the next logged event gets."""
        return self._next

    @property
    def acked(self):
        """Highest acknowledged seq (0: none)."""
        return self._acked

    @property
    def pending_count(self):
        """Alarms waiting for an acknowledgement."""
        return len(self._pending)

    @property
    def dropped_alarms(self):
        """Alarms evicted from a full pending list, ever (saturates at 65535)."""
        return self._dropped

    def log(self, now_s, kind, detail=0, severity=None):
        """Log an event; returns its seq, or None when the flood rule only counted it.

        An alarm is in flash when this returns; a lower event once its page is written.
        """
        _u(now_s, MAX_U32, "time")
        _u(kind, 255, "kind")
        if not kind:
            raise ValueError("kind 0 is reserved")
        _u(detail, MAX_DETAIL, "detail")
        if severity is None:
            severity = default_severity(kind)
        _u(severity, SEVERITY_MASK, "severity")
        self._roll(now_s)
        st = self._kinds.get(kind)
        if st is None:
            st = [0, 0, 0, 0, False]
            self._kinds[kind] = st
        if not st[4] and st[0] < self._burst and self._win_logged < self._cap:
            st[0] += 1
            self._win_logged += 1
            seqs = self._append([(now_s, kind, severity, detail)])
            return seqs[0] if seqs else None
        st[1] += 1
        st[2] = now_s
        if severity > st[3]:
            st[3] = severity
        return None

    def log_reason(self, now_s, reason, detail=0):
        """log() the kind for a rejection reason or event name; None if not an event."""
        kind = kind_for(reason)
        if kind is None:
            return None
        return self.log(now_s, kind, detail)

    def tick(self, now_s):
        """Log the aggregates of a window that has ended; returns their seqs."""
        _u(now_s, MAX_U32, "time")
        return self._roll(now_s)

    def wakeup_s(self):
        """When tick() has aggregates to log (end of the window), or None."""
        for kind in self._kinds:
            if self._kinds[kind][1]:
                return (self._win + 1) * self._window_s
        return None

    def _roll(self, now_s):
        w = now_s // self._window_s
        if w == self._win:
            return []
        consecutive = self._win is not None and w == self._win + 1
        kinds = list(self._kinds)
        kinds.sort()  # a fixed order on both runtimes
        items = []
        carry = {}
        for kind in kinds:
            st = self._kinds[kind]
            if st[1]:
                items.append((st[2], kind, st[3] | AGGREGATED, min(st[1], MAX_DETAIL)))
                if consecutive:
                    carry[kind] = [0, 0, 0, 0, True]
        self._kinds = carry
        self._win = w
        self._win_logged = 0
        return self._append(items) if items else []

    def _append(self, items):
        """Give each (time, kind, severity, detail) a seq and store it; returns the seqs."""
        seqs = []
        alarms = []
        for t, kind, sev, detail in items:
            if len(self._buf) >= _PAGE_BYTES:  # an earlier write of the full page failed
                self._write_page()
            seq = self._next
            if seq > MAX_U32:
                # Seqs are never reused: a log that used them all up (an odd record) keeps
                # working without new events rather than raise on every log().
                self.exhausted = True
                break
            ev = pack_event(seq, t, kind, sev, detail)
            self._next = seq + 1
            self._buf.extend(ev)
            self._dirty = True
            seqs.append(seq)
            if is_alarm(sev):
                alarms.append(ev)
            if len(self._buf) >= _PAGE_BYTES or self._through:
                if alarms:  # ev.al first: no page holds an alarm that ev.al never had
                    self._add_pending(alarms)
                    alarms = []
                self._write_page()
        if alarms:
            self._add_pending(alarms)
        return seqs

    def _write_page(self):
        """Write the current page; move to the next one when it is full."""
        data = bytes(self._buf)
        self._records.write(self._names[self._cur], data)
        if data and _seq(data[-EVENT_LEN:]) >= self._resume:
            self._through = False
        self._dirty = False
        self._pages[self._cur] = data
        if len(data) >= _PAGE_BYTES:
            self._cur = (self._cur + 1) % self._npages
            self._buf = bytearray()

    def flush(self):
        """Write the current page if it holds unwritten events (e.g. before a planned stop)."""
        if self._dirty:
            self._write_page()

    # --- alarms ------------------------------------------------------------------------

    def _add_pending(self, alarms):
        pending = list(self._pending)
        dropped = self._dropped
        changed = False
        for ev in alarms:
            if len(pending) < self._max_pending:
                pending.append(ev)
                changed = True
                continue
            # Full: evict the newest of the lowest severity if the new one is higher; else
            # the new one is dropped (counted), so a flood never pushes out an older alarm
            # of the same severity (a relay alarm behind forged commands with acks jammed).
            victim = 0
            for i in range(1, len(pending)):
                if pending[i][9] & SEVERITY_MASK <= pending[victim][9] & SEVERITY_MASK:
                    victim = i
            if ev[9] & SEVERITY_MASK > pending[victim][9] & SEVERITY_MASK:
                pending.pop(victim)
                pending.append(ev)
                changed = True
            dropped = min(dropped + 1, MAX_DETAIL)
        if changed:
            self._write_al(self._acked, dropped, pending)
            self._pending = pending
        self._dropped = dropped  # persisted with the next ev.al write

    def _write_al(self, acked, dropped, pending):
        self._records.write(self._al, struct.pack(">IH", acked, dropped) + b"".join(pending))

    def pending_alarms(self, limit=MAX_EVENTS):
        """The oldest unacknowledged alarms, at most min(limit, 13), in seq order."""
        n = min(_u(limit, MAX_EVENTS, "limit"), len(self._pending))
        return [unpack_event(self._pending[i]) for i in range(n)]

    def pending_details(self, kind):
        """The details of every unacknowledged alarm of kind, oldest first."""
        out = []
        for ev in self._pending:
            e = unpack_event(ev)
            if e[2] == kind:
                out.append(e[4])
        return out

    def ack(self, upto_seq):
        """Acknowledge every alarm with seq <= upto_seq (clamped to the newest seq);
        returns how many were pending. Persisted before it returns."""
        upto = min(_u(upto_seq, MAX_U32, "seq"), self._next - 1)
        if upto <= self._acked:
            return 0
        keep = [ev for ev in self._pending if _seq(ev) > upto]
        n = len(self._pending) - len(keep)
        if n:
            self.flush()  # acknowledged alarms stay in the history
            self._write_al(upto, self._dropped, keep)
            self._pending = keep
        self._acked = upto  # without a write when nothing was pending: nothing to undo
        return n

    # --- reading -----------------------------------------------------------------------

    def events(self, since_seq=0):
        """Stored events (and pending alarms) with seq > since_seq, in seq order."""
        out = []
        seen = set()
        for i in range(self._npages):
            data = self._buf if i == self._cur else self._pages[i]
            for off in range(0, len(data), EVENT_LEN):
                ev = unpack_event(data, off)
                if ev[0] > since_seq:
                    out.append(ev)
                    seen.add(ev[0])
        for raw in self._pending:
            ev = unpack_event(raw)
            if ev[0] > since_seq and ev[0] not in seen:
                out.append(ev)
        out.sort(key=_first)
        return out


def _first(ev):
    return ev[0]
