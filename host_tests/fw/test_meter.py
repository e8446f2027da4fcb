"""The meter state machine, on both runtimes: sessions, rejections, persistence, power cuts."""

from ami.link import frame, messages
from ami.meter import ACTIVE, IDLE, UNPROVISIONED, Config, Meter
from ami.ports.entropy import DeterministicEntropy
from ami.ports.flashsim import FlashSim, PowerCut
from ami.ports.metrology import SimMetrology
from ami.ports.storage import MemoryStorage
from fwmeter import GEN, K_UP, MICRO, T0, down, meter, provision, uplinks


def test_unprovisioned_meter_refuses_everything():
    m = meter(MemoryStorage())
    assert m.state == UNPROVISIONED
    assert m.start(T0) == []
    assert m.receive(down(1, messages.encode_get(1, 1)), T0) == ("unprovisioned", [])
    assert m.stats["unprovisioned"] >= 2


def test_keystore_needs_the_device_secret():
    storage = provision(MemoryStorage())
    m = Meter(storage, b"\x00" * 32, DeterministicEntropy(b"x"), SimMetrology(b"m"))
    assert m.state == UNPROVISIONED
    assert m.stats.get("keystore_corrupt") == 1


def test_resumed_session_reports_and_answers_commands():
    m = meter(provision(MemoryStorage()))
    assert m.state == ACTIVE
    sent = uplinks(m.start(T0))
    assert messages.decode(sent[0][2])[0] == messages.STATUS
    out = m.tick(T0 + 900000)
    (gen, fcnt, plain), = uplinks(out)
    mtype, (readings,) = messages.decode(plain)
    assert mtype == messages.READINGS and gen == GEN and readings[0][0] == 0
    reason, out = m.receive(down(1, messages.encode_get(9, messages.REG_INTERVAL)), T0 + 900001)
    assert reason is None
    mtype, fields = messages.decode(uplinks(out)[0][2])
    assert mtype == messages.RESPONSE and fields == (9, messages.ST_OK, 2, 900)
    reason, out = m.receive(down(2, messages.encode_set(10, messages.REG_INTERVAL, 30)), T0 + 1)
    assert messages.decode(uplinks(out)[0][2])[1][1] == messages.ST_BAD_VALUE
    reason, out = m.receive(down(3, messages.encode_ack([0])), T0 + 2)
    assert reason is None and len(m.queue) == 0


def test_rejections_are_typed_and_change_nothing():
    m = meter(provision(MemoryStorage()))
    m.start(T0)
    good = down(1, messages.encode_ack([0]))
    bad_crc = good[:-1] + bytes((good[-1] ^ 1,))
    assert m.receive(bad_crc, T0)[0] == "crc"
    assert m.receive(down(1, messages.encode_ack([0]), dst=b"\x02AMI\x00\x00\x00\x09"), T0)[0] == (
        "not_for_me"
    )
    assert m.receive(down(1, messages.encode_ack([0]), key=b"\x09" * 16), T0)[0] == "auth"
    assert m.receive(down(1, messages.encode_ack([0]), gen=GEN + 1), T0)[0] == "key_generation"
    assert m.receive(good, T0)[0] is None
    assert m.receive(good, T0)[0] == "replay"
    assert m.stats["crc"] == 1 and m.stats["auth"] == 1 and m.stats["replay"] == 1


def test_reboot_keeps_queue_and_moves_receive_floor():
    storage = provision(MemoryStorage())
    m = meter(storage)
    m.start(T0)
    for i in range(3):
        m.tick(T0 + 900000 * (i + 1))
    for fcnt in range(1, 6):
        assert m.receive(down(fcnt, messages.encode_get(fcnt, 1)), T0)[0] is None
    m2 = meter(storage, boot=1)
    assert [r[0] for r in m2.queue.pending()] == [0, 1, 2] and m2.next_seq == 3
    status = messages.decode(uplinks(m2.start(T0 + 4000000))[0][2])
    floor = status[1][1]
    assert floor >= 5
    # A downlink the first boot accepted is refused now, however the window was lost.
    assert m2.receive(down(5, messages.encode_get(1, 1)), T0)[0] == "replay"
    assert m2.receive(down(floor + 1, messages.encode_get(1, 1)), T0)[0] is None


def test_counter_exhaustion_forces_rejoin():
    m = meter(provision(MemoryStorage()), config=Config(reserve=2, counter_cap=3))
    m.start(T0)
    m.tick(T0 + 900000)
    m.tick(T0 + 1800000)
    assert m.tick(T0 + 2700000) == []  # the cap is reached: nothing is sent under these keys
    assert m.state == IDLE and m.stats["counter_exhausted"] == 1
    assert m.next_wakeup() is not None  # a join is scheduled


def test_power_cut_at_every_write_never_reuses_a_counter():
    """Cut power at every write and (sampled on MicroPython) every byte of it, while the meter
    produces readings; after each cut it reboots. No (key generation, counter) pair is ever
    sent twice, and no reading taken before a completed write is lost."""
    step = 5 if MICRO else 1
    flash = provision(FlashSim())
    sent = bytearray(4096)  # counters below 32768
    taken = bytearray(2 * 4096)  # seq -> 1 + reading index, for seqs below 4096
    boot = 0
    t = T0
    cut_points = 0
    for write_no in range(1, 7):
        for at_byte in range(0, 120, step):
            flash.reboot()
            flash.clear_log()  # the campaign does not need the history: keep the heap small
            m = meter(flash, boot, Config(reserve=8, max_queue=16))
            boot += 1
            flash.arm_cut(after_writes=write_no, at_byte=at_byte)
            cut_points += 1
            try:
                record(sent, m.start(t), taken)
                for _ in range(4):
                    t += 900000
                    record(sent, m.tick(t), taken)  # frames of a call that returned went on air
            except PowerCut:
                pass
    flash.reboot()
    final = meter(flash, boot)
    assert final.state == ACTIVE and cut_points > 20
    seqs = [r[0] for r in final.queue.pending()]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def record(sent, frames, taken=None):
    """Mark the counters of frames that went on air in a bitmap; each may be seen once.
    With `taken`, also the reading each seq on air named: a seq may name one reading only.
    (Preallocated arrays, not growing sets: the test must fit a board-sized heap.)"""
    for data in frames:
        fr = frame.decode(data)
        if fr.key_gen != GEN:
            raise AssertionError("unexpected key generation %d" % fr.key_gen)
        byte, bit = fr.fcnt >> 3, 1 << (fr.fcnt & 7)
        if sent[byte] & bit:
            raise AssertionError("counter %d reused after a power cut" % fr.fcnt)
        sent[byte] |= bit
        if taken is None:
            continue
        mtype, fields = messages.decode(frame.open_frame(K_UP, fr))
        if mtype != messages.READINGS:
            continue
        for seq, t, _wh in fields[0]:
            mark = 1 + (t - T0 // 1000) // 900
            if seq >= len(taken) // 2 or not 0 < mark < 65536:
                raise AssertionError("reading %d at %d out of the test's range" % (seq, t))
            old = taken[2 * seq] << 8 | taken[2 * seq + 1]
            if old and old != mark:
                raise AssertionError("reading seq %d reused after a power cut" % seq)
            taken[2 * seq] = mark >> 8
            taken[2 * seq + 1] = mark & 0xFF


def test_storage_without_counters_refuses_the_session():
    storage = provision(MemoryStorage())
    storage.delete("txctr.a")
    m = meter(storage)
    assert m.state == IDLE and m.stats.get("record_corrupt") == 1
