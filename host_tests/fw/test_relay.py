"""The relay state machine, on both runtimes: transitions, policy, throttle, load limit,
persistence, corrupt records and power cuts at every write and every byte."""

from ami.keyschedule import derive_storage_key
from ami.ports.anchor import MemoryAnchor
from ami.ports.entropy import DeterministicEntropy
from ami.ports.flashsim import FlashSim, PowerCut
from ami.ports.gpio import SimRelay
from ami.ports.storage import MemoryStorage
from ami.relay import (
    ARMED,
    CONNECTED,
    DISCONNECTED,
    REASONS,
    RECORD,
    TRIPPED,
    Outcome,
    RelayController,
    RelayPolicy,
    decode,
    encode,
)
from ami.store.records import RecordStore
from fwtest import raises

KEY = derive_storage_key(b"relay test device secret")
T0 = 1767225600
REMOTE = RelayPolicy(remote_reconnect=True)
_boots = [0]


def _records(storage):
    _boots[0] += 1  # a fresh nonce stream per boot, as a real entropy source gives
    return RecordStore(storage, KEY, DeterministicEntropy(b"relay%d" % _boots[0]))


def _boot(storage, relay, policy=None, now=T0):
    c = RelayController(_records(storage), relay, policy)
    c.boot(now)
    return c


def _dev(policy=None, now=T0, storage=None):
    storage = MemoryStorage() if storage is None else storage
    relay = SimRelay()
    return _boot(storage, relay, policy, now), relay, storage


def _persisted(storage):
    return decode(_records(storage).read(RECORD))


def _consistent(c, relay, storage):
    rec = _persisted(storage)
    assert rec[0] == c.state, (rec[0], c.state)
    assert relay.is_closed() == (c.state == CONNECTED)


def _ok(out, state, event=None, op=None, counter=None):
    assert out.status == "executed" and out.reason == "ok", out
    assert out.state == state and out.event == event and out.op == op, out
    assert out.counter == counter, out


def _refused(out, reason, state, counter=None):
    assert out.status == "refused" and out.reason == reason, out
    assert out.state == state and out.event == "relay_refused" and out.op is None, out
    assert out.counter == counter, out


def _unchanged(out, state):
    assert out.status == "executed" and out.reason == "unchanged", out
    assert out.state == state and out.event is None and out.op is None, out


def _trip(c, t, limit=1000, duration=30, restore=0, counter=50):
    """Set a limit at t and trip it; returns the time of the trip."""
    out = c.set_load_limit(t, counter, limit, duration, restore)
    _ok(out, c.state, "load_limit", None, counter)
    _unchanged(c.demand(t, limit + 1), CONNECTED)
    _ok(c.demand(t + duration, limit + 1), TRIPPED, "load_trip", "open")
    return t + duration


# -- boot and the basic cycle --------------------------------------------------------------


def test_first_boot_writes_the_fresh_state():
    c, relay, storage = _dev()
    assert c.state == CONNECTED and relay.is_closed() and relay.ops == ["close"]
    assert _persisted(storage) == (CONNECTED, 0, 0, 0, 0, 0, [])
    relay2 = SimRelay()
    c2 = RelayController(_records(MemoryStorage()), relay2, RelayPolicy(fresh_state=ARMED))
    out = c2.boot(T0)
    assert out.status == "executed" and out.state == ARMED and out.op is None
    assert not relay2.is_closed() and relay2.ops == ["open"]  # re-issued, not a move
    raises(ValueError, RelayPolicy, fresh_state=TRIPPED)


def test_disconnect_arm_button_cycle():
    c, relay, storage = _dev()
    _ok(c.disconnect(T0 + 10, 7), DISCONNECTED, "relay_open", "open", 7)
    assert not relay.is_closed() and c.counter == 7
    _consistent(c, relay, storage)
    assert _persisted(storage)[1:3] == (1, 7)  # cause disconnect, counter 7
    _refused(c.button(T0 + 100), "not_armed", DISCONNECTED)
    _ok(c.arm(T0 + 110, 8), ARMED, "relay_armed", None, 8)
    assert not relay.is_closed()
    _consistent(c, relay, storage)
    _ok(c.button(T0 + 120), CONNECTED, "relay_close", "close")
    assert relay.is_closed() and c.counter == 8  # a local input keeps the command counter
    _consistent(c, relay, storage)
    assert relay.ops == ["close", "open", "close"]
    assert c.history == (T0 + 10, T0 + 120)


