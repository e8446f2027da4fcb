"""Security event log (protocol.md section 11): ring, sequence numbers, alarms, floods, cuts."""

import sys

from ami import events as E
from ami.keyschedule import derive_storage_key
from ami.link.frame import FrameError
from ami.ports.entropy import DeterministicEntropy
from ami.ports.flashsim import FlashSim, PowerCut
from ami.ports.storage import MemoryStorage
from ami.store.records import RecordStore
from fwtest import raises

KEY = derive_storage_key(b"event tests")
MICRO = sys.implementation.name == "micropython"
T0 = 1767225600  # a window boundary for every window_s used here
W = 300  # default window_s


def _records(storage):
    boot = getattr(storage, "cuts", 0)
    return RecordStore(storage, KEY, DeterministicEntropy(b"ev boot%d" % boot))


def _log(storage, **kw):
    return E.EventLog(_records(storage), **kw)


def _seqs(evs):
    return [e[0] for e in evs]


# --- kinds, severities, reasons ------------------------------------------------------------


def test_kind_tables_cover_every_reason():
    assert len(E.KIND_NAMES) == E.RECORD_ROLLBACK + 1 == len(E._SEVERITY)
    for code in range(1, len(E.KIND_NAMES)):
        assert E.kind_for(E.KIND_NAMES[code]) == code
        assert E.kind_name(code) == E.KIND_NAMES[code]
        assert 0 <= E.default_severity(code) <= E.CRITICAL
    assert E.kind_name(200) == "kind_200"
    assert E.default_severity(200) == E.WARNING
    # Link rejections (section 6) and command checks (section 10.3).
    for reason in ("crc", "malformed", "unknown_key", "key_generation", "replay", "auth",
                   "unexpected", "join_nonce_replay", "bad_signature", "unknown_signer",
                   "wrong_target", "not_yet_valid", "expired", "counter_reused",
                   "window_violation", "throttled", "record_corrupt", "counter_exhausted",
                   "unknown_device", "revoked", "rate_limited", "dev_nonce_replay",
                   "bad_certificate", "expired_certificate", "key_confirmation",
                   "relay_open", "relay_close", "relay_refused", "load_trip", "relay_armed",
                   "load_limit", "relay_boot", "relay_corrupt", "policy", "not_armed"):
        kind = E.kind_for(reason)
        assert kind is not None and kind != E.OTHER, reason
    assert E.kind_for("bad_certificate") == E.JOIN_FAILED
    assert E.kind_for("not_for_me") is None  # traffic for a neighbour is not an event
    assert E.kind_for("something_new") == E.OTHER
    assert E.default_severity(E.CRC) == E.INFO
    assert E.default_severity(E.BAD_SIGNATURE) == E.ALARM
    assert E.default_severity(E.TAMPER) == E.CRITICAL
    assert E.default_severity(E.RECORD_CORRUPT) == E.CRITICAL
    assert E.is_alarm(E.ALARM) and E.is_alarm(E.CRITICAL | E.AGGREGATED)
    assert not E.is_alarm(E.WARNING | E.AGGREGATED)


# --- EVENTS body -----------------------------------------------------------------------------


def test_encode_decode_events():
    evs = [(1, T0, E.CRC, 0, 0), (7, T0 + 5, E.TAMPER, 3, 0xFFFF),
           (0xFFFFFFFF, 0xFFFFFFFF, 255, E.ALARM | E.AGGREGATED, 12)]
    body = E.encode_events(evs)
    assert len(body) == 1 + 3 * 12 and body[0] == 3
    assert body[1:13] == b"\x00\x00\x00\x01" + T0.to_bytes(4, "big") + b"\x01\x00\x00\x00"
    assert E.decode_events(body) == evs
    full = [(i + 1, T0, E.AUTH, 1, i) for i in range(13)]
    assert E.decode_events(E.encode_events(full)) == full
    raises(ValueError, E.encode_events, [])
    raises(ValueError, E.encode_events, full + [(99, T0, 1, 0, 0)])
    raises(ValueError, E.encode_events, [(2, T0, 1, 0, 0), (2, T0, 1, 0, 0)])
    raises(ValueError, E.encode_events, [(1, T0, 0, 0, 0)])  # kind 0
    raises(ValueError, E.encode_events, [(1, T0, 1, 4, 0)])  # severity
    raises(ValueError, E.encode_events, [(1, T0, 1, 0, 0x10000)])  # detail
    raises(ValueError, E.encode_events, [(1, -1, 1, 0, 0)])
    raises(ValueError, E.encode_events, [(1, T0, 256, 0, 0)])


