"""Persisted counters: reserved ahead, and never reused under a power cut at any write and byte."""

from ami.keyschedule import derive_storage_key
from ami.link.replay import ReplayWindow
from ami.ports.entropy import DeterministicEntropy
from ami.ports.flashsim import FlashSim, PowerCut
from ami.ports.storage import MemoryStorage
from ami.store.counters import CounterExhausted, RxFloor, TxCounter
from ami.store.records import RecordCorrupt, RecordStore
from fwtest import raises

KEY = derive_storage_key(b"counter tests")


def _records(storage):
    # A new seed per boot, as a device's RNG would not repeat itself after a reboot.
    boot = getattr(storage, "cuts", 0)
    return RecordStore(storage, KEY, DeterministicEntropy(b"boot%d" % boot))


# --- TxCounter -----------------------------------------------------------------------------


def test_tx_counts_from_zero_and_writes_once_per_reserve():
    m = MemoryStorage()
    c = TxCounter(_records(m), "tx", reserve=8)
    assert c.value == 0 and c.limit == 0
    values = [c.next() for _ in range(20)]
    assert values == list(range(20))
    assert c.value == 20 and c.limit == 24
    assert m.writes() == 3  # limits 8, 16, 24, each before the first value it covers


def test_tx_resumes_at_the_persisted_limit():
    m = MemoryStorage()
    c = TxCounter(_records(m), "tx", reserve=16)
    for _ in range(5):
        c.next()
    again = TxCounter(_records(m), "tx", reserve=16)
    assert again.value == 16 and again.next() == 16
    assert again.limit == 32


def test_tx_cap_forces_a_rejoin():
    m = MemoryStorage()
    c = TxCounter(_records(m), "tx", reserve=4, cap=10)
    assert [c.next() for _ in range(10)] == list(range(10))
    assert c.limit == 10  # never reserved past the cap
    raises(CounterExhausted, c.next)
    raises(CounterExhausted, c.next)
    exc = raises(CounterExhausted, TxCounter(_records(m), "tx", reserve=4, cap=10).next)
    assert exc.reason == "counter_exhausted"


def test_tx_full_u32_range():
    m = MemoryStorage()
    c = TxCounter(_records(m), "tx", start=0xFFFFFFF0)
    values = [c.next() for _ in range(15)]
    assert values[-1] == 0xFFFFFFFE and c.limit == 0xFFFFFFFF
    raises(CounterExhausted, c.next)  # 2^32 - 1 itself is never sent


def test_tx_reset_and_start_persist():
    m = MemoryStorage()
    c = TxCounter(_records(m), "tx", reserve=8)
    for _ in range(30):
        c.next()
    c.reset(100)
    assert c.value == 100 and c.next() == 100
    assert TxCounter(_records(m), "tx", reserve=8).value == 108
    c.reset()
    assert c.next() == 0
    assert TxCounter(_records(m), "tx", reserve=8).value == 8
    raises(ValueError, c.reset, -1)
    raises(ValueError, c.reset, 0x100000000)
    raises(ValueError, TxCounter, _records(m), "tx", 0)
    raises(ValueError, TxCounter, _records(m), "tx", 8, 0)
    raises(ValueError, TxCounter, _records(m), "tx", 8, 0x100000000)


def test_tx_corrupt_record_is_never_read_as_zero():
    m = MemoryStorage()
    r = _records(m)
    c = TxCounter(r, "tx", reserve=8)
    for _ in range(20):
        c.next()
    for slot in ("tx.a", "tx.b"):
        m.write(slot, b"\xff" * 40)
    exc = raises(RecordCorrupt, TxCounter, r, "tx")
    assert exc.reason == "record_corrupt"
    # A well-sealed record of the wrong shape is corrupt too.
    r.write("odd", b"\x00\x01")
    raises(RecordCorrupt, TxCounter, r, "odd")
    r.write("odd", b"")  # empty means "nothing received" for RxFloor only
    raises(RecordCorrupt, TxCounter, r, "odd")
    # After a rejoin the new session replaces the record without reading it.
    fresh = TxCounter(r, "tx", reserve=8, start=0)
    assert fresh.next() == 0
    assert TxCounter(r, "tx", reserve=8).value == 8