def test_button_only_works_when_armed():
    c, relay, _ = _dev(REMOTE)
    n = len(relay.ops)
    _refused(c.button(T0), "not_armed", CONNECTED)
    c.disconnect(T0 + 1, 1)
    _refused(c.button(T0 + 100), "not_armed", DISCONNECTED)
    c.reconnect(T0 + 200, 2)
    for restore in (0, 1):
        t = _trip(c, T0 + 1000 + 1000 * restore, restore=restore, counter=3 + restore)
        _refused(c.button(t + 100), "not_armed", TRIPPED)
        c.reconnect(t + 200, 10 + restore)
    assert relay.ops[n:] == ["open", "close", "open", "close", "open", "close"]


def test_arm_and_disconnect_in_every_state():
    c, relay, storage = _dev()
    _refused(c.arm(T0, 1), "state", CONNECTED, 1)
    c.disconnect(T0 + 1, 2)
    writes = storage.writes()
    _unchanged(c.disconnect(T0 + 2, 3), DISCONNECTED)
    c.arm(T0 + 3, 4)
    _unchanged(c.arm(T0 + 4, 5), ARMED)
    assert storage.writes() == writes + 1  # unchanged answers write nothing
    # A disconnect revokes the arm without moving the relay; the button no longer works.
    ops = len(relay.ops)
    _ok(c.disconnect(T0 + 5, 6), DISCONNECTED, "relay_open", None, 6)
    assert len(relay.ops) == ops
    _refused(c.button(T0 + 500), "not_armed", DISCONNECTED)
    # An arm also replaces a trip; a disconnect cancels an automatic restore.
    c.arm(T0 + 600, 7)
    c.button(T0 + 700)
    t = _trip(c, T0 + 800, restore=1, duration=10, counter=8)
    _ok(c.arm(t + 1, 9), ARMED, "relay_armed", None, 9)
    _ok(c.button(t + 100), CONNECTED, "relay_close", "close")
    t = _trip(c, t + 200, restore=1, duration=10, counter=10)
    _ok(c.disconnect(t + 1, 11), DISCONNECTED, "relay_open", None, 11)
    for dt in (100, 1000, 5000):
        _unchanged(c.demand(t + dt, 0), DISCONNECTED)
    assert not relay.is_closed()
    _consistent(c, relay, storage)


def test_remote_reconnect_needs_the_policy():
    c, relay, _ = _dev()
    _refused(c.reconnect(T0, 1), "policy", CONNECTED, 1)
    c.disconnect(T0 + 1, 2)
    _refused(c.reconnect(T0 + 100, 3), "policy", DISCONNECTED, 3)
    c.arm(T0 + 101, 4)
    _refused(c.reconnect(T0 + 200, 5), "policy", ARMED, 5)
    assert not relay.is_closed()

    c, relay, storage = _dev(REMOTE)
    _unchanged(c.reconnect(T0, 1), CONNECTED)
    c.disconnect(T0 + 100, 2)
    _ok(c.reconnect(T0 + 200, 3), CONNECTED, "relay_close", "close", 3)  # from DISCONNECTED
    c.disconnect(T0 + 300, 4)
    c.arm(T0 + 301, 5)
    _ok(c.reconnect(T0 + 400, 6), CONNECTED, "relay_close", "close", 6)  # from ARMED
    t = _trip(c, T0 + 500, counter=7)
    _ok(c.reconnect(t + 60, 8), CONNECTED, "relay_close", "close", 8)  # from TRIPPED
    assert relay.is_closed()
    _consistent(c, relay, storage)


# -- throttle ------------------------------------------------------------------------------


