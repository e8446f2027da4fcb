"""The load relay (docs/protocol.md section 12): a sans-IO state machine over a sealed record.

States (the `relay_state` byte of COMMAND_RESULT): 0 CONNECTED, 1 DISCONNECTED, 2 ARMED
(reconnect authorised, supply restored only by the local button), 3 TRIPPED (opened by the
load limit). The relay is closed in CONNECTED only.

Every input takes the time (`now_s`, Unix seconds, from the caller: no clock is read here)
and returns an `Outcome`: status "executed" or "refused", a reason (codes in `REASONS`, the
`reason` byte of COMMAND_RESULT), the state after it, the command counter answered (None for
local inputs), an event kind for the security log (None when nothing happened) and the
relay move made ("open", "close" or None).

Transitions (anything else is refused and changes nothing):

- disconnect: CONNECTED -> DISCONNECTED (opens); ARMED or TRIPPED -> DISCONNECTED (already
  open: the arm or the automatic restore is revoked); DISCONNECTED: executed, "unchanged".
- arm: DISCONNECTED or TRIPPED -> ARMED; ARMED: "unchanged"; CONNECTED: refused "state".
- button: ARMED -> CONNECTED (closes); in any other state refused "not_armed". In particular
  a trip with manual restore needs an arm first, as protocol section 10.2 says.
- reconnect: refused "policy" unless `policy.remote_reconnect`; then DISCONNECTED, ARMED or
  TRIPPED -> CONNECTED (closes); CONNECTED: "unchanged".
- set_load_limit(limit_w, duration_s, restore): stored, no relay move; limit_w 0 lifts it;
  restore must be 0 or 1 ("bad_param"). Lifting or changing the limit never closes the
  relay by itself: a TRIPPED meter whose limit is lifted stays TRIPPED until an arm and a
  button press (or a permitted remote reconnect).
- demand(watts), the metering input, called on every sample (also while the relay is open):
  * trip: in CONNECTED with a limit set, a sample above `limit_w` starts an over-limit run
    (at that sample's time); a sample at or below the limit ends it. A sample above the limit
    taken `duration_s` or more after the run started trips: TRIPPED, relay opened. With
    `duration_s` 0 the first sample above the limit trips.
  * automatic restore (restore 1): in TRIPPED, a wait starts at the trip; a sample above the
    limit cancels it and the next sample at or below the limit starts it again. The first
    sample at or below the limit taken `duration_s` or more after the wait started closes the
    relay (CONNECTED), throttle permitting (if throttled it stays TRIPPED and retries at
    later samples; the refusal is logged once). While the relay is open the meter sees no
    load, so in practice this restores `duration_s` after the trip.
  * manual restore (restore 0): TRIPPED stays until an arm and a button press.
  The run and wait timers live in RAM only: a reboot starts them again (the wait at boot).

Throttle (enforced here, whatever the head end does): closing the relay (button, remote
reconnect, automatic restore) is refused "throttled" unless the last relay operation is at
least `policy.min_interval_s` old and the operations of the past hour leave room for this
close and the open that may follow (at most `max_per_hour - 2` before it). Opening
(disconnect, load trip) is never throttled: it is the fail-safe direction, and a refused
disconnect would leave supply on. Opens are still counted, and since every open needs a
close before it, no sliding hour ever holds more than `max_per_hour` operations and every
close comes at least `min_interval_s` after the operation before it. State changes that do
not move the relay (arm, revoking an arm) are not operations. The operation times are in
the record, so a reboot resets nothing. A time earlier than a recorded operation (a clock
set back) counts that operation as just now: setting the clock back never unlocks a close.

Persistence: record "relay", payload

    format 1 (1) | state (1) | cause (1) | counter (4) | limit_w (4) | duration_s (2) |
    restore (1) | n (1) | n x operation time (4)

(big endian; `cause` in `CAUSES`: what made the last state change; `counter`: the counter
of the last command that changed the record, 0 before any; the operation times of the past
hour, oldest first, at most `max_per_hour`). Each change is written BEFORE the relay moves
and kept in RAM only once the write returned, so a power cut at any byte leaves the old or
the new record; an outcome is only returned after the write completed, so an executed
disconnect was always persisted. A write that fails with a storage error refuses the input
("storage") with the relay untouched.

boot(now_s) reads the record and drives the relay to it (re-issuing the command even if the
relay reads back as already there: a latching relay's contacts may differ from the pin).
That completes an operation a power cut interrupted between the write and the move, and is
neither throttled nor counted. No record (first boot): `policy.fresh_state` is written and
applied (applied even if the write fails; boot then answers refused "storage"). A corrupt
record (tampering: a torn write always leaves the other copy, and the anchored record's
torn first write reads as no record) opens the relay and writes
DISCONNECTED with a full operation history (no close for an hour): a disconnect the meter
can no longer read is never forgotten. The meter anchors this record (`ami.meter.ANCHORED`),
so deleting both slots or putting back an old pair of them reads as a rollback, which opens
the relay the same way; without an anchor port, deletion gives the fresh state and an old
pair the old state (see `ami.store.records`).
"""