class FlakyStorage(MemoryStorage):
    """Fails the next write with OSError when told to (a full or worn-out flash)."""

    fail = False

    def _store(self, name, data):
        if self.fail:
            self.fail = False
            raise OSError(28)
        MemoryStorage._store(self, name, data)


def test_tx_failed_persist_hands_out_nothing():
    m = FlakyStorage()
    c = TxCounter(_records(m), "tx", reserve=4)
    assert [c.next() for _ in range(4)] == [0, 1, 2, 3]
    m.fail = True
    raises(OSError, c.next)
    assert c.value == 4 and c.limit == 4
    assert c.next() == 4 and c.limit == 8


def _tx_run(f, reserve, count, values):
    """Hand out count more counters, rebooting after every power cut; returns boots.

    Each value must be above the last one in values: strictly rising means never reused.
    """
    boots = 0
    c = TxCounter(_records(f), "tx", reserve=reserve)
    while count:
        try:
            v = c.next()
        except PowerCut:
            f.reboot()
            boots += 1
            c = TxCounter(_records(f), "tx", reserve=reserve)
            continue
        assert not values or v > values[-1], (values[-1], v)
        values.append(v)
        count -= 1
    return boots


def test_tx_power_cut_at_every_write_and_byte_never_reuses_a_counter():
    reserve, total = 4, 26
    for erase_first in (False, True):
        setup = FlashSim()
        TxCounter(_records(setup), "tx", reserve=reserve, start=0)
        start = setup.snapshot()
        dry = FlashSim(start)
        _tx_run(dry, reserve, total, [])
        assert len(dry.write_log) == 7
        cases = 0
        for n, k in dry.cut_points():
            f = FlashSim(start, erase_first=erase_first)
            f.arm_cut(n, k)
            assert _tx_run(f, reserve, total, []) == 1
            cases += 1
        assert cases == 7 * 41  # every byte 0..40 of every 40-byte slot write


def test_tx_many_cuts_in_one_life():
    f = FlashSim()
    TxCounter(_records(f), "tx", reserve=3, start=0)
    rng = DeterministicEntropy(b"cuts")
    values = []
    for _ in range(120):
        r = rng.random_bytes(2)
        f.arm_cut(1 + r[0] % 3, r[1] % 42)
        _tx_run(f, 3, 5, values)
        # Only the last value matters for the next check; a long list fragments a small heap.
        values = values[-1:]
        f.clear_log()
    assert f.cuts > 60


def test_tx_first_write_torn_is_corrupt_never_a_silent_restart():
    for k in range(41):
        f = FlashSim()
        c = TxCounter(_records(f), "tx", reserve=8)
        f.arm_cut(1, k)
        raises(PowerCut, c.next)
        f.reboot()
        if k < 40:
            raises(RecordCorrupt, TxCounter, _records(f), "tx")
        else:  # the limit made it: resume above it
            assert TxCounter(_records(f), "tx", reserve=8).value == 8


# --- RxFloor -------------------------------------------------------------------------------


def test_rx_floor_fresh_then_reserved_ahead():
    m = MemoryStorage()
    rx = RxFloor(_records(m), "rx", reserve=10)
    assert rx.floor is None and rx.persisted is None
    rx.note(0)
    assert rx.persisted == 10 and rx.floor is None  # the floor only moves at boot or reset
    for c in range(1, 10):
        rx.note(c)
    assert m.writes() == 1
    rx.note(10)
    assert rx.persisted == 20 and m.writes() == 2
    rx.note(500)  # a jump
    assert rx.persisted == 510
    again = RxFloor(_records(m), "rx", reserve=10)
    assert again.floor == 510 and again.persisted == 510