def test_minimum_interval_applies_to_closes_never_to_opens():
    c, relay, _ = _dev(REMOTE)
    _ok(c.disconnect(T0, 1), DISCONNECTED, "relay_open", "open", 1)
    _refused(c.reconnect(T0 + 59, 2), "throttled", DISCONNECTED, 2)
    c.arm(T0 + 59, 3)  # no relay move: not throttled
    _refused(c.button(T0 + 59), "throttled", ARMED)
    assert not relay.is_closed()
    _ok(c.button(T0 + 60), CONNECTED, "relay_close", "close")
    # Opening is the fail-safe direction: a disconnect right after a close executes.
    _ok(c.disconnect(T0 + 61, 4), DISCONNECTED, "relay_open", "open", 4)
    _refused(c.reconnect(T0 + 120, 5), "throttled", DISCONNECTED, 5)
    _ok(c.reconnect(T0 + 121, 6), CONNECTED, "relay_close", "close", 6)


def test_hourly_count_survives_reboot():
    storage = MemoryStorage()
    relay = SimRelay()
    c = _boot(storage, relay, REMOTE)
    t = T0
    # Ten operations an hour: a close needs room for itself and the open that may follow,
    # so after four cycles and an open the fifth close waits for the first open to leave.
    for i in range(4):
        _ok(c.disconnect(t, 10 * i), DISCONNECTED, "relay_open", "open", 10 * i)
        _ok(c.reconnect(t + 60, 10 * i + 1), CONNECTED, "relay_close", "close", 10 * i + 1)
        t += 120
    c.disconnect(t, 100)
    assert c.ops_in_hour(t) == 9  # opens always count
    _refused(c.reconnect(t + 60, 101), "throttled", DISCONNECTED, 101)
    for now in (t + 60, T0 + 3599):
        c = _boot(storage, relay, REMOTE, now)  # a reboot forgets nothing
        assert c.state == DISCONNECTED and not relay.is_closed()
        _refused(c.reconnect(now, 102), "throttled", DISCONNECTED, 102)
    # The first operation (T0) leaves the hour: room for one close again.
    _ok(c.reconnect(T0 + 3600, 103), CONNECTED, "relay_close", "close", 103)
    # The window never held more than max_per_hour operations.
    hist = c.history
    for i in range(len(hist)):
        assert len([x for x in hist if hist[i] <= x < hist[i] + 3600]) <= 10


def test_small_policies_and_clock_set_back():
    raises(ValueError, RelayPolicy, max_per_hour=1)
    raises(ValueError, RelayPolicy, max_per_hour=61)
    raises(ValueError, RelayPolicy, min_interval_s=-1)
    raises(ValueError, RelayPolicy, min_interval_s=3601)
    pol = RelayPolicy(remote_reconnect=True, min_interval_s=0, max_per_hour=2)
    c, relay, _ = _dev(pol)
    c.disconnect(T0, 1)
    _refused(c.reconnect(T0, 2), "throttled", DISCONNECTED, 2)  # 1 + 2 > 2
    _ok(c.reconnect(T0 + 3600, 3), CONNECTED, "relay_close", "close", 3)
    # A clock set back counts later operations as just now: it unlocks nothing.
    c, relay, _ = _dev(REMOTE)
    c.disconnect(T0 + 10000, 1)
    _refused(c.reconnect(T0, 2), "throttled", DISCONNECTED, 2)
    _refused(c.reconnect(T0 + 9000, 3), "throttled", DISCONNECTED, 3)
    _ok(c.reconnect(T0 + 10060, 4), CONNECTED, "relay_close", "close", 4)


# -- load limit ----------------------------------------------------------------------------