def test_decode_rejects_malformed_bodies():
    good = E.encode_events([(1, T0, E.CRC, 0, 0), (2, T0, E.AUTH, 1, 0)])
    bad = [
        b"",
        b"\x00",  # count 0
        bytes([14]) + bytes(14 * 12),  # count 14
        good[:-1],
        good + b"\x00",
        b"\x01" + good[1:13] + good[13:],  # length of two, count of one
        good[:1] + good[13:] + good[1:13],  # seqs going back
        good[:1] + good[1:13] + good[1:13],  # a repeated seq
        good[:9] + b"\x00" + good[10:],  # kind 0
        good[:10] + b"\x04" + good[11:],  # severity 4
        good[:10] + b"\x40" + good[11:],  # an unknown flag
    ]
    for body in bad:
        exc = raises(E.EventError, E.decode_events, body)
        assert exc.reason == "malformed"
        assert isinstance(exc, FrameError)  # counted like every malformed input
    raises(E.EventError, E.decode_events, "text")


# --- logging and the ring ------------------------------------------------------------------


def test_log_returns_increasing_seqs_and_events_in_order():
    m = MemoryStorage()
    log = _log(m)
    assert log.next_seq == 1 and log.events() == [] and log.pending_alarms() == []
    seqs = [log.log(T0 + i, E.CRC, i) for i in range(3)]
    assert seqs == [1, 2, 3]
    assert log.log(T0 + 9, E.MALFORMED, 7, severity=E.ALARM) == 4
    evs = log.events()
    assert evs == [(1, T0, E.CRC, 0, 0), (2, T0 + 1, E.CRC, 0, 1), (3, T0 + 2, E.CRC, 0, 2),
                   (4, T0 + 9, E.MALFORMED, E.ALARM, 7)]
    assert log.events(since_seq=2) == evs[2:]
    assert log.pending_alarms() == [evs[3]]
    assert log.log_reason(T0 + 10, "not_for_me") is None
    assert log.log_reason(T0 + 10, "bad_signature") == 5
    assert log.events()[-1] == (5, T0 + 10, E.BAD_SIGNATURE, E.ALARM, 0)
    raises(ValueError, log.log, -1, E.CRC)
    raises(ValueError, log.log, 1 << 32, E.CRC)
    raises(ValueError, log.log, T0, 0)
    raises(ValueError, log.log, T0, 256)
    raises(ValueError, log.log, T0, E.CRC, 0x10000)
    raises(ValueError, log.log, T0, E.CRC, 0, 4)
    raises(ValueError, log.log, T0, E.CRC, 0, E.ALARM | E.AGGREGATED)
    assert log.next_seq == 6  # rejected calls used no seq


def test_arguments_of_the_log():
    m = MemoryStorage()
    raises(ValueError, E.EventLog, _records(m), 12)  # not a multiple of 8
    raises(ValueError, E.EventLog, _records(m), 0)
    raises(ValueError, E.EventLog, _records(m), 2048)
    raises(ValueError, E.EventLog, _records(m), 64, "EV")  # record names are lower case
    raises(ValueError, E.EventLog, _records(m), 64, "x" * 28)  # too long for the page names
    raises(TypeError, E.EventLog, _records(m), 64, 5)
    raises(ValueError, E.EventLog, _records(m), 64, "ev", 0)
    raises(ValueError, E.EventLog, _records(m), 64, "ev", 300, 3, 16, 0)
    log = E.EventLog(_records(m), 8, "sec-log_1")
    log.log(T0, E.TAMPER)
    assert "sec-log_1.al.a" in m.names() and "sec-log_1.p0.a" in m.names()