import struct

from ami.runtime import const
from ami.store.records import RecordCorrupt

CONNECTED = const(0)
DISCONNECTED = const(1)
ARMED = const(2)
TRIPPED = const(3)
STATE_NAMES = ("connected", "disconnected", "armed", "tripped")

EXECUTED = "executed"
REFUSED = "refused"
# Reason strings; the index is the reason code sent in COMMAND_RESULT.
REASONS = (
    "ok",
    "unchanged",
    "throttled",
    "policy",
    "state",
    "not_armed",
    "bad_param",
    "storage",
    "record_corrupt",
    # key lifecycle commands (docs/protocol.md section 13)
    "key_generation",
    "unwrap_failed",
    "no_session",
)
# Event kinds for the security log.
EV_OPEN = "relay_open"  # a disconnect executed (relay opened, or already open)
EV_CLOSE = "relay_close"  # supply restored: button, remote reconnect, automatic restore
EV_ARMED = "relay_armed"
EV_TRIP = "load_trip"
EV_LIMIT = "load_limit"
EV_REFUSED = "relay_refused"
EV_BOOT = "relay_boot"  # boot moved the relay to the persisted state
EV_CORRUPT = "relay_corrupt"
# What made the last change to the record (its `cause` byte).
CAUSES = ("fresh", "disconnect", "arm", "reconnect", "button", "trip", "restore", "corrupt")
_C_FRESH = const(0)
_C_DISCONNECT = const(1)
_C_ARM = const(2)
_C_RECONNECT = const(3)
_C_BUTTON = const(4)
_C_TRIP = const(5)
_C_RESTORE = const(6)
_C_CORRUPT = const(7)

RECORD = "relay"
FORMAT = const(1)
HEAD_LEN = const(15)
HOUR = const(3600)
MAX_U32 = const(0xFFFFFFFF)
MAX_OPS_PER_HOUR = const(60)
RESTORE_MANUAL = const(0)
RESTORE_AUTO = const(1)
OPEN = "open"
CLOSE = "close"


class RelayPolicy:
    """Device policy: direct remote reconnect, throttle limits, state of a meter never booted."""

    def __init__(
        self, remote_reconnect=False, min_interval_s=60, max_per_hour=10, fresh_state=CONNECTED
    ):
        if not isinstance(min_interval_s, int) or not 0 <= min_interval_s <= HOUR:
            raise ValueError("min_interval_s must be an int in 0..3600")
        if not isinstance(max_per_hour, int) or not 2 <= max_per_hour <= MAX_OPS_PER_HOUR:
            raise ValueError("max_per_hour must be an int in 2..%d" % MAX_OPS_PER_HOUR)
        if fresh_state not in (CONNECTED, DISCONNECTED, ARMED):
            raise ValueError("fresh_state must be CONNECTED, DISCONNECTED or ARMED")
        self.remote_reconnect = bool(remote_reconnect)
        self.min_interval_s = min_interval_s
        self.max_per_hour = max_per_hour
        self.fresh_state = fresh_state


class Outcome:
    """What the meter confirms upstream and logs: see the module docstring."""

    __slots__ = ("status", "reason", "state", "counter", "event", "op")

    def __init__(self, status, reason, state, counter=None, event=None, op=None):
        self.status = status
        self.reason = reason
        self.state = state
        self.counter = counter
        self.event = event
        self.op = op

    @property
    def executed(self):
        """True if the input was carried out (reason "ok" or "unchanged")."""
        return self.status == EXECUTED

    @property
    def status_code(self):
        """COMMAND_RESULT status byte: 0 executed, 1 refused."""
        return 0 if self.status == EXECUTED else 1

    @property
    def reason_code(self):
        """COMMAND_RESULT reason byte."""
        return REASONS.index(self.reason)

    def __repr__(self):
        return "Outcome(%s, %s, %s, counter=%r, event=%r, op=%r)" % (
            self.status,
            self.reason,
            STATE_NAMES[self.state],
            self.counter,
            self.event,
            self.op,
        )


def encode(state, cause, counter, limit_w, duration_s, restore, history):
    """The record payload (format 1)."""
    out = bytearray(
        struct.pack(
            ">BBBIIHBB", FORMAT, state, cause, counter, limit_w, duration_s, restore, len(history)
        )
    )
    for t in history:
        out += struct.pack(">I", t)
    return bytes(out)