def test_load_limit_trip_rule():
    c, relay, storage = _dev()
    _ok(c.set_load_limit(T0, 1, 1000, 30, 0), CONNECTED, "load_limit", None, 1)
    assert _persisted(storage)[3:6] == (1000, 30, 0)
    _unchanged(c.demand(T0, 1000), CONNECTED)  # at the limit is not above it
    _unchanged(c.demand(T0 + 1, 1001), CONNECTED)  # run starts
    _unchanged(c.demand(T0 + 30, 1001), CONNECTED)  # 29 s
    _unchanged(c.demand(T0 + 31, 900), CONNECTED)  # a dip ends the run
    _unchanged(c.demand(T0 + 40, 5000), CONNECTED)  # a new run
    _unchanged(c.demand(T0 + 69, 5000), CONNECTED)
    _ok(c.demand(T0 + 70, 5000), TRIPPED, "load_trip", "open")
    assert not relay.is_closed()
    _consistent(c, relay, storage)
    assert _persisted(storage)[1] == 5  # cause: trip
    # duration 0: the first sample above the limit trips.
    c, relay, _ = _dev()
    c.set_load_limit(T0, 1, 10, 0, 1)
    _ok(c.demand(T0, 11), TRIPPED, "load_trip", "open")


def test_manual_restore_needs_arm_and_button():
    c, relay, storage = _dev()
    t = _trip(c, T0)
    for dt in (1, 100, 100000):
        _unchanged(c.demand(t + dt, 0), TRIPPED)
    _refused(c.button(t + 100001), "not_armed", TRIPPED)
    assert not relay.is_closed()
    c.arm(t + 100002, 60)
    _ok(c.button(t + 100003), CONNECTED, "relay_close", "close")
    _consistent(c, relay, storage)


def test_automatic_restore_rule():
    c, relay, storage = _dev()
    t = _trip(c, T0, limit=1000, duration=120, restore=1)
    _unchanged(c.demand(t + 60, 0), TRIPPED)
    _unchanged(c.demand(t + 100, 2000), TRIPPED)  # above the limit: the wait is cancelled
    _unchanged(c.demand(t + 119, 0), TRIPPED)  # the wait starts again here
    _unchanged(c.demand(t + 238, 0), TRIPPED)
    _ok(c.demand(t + 239, 0), CONNECTED, "relay_close", "close")
    assert relay.is_closed()
    _consistent(c, relay, storage)
    assert _persisted(storage)[1] == 6  # cause: restore
    # A restore due before the minimum interval waits for it, logged once.
    c, relay, _ = _dev()
    c.set_load_limit(T0, 1, 1000, 0, 1)
    c.demand(T0, 2000)
    out = c.demand(T0 + 1, 0)
    assert out.status == "refused" and out.reason == "throttled" and out.event == "relay_refused"
    out = c.demand(T0 + 30, 0)
    assert out.reason == "throttled" and out.event is None and not relay.is_closed()
    _ok(c.demand(T0 + 60, 0), CONNECTED, "relay_close", "close")
    # The wait restarts at boot: the timers are volatile.
    c, relay, storage = _dev()
    t = _trip(c, T0, duration=100, restore=1)
    c = _boot(storage, relay, None, t + 90)
    _unchanged(c.demand(t + 101, 0), TRIPPED)
    _unchanged(c.demand(t + 189, 0), TRIPPED)
    _ok(c.demand(t + 190, 0), CONNECTED, "relay_close", "close")


def test_lifting_the_limit_never_closes_and_params_are_checked():
    c, relay, storage = _dev()
    c.set_load_limit(T0, 1, 1000, 0, 1)
    _ok(c.set_load_limit(T0 + 1, 2, 0, 0, 1), CONNECTED, "load_limit", None, 2)
    _unchanged(c.demand(T0 + 2, 10**9), CONNECTED)
    c.set_load_limit(T0 + 3, 3, 1000, 0, 1)
    c.demand(T0 + 4, 2000)
    c.set_load_limit(T0 + 5, 4, 0, 0, 1)
    for dt in (100, 10000):
        _unchanged(c.demand(T0 + dt, 0), TRIPPED)
    assert not relay.is_closed()
    writes = storage.writes()
    for args in ((-1, 0, 0), (1, -1, 0), (1, 0x10000, 0), (1, 0, 2), (2**32, 0, 0), ("1", 0, 0)):
        _refused(c.set_load_limit(T0 + 20000, 5, *args), "bad_param", TRIPPED, 5)
    assert storage.writes() == writes
    assert _persisted(storage)[3:6] == (0, 0, 1)