def test_writes_per_event():
    """Events below alarm cost 1/8 write (a page per 8), alarms one write each, plus one write
    for the first event after each boot."""
    m = MemoryStorage()
    log = _log(m, capacity=64, burst=1000, window_cap=1000)
    for i in range(64):
        log.log(T0 + i, E.CRC)
    assert m.writes() == 1 + 8  # the first event written through, then a page per 8
    for i in range(8):
        log.log(T0 + 100 + i, E.BAD_SIGNATURE)
    assert m.writes() == 9 + 8 + 1  # one ev.al write per alarm, one page write
    assert m.writes("ev.al.a") + m.writes("ev.al.b") == 8
    # Nine page records rotate, A/B each: every slot sees one write per 18 pages.
    for i in range(9 * 8 * 4):
        log.log(T0 + 200 + i, E.CRC)
    per_slot = [m.writes("ev.p%d.%s" % (p, s)) for p in range(9) for s in "ab"]
    assert max(per_slot) - min(per_slot) <= 1
    log.ack(log.next_seq - 1)
    assert m.writes("ev.al.a") + m.writes("ev.al.b") == 9
    before = m.writes()
    assert log.ack(log.next_seq - 1) == 0  # nothing new to acknowledge: no write
    log.flush()  # nothing unwritten
    log.log(T0 + 999, E.CRC)
    log.flush()
    log.flush()
    assert m.writes() == before + 1


def test_ring_keeps_the_last_capacity_events():
    m = MemoryStorage()
    log = _log(m, capacity=16, burst=1000, window_cap=1000)
    for i in range(100):
        assert log.log(T0 + i, E.AUTH, i) == i + 1
        evs = log.events()
        assert 16 <= len(evs) <= 24 or len(evs) == i + 1
        assert _seqs(evs) == list(range(i + 2 - len(evs), i + 2))  # the newest, in order
    log.flush()
    again = _log(m, capacity=16)
    assert again.events() == log.events()
    assert again.next_seq == 101 + 4  # the unused slots of the current page are skipped
    assert len(m.names()) == 2 * 3  # three pages, no ev.al: there was no alarm


def test_sequence_monotonic_across_reboots():
    m = MemoryStorage()
    last = 0
    for boot in range(40):
        log = _log(m, capacity=16, burst=1000, window_cap=1000)
        assert log.next_seq > last
        for i in range(boot % 11):
            seq = log.log(T0 + boot * 100 + i, E.CRC + i % 3)
            assert seq > last
            last = seq
        if boot % 5 == 4:
            log.flush()
    evs = _log(m, capacity=16).events()
    assert _seqs(evs) == sorted(set(_seqs(evs)))


def test_alarm_survives_reboot_until_acknowledged():
    m = MemoryStorage()
    log = _log(m)
    log.log(T0, E.CRC)
    log.log(T0 + 1, E.REPLAY)
    a = log.log(T0 + 2, E.BAD_SIGNATURE, 3)
    log.log(T0 + 3, E.CRC)
    rebooted = _log(m)  # no flush: the info events after the first are lost, the alarm not
    assert rebooted.pending_alarms() == [(a, T0 + 2, E.BAD_SIGNATURE, E.ALARM, 3)]
    assert _seqs(rebooted.events()) == [1, a]
    assert rebooted.next_seq > a + 1
    b = rebooted.log(T0 + 10, E.TAMPER)
    assert _seqs(rebooted.pending_alarms()) == [a, b]
    assert rebooted.ack(a) == 1
    again = _log(m)
    assert _seqs(again.pending_alarms()) == [b]
    assert again.acked == a
    assert a in _seqs(again.events())  # acknowledged, still in the history
    assert again.ack(again.next_seq + 1000) == 1  # clamped to the newest seq
    assert again.acked == again.next_seq - 1
    c = again.log(T0 + 20, E.UNKNOWN_SIGNER)  # a later alarm is not pre-acknowledged
    assert _seqs(_log(m).pending_alarms()) == [c]
    raises(ValueError, again.ack, -1)


def test_pending_alarms_come_13_at_a_time():
    m = MemoryStorage()
    log = _log(m, burst=1000, window_cap=1000)
    seqs = [log.log(T0 + i, E.COUNTER_REUSED, i) for i in range(30)]
    assert log.pending_count == 30
    first = log.pending_alarms()
    assert _seqs(first) == seqs[:13]
    assert len(log.pending_alarms(5)) == 5
    raises(ValueError, log.pending_alarms, 14)
    body = E.encode_events(first)
    assert log.ack(E.decode_events(body)[-1][0]) == 13
    assert _seqs(log.pending_alarms()) == seqs[13:26]
    assert _seqs(_log(m).pending_alarms()) == seqs[13:26]