def decode(payload):
    """(state, cause, counter, limit_w, duration_s, restore, history) or ValueError."""
    if len(payload) < HEAD_LEN:
        raise ValueError("relay record too short")
    fmt, state, cause, counter, limit_w, duration_s, restore, n = struct.unpack(
        ">BBBIIHBB", payload[:HEAD_LEN]
    )
    if fmt != FORMAT or state > TRIPPED or cause >= len(CAUSES) or restore > RESTORE_AUTO:
        raise ValueError("bad relay record")
    if n > MAX_OPS_PER_HOUR or len(payload) != HEAD_LEN + 4 * n:
        raise ValueError("bad relay record length")
    history = []
    for i in range(n):
        history.append(struct.unpack(">I", payload[HEAD_LEN + 4 * i : HEAD_LEN + 4 * i + 4])[0])
    return state, cause, counter, limit_w, duration_s, restore, history


def _check_u32(value, what):
    if not isinstance(value, int) or not 0 <= value <= MAX_U32:
        raise ValueError(what + " must be an int in 0..2^32-1")


class RelayController:
    """The relay state machine; call boot() once before any other input."""

    def __init__(self, records, relay_port, policy=None):
        self._records = records
        self._relay = relay_port
        self.policy = policy or RelayPolicy()
        self.state = None  # until boot()
        self.cause = _C_FRESH
        self.counter = 0
        self.limit_w = 0
        self.duration_s = 0
        self.restore = RESTORE_MANUAL
        self._history = []
        self._over_since = None  # start of the current over-limit run (CONNECTED)
        self._wait_since = None  # start of the automatic-restore wait (TRIPPED)
        self._deferred = False  # an automatic restore was throttled and logged

    # -- inputs ------------------------------------------------------------------------------

    def boot(self, now_s):
        """Load the record and drive the relay to it (see the module docstring)."""
        _check_u32(now_s, "now_s")
        reason = "ok"
        event = None
        try:
            data = self._records.read(RECORD)
            rec = None if data is None else decode(data)
        except (RecordCorrupt, ValueError):
            rec = None
            data = b""  # present but unusable
        if rec is not None:
            self._load(rec)
        elif data is None:
            self._load((self.policy.fresh_state, _C_FRESH, 0, 0, 0, RESTORE_MANUAL, []))
            if not self._write():
                reason = "storage"
        else:
            full = [now_s] * self.policy.max_per_hour
            self._load((DISCONNECTED, _C_CORRUPT, 0, 0, 0, RESTORE_MANUAL, full))
            self._write()  # best effort: the relay opens whether or not this lands
            reason = "record_corrupt"
            event = EV_CORRUPT
        self._reset_timers(now_s)
        op = self._drive()
        if op is not None and event is None:
            event = EV_BOOT
        status = EXECUTED if reason == "ok" else REFUSED
        return Outcome(status, reason, self.state, None, event, op)

    def disconnect(self, now_s, counter):
        """Remote disconnect: open and hold open until an arm and a button (or a reconnect)."""
        self._check(now_s, counter)
        if self.state == DISCONNECTED:
            return self._unchanged(counter)
        op = OPEN if self.state == CONNECTED else None
        return self._change(now_s, DISCONNECTED, _C_DISCONNECT, counter, op, EV_OPEN)

    def arm(self, now_s, counter):
        """Remote arm: authorise a reconnect that the local button then performs."""
        self._check(now_s, counter)
        if self.state == ARMED:
            return self._unchanged(counter)
        if self.state == CONNECTED:
            return self._refuse("state", counter)
        return self._change(now_s, ARMED, _C_ARM, counter, None, EV_ARMED)

    def reconnect(self, now_s, counter):
        """Direct remote reconnect: only where the policy allows it; throttled."""
        self._check(now_s, counter)
        if not self.policy.remote_reconnect:
            return self._refuse("policy", counter)
        if self.state == CONNECTED:
            return self._unchanged(counter)
        if not self._may_close(now_s):
            return self._refuse("throttled", counter)
        return self._change(now_s, CONNECTED, _C_RECONNECT, counter, CLOSE, EV_CLOSE)

    def button(self, now_s):
        """Local restore button: closes the relay only when ARMED; throttled."""
        self._check(now_s, 0)
        if self.state != ARMED:
            return self._refuse("not_armed", None)
        if not self._may_close(now_s):
            return self._refuse("throttled", None)
        return self._change(now_s, CONNECTED, _C_BUTTON, None, CLOSE, EV_CLOSE)

    def set_load_limit(self, now_s, counter, limit_w, duration_s, restore):
        """Set (limit_w > 0) or lift (limit_w 0) the load limit; never moves the relay."""
        self._check(now_s, counter)
        if (
            not isinstance(limit_w, int)
            or not isinstance(duration_s, int)
            or not 0 <= limit_w <= MAX_U32
            or not 0 <= duration_s <= 0xFFFF
            or restore not in (RESTORE_MANUAL, RESTORE_AUTO)
        ):
            return self._refuse("bad_param", counter)
        if not self._write(counter=counter, limit=(limit_w, duration_s, restore)):
            return self._refuse("storage", counter)
        self._reset_timers(now_s)
        return Outcome(EXECUTED, "ok", self.state, counter, EV_LIMIT)

    def demand(self, now_s, watts):
        """One metering sample (W): may trip the relay, or restore it automatically."""
        self._check(now_s, 0)
        if not isinstance(watts, int):
            raise ValueError("watts must be an int")
        limit = self.limit_w
        state = self.state
        if limit == 0 or state == DISCONNECTED or state == ARMED:
            return self._unchanged(None)
        if state == CONNECTED:
            if watts <= limit:
                self._over_since = None
                return self._unchanged(None)
            if self._over_since is None:
                self._over_since = now_s
            if now_s - self._over_since < self.duration_s:
                return self._unchanged(None)
            return self._change(now_s, TRIPPED, _C_TRIP, None, OPEN, EV_TRIP)
        if self.restore != RESTORE_AUTO:  # TRIPPED, manual restore
            return self._unchanged(None)
        if watts > limit:
            self._wait_since = None
            return self._unchanged(None)
        if self._wait_since is None:
            self._wait_since = now_s
        if now_s - self._wait_since < self.duration_s:
            return self._unchanged(None)
        if not self._may_close(now_s):
            event = None if self._deferred else EV_REFUSED
            self._deferred = True
            return Outcome(REFUSED, "throttled", state, None, event)
        return self._change(now_s, CONNECTED, _C_RESTORE, None, CLOSE, EV_CLOSE)

    # -- queries -----------------------------------------------------------------------------

    @property
    def history(self):
        """Times of the recorded relay operations (the throttle's memory), oldest first."""
        return tuple(self._history)

    def ops_in_hour(self, now_s):
        """Relay operations counted against the hourly limit at now_s."""
        return len(self._window(now_s))

    # -- internals ---------------------------------------------------------------------------

    def _check(self, now_s, counter):
        if self.state is None:
            raise RuntimeError("relay: boot() first")
        _check_u32(now_s, "now_s")
        _check_u32(counter, "counter")

    def _load(self, rec):
        self.state, self.cause, self.counter, lw, ds, rs, hist = rec
        self.limit_w, self.duration_s, self.restore = lw, ds, rs
        self._history = hist

    def _reset_timers(self, now_s):
        self._over_since = None
        self._wait_since = now_s if self.state == TRIPPED else None
        self._deferred = False

    def _window(self, now_s):
        # A time after now_s (clock set back) is inside the window: it counts as just now.
        return [t for t in self._history if now_s - t < HOUR]

    def _may_close(self, now_s):
        h = self._history
        if h and now_s - h[-1] < self.policy.min_interval_s:
            return False
        return len(self._window(now_s)) + 2 <= self.policy.max_per_hour

    def _write(self, state=None, cause=None, counter=None, limit=None, history=None):
        """Persist the record with the given fields changed; True once it is in flash.

        RAM is updated only after the write returned. A storage error gives False; a power
        cut (the device dies) propagates.
        """
        state = self.state if state is None else state
        cause = self.cause if cause is None else cause
        counter = self.counter if counter is None else counter
        limit = (self.limit_w, self.duration_s, self.restore) if limit is None else limit
        history = self._history if history is None else history
        payload = encode(state, cause, counter, limit[0], limit[1], limit[2], history)
        try:
            self._records.write(RECORD, payload)
        except (OSError, OverflowError):
            return False
        self.state, self.cause, self.counter = state, cause, counter
        self.limit_w, self.duration_s, self.restore = limit
        self._history = history
        return True

    def _change(self, now_s, state, cause, counter, op, event):
        """Persist a new state, then move the relay; the outcome to report."""
        history = None
        if op is not None:
            history = self._window(now_s)
            history.append(now_s)
            history = history[-self.policy.max_per_hour :]
        if not self._write(state, cause, counter, None, history):
            return self._refuse("storage", counter)
        self._reset_timers(now_s)
        if op == OPEN:
            self._relay.open()
        elif op == CLOSE:
            self._relay.close()
        return Outcome(EXECUTED, "ok", state, counter, event, op)

    def _drive(self):
        """Command the relay to the state in RAM; the move made, judged by its read-back."""
        was = self._relay.is_closed()
        if self.state == CONNECTED:
            self._relay.close()
            return None if was else CLOSE
        self._relay.open()
        return OPEN if was else None

    def _unchanged(self, counter):
        return Outcome(EXECUTED, "unchanged", self.state, counter)

    def _refuse(self, reason, counter):
        return Outcome(REFUSED, reason, self.state, counter, EV_REFUSED)