def test_limit_in_disconnected_states_takes_effect_when_connected():
    c, relay, _ = _dev()
    c.disconnect(T0, 1)
    c.set_load_limit(T0 + 1, 2, 100, 0, 0)
    _unchanged(c.demand(T0 + 2, 500), DISCONNECTED)
    c.arm(T0 + 3, 3)
    _unchanged(c.demand(T0 + 4, 500), ARMED)
    c.button(T0 + 60)
    _ok(c.demand(T0 + 61, 500), TRIPPED, "load_trip", "open")


# -- persistence, corruption, storage errors -----------------------------------------------


def test_reboot_restores_state_limit_and_counter():
    for latching in (True, False):
        storage = MemoryStorage()
        relay = SimRelay()
        c = _boot(storage, relay)
        c.set_load_limit(T0, 5, 700, 9, 1)
        c.disconnect(T0 + 1, 6)
        relay2 = relay if latching else SimRelay(closed=True)
        c2 = _boot(storage, relay2, None, T0 + 2)
        assert c2.state == DISCONNECTED and c2.counter == 6 and not relay2.is_closed()
        assert (c2.limit_w, c2.duration_s, c2.restore) == (700, 9, 1)
        assert c2.history == (T0 + 1,)
        c2.arm(T0 + 3, 7)
        c2.button(T0 + 61)
        relay3 = relay2 if latching else SimRelay()  # a non-latching relay drops out
        out = RelayController(_records(storage), relay3).boot(T0 + 62)
        assert out.status == "executed" and out.state == CONNECTED and relay3.is_closed()
        if latching:
            assert out.op is None and out.event is None
        else:
            assert out.op == "close" and out.event == "relay_boot"


def test_boot_completes_a_move_a_power_cut_interrupted():
    storage = MemoryStorage()
    relay = SimRelay()
    _boot(storage, relay)
    # The record says DISCONNECTED but the relay never moved (cut between write and move).
    _records(storage).write(RECORD, encode(DISCONNECTED, 1, 9, 0, 0, 0, [T0]))
    assert relay.is_closed()
    out = RelayController(_records(storage), relay).boot(T0 + 5)
    assert out.op == "open" and out.event == "relay_boot" and not relay.is_closed()


def test_corrupt_record_opens_and_holds_the_relay():
    for how in ("slots", "payload"):
        storage = MemoryStorage()
        relay = SimRelay()
        c = _boot(storage, relay, REMOTE)
        c.set_load_limit(T0, 1, 100, 0, 1)
        if how == "slots":
            for name in ("relay.a", "relay.b"):
                blob = bytearray(storage.read(name))
                blob[-1] ^= 1
                storage.write(name, bytes(blob))
        else:  # genuinely sealed but not a relay record (e.g. a future format)
            _records(storage).write(RECORD, b"\x02" + bytes(14))
        c = RelayController(_records(storage), relay, REMOTE)
        out = c.boot(T0 + 10)
        assert out.status == "refused" and out.reason == "record_corrupt", out
        assert out.event == "relay_corrupt" and out.op == "open" and out.state == DISCONNECTED
        assert not relay.is_closed() and c.limit_w == 0
        _consistent(c, relay, storage)  # rewritten as DISCONNECTED
        # The operation history is unknown: treated as full for an hour.
        _refused(c.reconnect(T0 + 3609, 2), "throttled", DISCONNECTED, 2)
        _ok(c.reconnect(T0 + 3610, 3), CONNECTED, "relay_close", "close", 3)


def _anchored(storage, anchor):
    _boots[0] += 1
    entropy = DeterministicEntropy(b"relay%d" % _boots[0])
    return RecordStore(storage, KEY, entropy, anchor, (RECORD,))


def test_a_rolled_back_record_opens_the_relay():
    """The meter anchors the relay record: a customer who puts back the flash image from
    before a remote disconnect gets an open relay, not supply."""
    storage, relay, anchor = MemoryStorage(), SimRelay(), MemoryAnchor()
    RelayController(_anchored(storage, anchor), relay, REMOTE).boot(T0)
    before = storage.snapshot()
    c = RelayController(_anchored(storage, anchor), relay, REMOTE)
    c.boot(T0 + 1)
    _ok(c.disconnect(T0 + 2, 1), DISCONNECTED, "relay_open", "open", 1)
    storage = MemoryStorage(before)
    relay = SimRelay(closed=True)
    c = RelayController(_anchored(storage, anchor), relay, REMOTE)
    out = c.boot(T0 + 10)
    assert out.status == "refused" and out.reason == "record_corrupt", out
    assert out.op == "open" and c.state == DISCONNECTED and not relay.is_closed()