def test_full_pending_list_evicts_only_for_a_higher_severity():
    """A full list takes a new alarm only in place of one of lower severity (the newest
    such), so a flood never pushes out an older alarm of the same severity (issue 12)."""
    m = MemoryStorage()
    log = _log(m, burst=1000, window_cap=1000, max_pending=4)
    a = log.log(T0, E.BAD_SIGNATURE)  # alarm
    t = log.log(T0 + 1, E.TAMPER)  # critical
    b = log.log(T0 + 2, E.BAD_SIGNATURE)
    c = log.log(T0 + 3, E.BAD_SIGNATURE)
    writes = m.writes()
    d = log.log(T0 + 4, E.COUNTER_REUSED)  # an alarm too: dropped, not kept pending
    assert d is not None and m.writes() == writes
    assert _seqs(log.pending_alarms()) == [a, t, b, c] and log.dropped_alarms == 1
    log.log(T0 + 5, E.WINDOW_VIOLATION, severity=E.ALARM)
    log.log(T0 + 6, E.RECORD_CORRUPT)  # critical: evicts the newest alarm, never the tamper
    assert [e[2] for e in log.pending_alarms()] == [E.BAD_SIGNATURE, E.TAMPER,
                                                   E.BAD_SIGNATURE, E.RECORD_CORRUPT]
    for i in range(4):
        log.log(T0 + 10 + i, E.TAMPER)
    assert [e[2] for e in log.pending_alarms()] == [E.TAMPER, E.RECORD_CORRUPT, E.TAMPER,
                                                   E.TAMPER]
    writes = m.writes()
    assert log.log(T0 + 20, E.BAD_SIGNATURE) is not None  # lower than all: not kept pending
    assert m.writes() == writes  # and no ev.al write for it
    assert log.dropped_alarms == 8
    again = _log(m, max_pending=4)
    assert again.pending_count == 4 and again.dropped_alarms == 5  # the rest in RAM only
    assert a in _seqs(again.events())  # evicted from pending, still in the history
    lowered = _log(m, max_pending=2)
    assert lowered.pending_count == 2


# --- flood rule -----------------------------------------------------------------------------


def test_flood_is_aggregated_per_kind_and_window():
    m = MemoryStorage()
    log = _log(m)  # window 300 s, burst 3, window cap 16
    got = [log.log(T0 + i, E.BAD_SIGNATURE, i) for i in range(100)]
    assert got[:3] == [1, 2, 3] and got[3:] == [None] * 97
    assert log.wakeup_s() == T0 + W
    assert log.log(T0 + 100, E.CRC) == 4  # other kinds are not affected
    assert log.tick(T0 + W - 1) == []
    writes = m.writes()
    agg = log.tick(T0 + W)
    assert agg == [5] and m.writes() == writes + 1  # one ev.al write
    assert log.events()[-1] == (5, T0 + 99, E.BAD_SIGNATURE, E.ALARM | E.AGGREGATED, 97)
    assert log.pending_alarms()[-1][0] == 5
    assert log.wakeup_s() is None
    # The flood goes on: a flooding kind gets no individual events, one aggregate a window.
    for w in range(1, 6):
        for i in range(50):
            assert log.log(T0 + w * W + i, E.BAD_SIGNATURE) is None
    log.tick(T0 + 6 * W)
    aggs = [e for e in log.events() if e[2] == E.BAD_SIGNATURE and e[3] & E.AGGREGATED]
    assert [e[4] for e in aggs] == [97] + [50] * 5
    # A quiet window ends the flood: individual events again.
    assert log.tick(T0 + 8 * W) == []
    assert log.log(T0 + 8 * W + 1, E.BAD_SIGNATURE) is not None


def test_flood_window_cap_and_saturation():
    m = MemoryStorage()
    log = _log(m, window_s=60, burst=2, window_cap=5)
    logged = [log.log(T0 + i, kind) for kind in (E.CRC, E.AUTH, E.REPLAY, E.TAMPER)
              for i in range(3)]
    assert [s is not None for s in logged] == [True, True, False, True, True, False,
                                               True, False, False, False, False, False]
    for _ in range(0x10000):
        log.log(T0 + 30, E.MALFORMED)
    out = log.tick(T0 + 60)
    aggs = [e for e in log.events() if e[0] in out]
    # In kind order (not dict order, which differs between runtimes).
    assert [(e[2], e[4]) for e in aggs] == [(E.CRC, 1), (E.MALFORMED, 0xFFFF), (E.REPLAY, 2),
                                           (E.AUTH, 1), (E.TAMPER, 3)]
    assert aggs[-1][3] == E.CRITICAL | E.AGGREGATED