def test_rx_reset_and_fresh():
    m = MemoryStorage()
    rx = RxFloor(_records(m), "rx")
    rx.note(5)
    rx.reset()
    assert rx.floor is None and rx.persisted is None
    assert RxFloor(_records(m), "rx").floor is None
    m.write("rx.a", b"junk")
    m.write("rx.b", b"junk")
    raises(RecordCorrupt, RxFloor, _records(m), "rx")
    rx = RxFloor(_records(m), "rx", fresh=True)
    assert RxFloor(_records(m), "rx").floor is None


def test_rx_top_of_range_and_arguments():
    m = MemoryStorage()
    rx = RxFloor(_records(m), "rx")
    rx.note(0xFFFFFFF0)
    assert rx.persisted == 0xFFFFFFFF
    assert RxFloor(_records(m), "rx").floor == 0xFFFFFFFF
    raises(ValueError, rx.note, -1)
    raises(ValueError, rx.note, 0x100000000)
    raises(ValueError, rx.note, "1")
    raises(ValueError, RxFloor, _records(m), "rx", 0)
    r = _records(m)
    r.write("odd", b"\x01\x02\x03")
    raises(RecordCorrupt, RxFloor, r, "odd")


# Downlink counters as a head end sends them: mostly +1, with losses and one long gap.
STEPS = (1, 1, 2, 1, 1, 7, 1, 1, 1, 40, 1, 1, 3, 1, 1, 1, 1, 2, 1, 1)


def _rx_run(f, reserve, frames, acted):
    """Receive frames from a sender that restarts above STATUS's floor after each reboot.

    note() before acting, as the device does; after every reboot, every frame acted on so far
    must be refused. Returns the number of reboots.
    """
    boots = 0
    rx = RxFloor(_records(f), "rx", reserve=reserve)
    window = ReplayWindow(floor=rx.floor)
    for old in acted:
        assert not window.check(old), (old, rx.floor)
    sent = 0
    counter = 0
    while sent < frames:
        if not window.check(counter):
            counter += 1  # below the floor: the sender moves on (STATUS tells it where to)
            continue
        try:
            rx.note(counter)
        except PowerCut:
            f.reboot()
            boots += 1
            rx = RxFloor(_records(f), "rx", reserve=reserve)
            window = ReplayWindow(floor=rx.floor)
            for old in acted:  # every replay of an acted-on frame is refused
                assert not window.check(old), (old, rx.floor)
            continue
        window.accept(counter)
        assert not acted or counter > acted[-1]
        acted.append(counter)
        counter += STEPS[sent % len(STEPS)]
        sent += 1
    return boots


def test_rx_power_cut_at_every_write_and_byte_never_accepts_twice():
    reserve, frames = 5, 40
    for erase_first in (False, True):
        setup = FlashSim()
        RxFloor(_records(setup), "rx", reserve=reserve, fresh=True)
        start = setup.snapshot()
        dry = FlashSim(start)
        _rx_run(dry, reserve, frames, [])
        writes = len(dry.write_log)
        assert writes >= 10
        for n, k in dry.cut_points():
            f = FlashSim(start, erase_first=erase_first)
            f.arm_cut(n, k)
            assert _rx_run(f, reserve, frames, []) == 1


def test_rx_many_cuts_in_one_life():
    f = FlashSim()
    RxFloor(_records(f), "rx", reserve=4, fresh=True)
    rng = DeterministicEntropy(b"rx cuts")
    acted = []
    for _ in range(60):
        r = rng.random_bytes(2)
        f.arm_cut(1 + r[0] % 3, r[1] % 42)
        _rx_run(f, 4, 10, acted)
        acted = acted[-32:]  # recent ones suffice: older ones sit further below the floor
        f.clear_log()
    assert f.cuts > 30