def test_a_torn_first_write_boots_as_new():
    """A cut inside the very first write of an anchored relay record, at any byte: no write
    ever completed, so the meter boots as a new one (supply on), not as a corrupt one."""
    flash, anchor = FlashSim(), MemoryAnchor()
    snap = flash.snapshot()
    RelayController(_anchored(flash, anchor), SimRelay(), REMOTE).boot(T0)
    points = list(flash.cut_points(1))
    assert len(points) > 30
    for after, at in points:
        flash, anchor = FlashSim(snap), MemoryAnchor()
        flash.arm_cut(after, at)
        raises(PowerCut, RelayController(_anchored(flash, anchor), SimRelay(), REMOTE).boot, T0)
        flash.reboot()
        relay = SimRelay(closed=False)
        c = RelayController(_anchored(flash, anchor), relay, REMOTE)
        out = c.boot(T0 + 5)
        assert out.reason == "ok" and c.state == CONNECTED and relay.is_closed(), (at, out)
        _consistent(c, relay, flash)


class _FailingStorage(MemoryStorage):
    """Storage whose writes fail (flash worn out, file system full) once `fail` is set."""

    fail = False

    def _store(self, name, data):
        if self.fail:
            raise OSError(28)
        MemoryStorage._store(self, name, data)


def test_storage_error_refuses_and_leaves_the_relay():
    storage = _FailingStorage()
    c, relay, _ = _dev(REMOTE, storage=storage)
    storage.fail = True
    _refused(c.disconnect(T0, 1), "storage", CONNECTED, 1)
    assert relay.is_closed() and c.counter == 0 and c.history == ()
    _refused(c.set_load_limit(T0, 2, 1, 0, 0), "storage", CONNECTED, 2)
    assert c.limit_w == 0
    storage.fail = False
    c.disconnect(T0 + 1, 3)
    storage.fail = True
    _refused(c.reconnect(T0 + 100, 4), "storage", DISCONNECTED, 4)
    assert not relay.is_closed()
    # A meter whose first record cannot be written still boots to the fresh state.
    relay3 = SimRelay()
    fresh = _FailingStorage()
    fresh.fail = True
    out = RelayController(_records(fresh), relay3, RelayPolicy(fresh_state=ARMED)).boot(T0)
    assert out.reason == "storage" and out.state == ARMED and not relay3.is_closed()


def test_arguments_and_outcome_codes():
    c = RelayController(_records(MemoryStorage()), SimRelay())
    raises(RuntimeError, c.disconnect, T0, 1)
    c.boot(T0)
    raises(ValueError, c.disconnect, -1, 1)
    raises(ValueError, c.disconnect, T0, 2**32)
    raises(ValueError, c.disconnect, T0, None)
    raises(ValueError, c.demand, T0, 1.5)
    raises(ValueError, c.boot, "now")
    out = c.reconnect(T0, 1)
    assert out.status_code == 1 and out.reason_code == REASONS.index("policy") == 3
    assert not out.executed and "policy" in repr(out) and "connected" in repr(out)
    out = c.disconnect(T0, 2)
    assert out.status_code == 0 and out.reason_code == 0 and out.executed
    assert Outcome("executed", "unchanged", ARMED).reason_code == 1
    raises(ValueError, decode, b"")
    raises(ValueError, decode, encode(TRIPPED, 0, 0, 0, 0, 0, [1]) + b"\x00")
    raises(ValueError, decode, encode(4, 0, 0, 0, 0, 0, []))
    raises(ValueError, decode, encode(0, 0, 0, 0, 0, 2, []))
    assert decode(encode(ARMED, 2, 9, 8, 7, 1, [5, 6])) == (ARMED, 2, 9, 8, 7, 1, [5, 6])