def test_flood_cannot_wear_the_flash_or_flush_the_ring():
    m = MemoryStorage()
    log = _log(m)
    first = log.log(T0, E.TAMPER)
    kinds = (E.BAD_SIGNATURE, E.AUTH, E.REPLAY, E.COUNTER_REUSED, E.CRC, E.UNKNOWN_SIGNER)
    hours = 2 if MICRO else 6
    for s in range(0, hours * 3600, 2):  # six kinds, each every 2 s
        for k in kinds:
            log.log(T0 + s, k)
    log.tick(T0 + hours * 3600)
    windows = hours * 3600 // W
    # Per window: one ev.al write for the aggregates (one more when they fill a page) and
    # the pages they fill; the individual events of the first window on top.
    pages = windows * len(kinds) // 8 + 1
    assert m.writes() <= windows + 2 * pages + 2 + 16, m.writes()
    assert m.writes() >= windows  # each window did write its aggregates
    assert first in _seqs(log.pending_alarms())  # still there to be sent
    assert len(log.events()) >= 64


# --- corruption -------------------------------------------------------------------------------


def test_corrupt_records_are_never_fatal_and_skip_ahead():
    m = MemoryStorage()
    log = _log(m, capacity=16, burst=1000, window_cap=1000)
    for i in range(20):
        log.log(T0 + i, E.AUTH if i % 4 else E.BAD_SIGNATURE)
    log.ack(9)
    log.flush()
    top = log.next_seq - 1
    # The newest page damaged beyond both copies.
    for slot in ("ev.p2.a", "ev.p2.b"):
        m.write(slot, b"\xff" * 60)
    again = _log(m, capacity=16)
    assert again.corrupt == ["ev.p2"]
    assert again.next_seq > top + 16
    assert again.log(T0 + 50, E.CRC) > top
    # Acknowledgements lost: alarms still in the ring are sent again, never lost.
    for slot in ("ev.al.a", "ev.al.b"):
        m.write(slot, b"junk")
    third = _log(m, capacity=16)
    assert "ev.al" in third.corrupt
    pend = _seqs(third.pending_alarms())
    assert pend and pend == [e[0] for e in third.events() if E.is_alarm(e[3])]
    # A well-sealed record of the wrong shape is corrupt too.
    r = _records(m)
    r.write("ev.p0", b"\x00" * 13)
    assert "ev.p0" in _log(m, capacity=16).corrupt


# --- power cuts -------------------------------------------------------------------------------


def _script():
    """Six windows of mixed events, a flood, acks, a ring wrap (capacity 16, 24 slots):
    ("log", t, kind) | ("tick", t) | ("ack",)."""
    ops = []
    kinds = (E.CRC, E.BAD_SIGNATURE, E.AUTH, E.MALFORMED, E.TAMPER, E.REPLAY, E.UNKNOWN_SIGNER)
    for w in range(6):
        t = T0 + w * W
        ops.append(("tick", t))  # aggregates of the window before
        for i in range(7):
            ops.append(("log", t + i, kinds[(i + w) % len(kinds)]))
        if w == 2:  # a flood: 3 logged, 4 counted
            for i in range(7):
                ops.append(("log", t + 100 + i, E.COUNTER_REUSED))
        if w % 2:
            ops.append(("ack",))
    ops.append(("tick", T0 + 6 * W))
    ops.append(("ack",))
    return ops


class _Model:
    def __init__(self):
        self.pos = 0
        self.last = 0  # highest seq returned
        self.stored = []  # seqs returned (log or tick), the newest last
        self.alarms = []  # alarms whose log() or tick() returned
        self.acked = 0  # highest seq an ack() that returned covered
        self.acking = 0  # upto of an ack() under way: a cut may or may not have let it land


def _check(log, model):
    assert log.next_seq > model.last
    evs = log.events()
    seqs = _seqs(evs)
    assert seqs == sorted(set(seqs))
    pend = _seqs(log.pending_alarms())
    assert len(pend) == log.pending_count  # the script keeps it under 13
    # The ring keeps the newest 16 stored events at least; an operation a cut interrupted
    # may have stored one that was not returned, hence some slack.
    recent = model.stored[-12:]
    for s in model.alarms:
        if not model.acked < s <= model.acking:
            assert (s in pend) == (s > model.acked), (s, model.acked, pend)
        if s in recent:
            assert s in seqs, (s, seqs)  # logged, acknowledged or not: in the history
    for s in pend:  # nothing acknowledged comes back
        assert s > model.acked
    if model.acked < log.acked <= model.acking:  # the interrupted ack() landed
        model.acked = log.acked
    model.acking = 0