# -- power cuts ----------------------------------------------------------------------------


def _campaign(setup, script, check, step=1):
    """Run script once cleanly to log its writes, then again from the same flash with a power
    cut at every one of those writes and every step-th byte; after each cut, reboot (with a
    relay whose contacts read closed, the harsher case) and call check(controller, relay,
    outputs before the cut, cut point). Returns the number of cut points."""
    flash = FlashSim()
    relay = SimRelay()
    c = _boot(flash, relay, REMOTE)
    setup(c)
    snap = flash.snapshot()
    flash.clear_log()
    script(c, [])
    points = list(flash.cut_points(step))
    for after, at in points:
        flash = FlashSim(snap)
        relay = SimRelay(closed=False)
        c = _boot(flash, relay, REMOTE, T0 + 50)
        flash.arm_cut(after, at)
        outs = []
        raises(PowerCut, script, c, outs)
        flash.reboot()
        relay = SimRelay(closed=True)
        c = _boot(flash, relay, REMOTE, T0 + 5000)
        _consistent(c, relay, flash)
        check(c, relay, outs, (after, at, flash.write_log[after - 1][1]))
    return len(points)


def test_power_cut_during_a_disconnect_every_byte():
    def check(c, relay, outs, point):
        _, at, size = point
        assert outs == []  # nothing was reported
        # A torn write leaves the old record; a complete one (not acknowledged) the new.
        assert c.state == (DISCONNECTED if at >= size else CONNECTED), point

    def script(c, outs):
        outs.append(c.disconnect(T0 + 100, 1))

    n = _campaign(lambda c: None, script, check)
    assert n > 15


def test_power_cut_never_restores_supply_after_a_reported_disconnect():
    def setup(c):
        _ok(c.disconnect(T0 + 1, 1), DISCONNECTED, "relay_open", "open", 1)

    def script(c, outs):
        # Every input below leaves supply off; none may close it, whatever byte is cut.
        outs.append(c.set_load_limit(T0 + 100, 2, 500, 10, 1))
        outs.append(c.demand(T0 + 101, 0))
        outs.append(c.arm(T0 + 102, 3))
        outs.append(c.disconnect(T0 + 103, 4))  # revokes the arm
        outs.append(c.button(T0 + 200))  # refused: not armed
        outs.append(c.arm(T0 + 300, 5))
        outs.append(c.set_load_limit(T0 + 301, 6, 0, 0, 0))
        outs.append(c.disconnect(T0 + 302, 7))
        outs.append(c.demand(T0 + 400, 0))
        outs.append(c.button(T0 + 401))  # refused: not armed
        for out in outs:
            if out.op == "close" or c.state == CONNECTED:
                raise AssertionError("supply restored by %r" % out)

    def check(c, relay, outs, point):
        assert not relay.is_closed() and c.state != CONNECTED, point

    n = _campaign(setup, script, check)
    assert n > 80


def test_power_cut_during_the_button_press_that_restores_supply():
    def setup(c):
        c.disconnect(T0 + 1, 1)
        c.arm(T0 + 2, 2)

    def script(c, outs):
        outs.append(c.button(T0 + 100))

    def check(c, relay, outs, point):
        _, at, size = point
        assert c.state == (CONNECTED if at >= size else ARMED), point

    assert _campaign(setup, script, check) > 15


def test_power_cut_during_a_trip_and_its_restore():
    def setup(c):
        c.set_load_limit(T0 + 1, 1, 1000, 0, 1)

    def script(c, outs):
        outs.append(c.demand(T0 + 100, 2000))  # trip
        outs.append(c.demand(T0 + 200, 0))  # automatic restore

    def check(c, relay, outs, point):
        after, at, size = point
        done = at >= size
        if after == 1:
            assert c.state == (TRIPPED if done else CONNECTED), point
        else:
            assert c.state == (CONNECTED if done else TRIPPED), point
            assert len(c.history) == (2 if done else 1)  # the throttle saw each move

    assert _campaign(setup, script, check) > 30