def _do(log, op, model):
    if op[0] == "log":
        seq = log.log(op[1], op[2])
        if seq is None:
            return
        out = [seq]
    elif op[0] == "tick":
        out = log.tick(op[1])
    else:
        pend = log.pending_alarms()
        if pend:
            model.acking = pend[-1][0]
            log.ack(model.acking)
            model.acked = max(model.acked, model.acking)
        return
    evs = log.events()
    for seq in out:
        assert seq > model.last
        model.last = seq
        model.stored.append(seq)
        for e in evs:
            if e[0] == seq and E.is_alarm(e[3]):
                model.alarms.append(seq)


def _run(f, script, model):
    """Run the script on f, rebooting (and retrying the operation) after each cut."""
    cuts = 0
    log = _log(f, capacity=16)
    while model.pos < len(script):
        try:
            _do(log, script[model.pos], model)
        except PowerCut:
            f.reboot()
            cuts += 1
            log = _log(f, capacity=16)
            _check(log, model)
            continue
        model.pos += 1
    _check(log, model)
    return cuts


def test_power_cut_at_every_write_and_byte():
    script = _script()
    dry = FlashSim()
    model = _Model()
    assert _run(dry, script, model) == 0
    writes = len(dry.write_log)
    assert 15 <= writes <= 40, writes
    # Every write and byte on CPython; on MicroPython every 4th byte (and the last).
    step = 4 if MICRO else 1
    cases = 0
    for erase_first in (False, True):
        for n, k in dry.cut_points(step):
            if erase_first and k % 4 and not MICRO:
                continue  # NOR erase: the tail is 0xFF either way; sample it
            f = FlashSim(erase_first=erase_first)
            f.arm_cut(n, k)
            assert _run(f, script, _Model()) == 1
            cases += 1
    assert cases > 100


def test_many_cuts_in_one_life():
    """Random operations (logs of six kinds, ticks, acks, flushes, clean reboots) with a
    power cut armed now and then; every event seen so far counts as handed out."""
    f = FlashSim()
    rng = DeterministicEntropy(b"event cuts")
    model = _Model()
    kinds = (E.CRC, E.AUTH, E.BAD_SIGNATURE, E.TAMPER, E.REPLAY, E.COUNTER_REUSED)

    def boot():
        return _log(f, capacity=16, window_s=60, burst=2, window_cap=8)

    log = boot()
    t = T0
    for _ in range(400 if MICRO else 4000):
        f.clear_log()  # the campaign needs no history: keep a small heap unfragmented
        r = rng.random_bytes(4)
        if r[0] < 26:
            f.arm_cut(1 + r[1] % 4, r[2] % 140)
        t += r[3] % 40
        try:
            if r[1] < 150:
                log.log(t, kinds[r[2] % len(kinds)])
            elif r[1] < 180:
                log.tick(t)
            elif r[1] < 210 or log.pending_count > 12:
                _do(log, ("ack",), model)
            elif r[1] < 230:
                log.flush()
            else:
                log = boot()  # a reboot without a cut: RAM lost
                _check(log, model)
        except PowerCut:
            f.reboot()
            log = boot()
            _check(log, model)
            continue
        # Everything now visible was handed out, aggregates logged inside log() included.
        for e in log.events(model.last):
            model.last = e[0]
            model.stored.append(e[0])
            if E.is_alarm(e[3]):
                model.alarms.append(e[0])
        model.stored = model.stored[-16:]
        model.alarms = [s for s in model.alarms if s > model.acked or s in model.stored]
    assert f.cuts > (20 if MICRO else 200), f.cuts


def test_ack_right_after_a_boot_keeps_the_sequence_safe():
    """A boot skips seqs; a page written by ack() before any new event must not end that."""
    m = MemoryStorage()
    log = _log(m)
    log.log(T0, E.CRC)  # written through: the first event of the boot
    a = log.log(T0 + 1, E.BAD_SIGNATURE)  # in ev.al; its page slot only in RAM
    log = _log(m)  # reboot: the alarm goes back into the page, seqs skip ahead
    first = log.next_seq
    assert first > a + 1
    assert log.ack(a) == 1  # writes the page (without a new seq), then ev.al
    seqs = [log.log(T0 + 10 + i, E.CRC) for i in range(3)]
    assert seqs == [first, first + 1, first + 2]
    assert _log(m).next_seq > seqs[-1]
