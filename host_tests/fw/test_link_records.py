"""Sealed A/B records: torn writes at every byte, tampering, wrong keys and spliced slots."""

from ami.crypto import aes_ccm_decrypt
from ami.link.records import (
    MAX_RECORD_NAME,
    OVERHEAD,
    RecordCorrupt,
    RecordStore,
    derive_storage_key,
)
from ami.ports.entropy import DeterministicEntropy
from ami.ports.flashsim import FlashSim, PowerCut
from ami.ports.storage import MemoryStorage
from fwtest import raises, unhex

KEY = derive_storage_key(bytes(range(32)))
# Distinct payloads of varying length, so a torn slot mixes different old and new lengths.
SEQUENCE = (b"", b"one", b"a longer payload: two", b"3", b"four" * 10, b"five")


def _store(storage, key=KEY, seed=b"rec"):
    return RecordStore(storage, key, DeterministicEntropy(seed))


def _flip(blob, i):
    b = bytearray(blob)
    b[i] ^= 0x01
    return bytes(b)


def test_storage_key_derivation():
    # HKDF-SHA-256(IKM = 00..1f, no salt, info "AMI storage key", 16), from CPython's hmac.
    assert KEY == unhex("b58cd8398c2ca71b8dcdbc48fafdfc45")
    assert derive_storage_key(bytearray(range(32))) == KEY
    assert derive_storage_key(b"other") != KEY
    raises(ValueError, derive_storage_key, b"")
    raises(ValueError, derive_storage_key, "secret")


def test_round_trip_generations_and_alternating_slots():
    m = MemoryStorage()
    r = _store(m)
    assert r.read("ctr") is None and r.generation("ctr") == 0
    for i in range(len(SEQUENCE)):
        assert r.write("ctr", SEQUENCE[i]) == i + 1
        assert r.read("ctr") == SEQUENCE[i] and r.generation("ctr") == i + 1
        slot = "ctr.a" if i % 2 == 0 else "ctr.b"
        blob = m.read(slot)
        assert len(blob) == OVERHEAD + len(SEQUENCE[i])
        assert blob[:3] == b"AR\x01" and blob[3:7] == (i + 1).to_bytes(4, "big")
    assert m.names() == ["ctr.a", "ctr.b"]
    assert m.writes() == len(SEQUENCE)  # one storage write per record write


def test_slot_layout_matches_the_spec():
    m = MemoryStorage()
    _store(m).write("rec", b"payload")
    blob = m.read("rec.a")
    aad = b"rec" + b"AR\x01" + b"\x00\x00\x00\x01"
    assert aes_ccm_decrypt(KEY, blob[7:20], blob[20:], aad, 16) == b"payload"


def test_same_payload_sealed_under_fresh_nonces():
    m = MemoryStorage()
    r = _store(m)
    r.write("x", b"same")
    r.write("x", b"same")
    assert m.read("x.a")[7:20] != m.read("x.b")[7:20]


def test_names_and_arguments_checked():
    r = _store(MemoryStorage())
    r.write("a" * MAX_RECORD_NAME, b"1")
    raises(ValueError, r.write, "a" * (MAX_RECORD_NAME + 1), b"1")
    raises(ValueError, r.read, "Bad")
    raises(ValueError, r.read, "")
    raises(TypeError, r.read, None)
    raises(TypeError, r.write, "x", "text")
    raises(ValueError, RecordStore, MemoryStorage(), bytes(15), DeterministicEntropy(b""))
    raises(ValueError, RecordStore, MemoryStorage(), "k" * 16, DeterministicEntropy(b""))


def _torn_case(base, i, k, erase_first):
    """Write SEQUENCE[i] over base with a cut at byte k; returns (flash, complete slot blob)."""
    dry = FlashSim(base)
    _store(dry, seed=b"case").write("rec", SEQUENCE[i])
    slot, size = dry.write_log[-1]
    f = FlashSim(base, erase_first=erase_first)
    f.arm_cut(1, k)
    raises(PowerCut, _store(f, seed=b"case").write, "rec", SEQUENCE[i])
    f.reboot()
    return f, dry.read(slot), slot, size


def test_torn_write_at_every_byte_of_every_write():
    for erase_first in (False, True):
        base = {}
        for i in range(len(SEQUENCE)):
            size = OVERHEAD + len(SEQUENCE[i])
            for k in range(size + 1):
                f, complete, slot, size = _torn_case(base, i, k, erase_first)
                r = _store(f, seed=b"after")
                if f.read(slot) == complete:  # the whole slot made it (k == size, or by chance)
                    assert r.read("rec") == SEQUENCE[i], (i, k)
                elif i == 0:
                    # The very first write torn: a slot exists but was never valid.
                    raises(RecordCorrupt, r.read, "rec")
                else:
                    assert r.read("rec") == SEQUENCE[i - 1], (erase_first, i, k)
                assert k < size or r.read("rec") == SEQUENCE[i]
                # The device carries on: the next write lands and reads back.
                r.write("rec", b"retry")
                assert r.read("rec") == b"retry"
            m = MemoryStorage(base)
            _store(m, seed=b"seq%d" % i).write("rec", SEQUENCE[i])
            base = m.snapshot()


def test_repeated_cuts_on_the_same_write_keep_the_previous_value():
    f = FlashSim()
    r = _store(f)
    r.write("rec", b"v1")
    r.write("rec", b"v2")
    for k in (0, 5, 19, 20, 30, 37):  # the slot is 38 bytes: never reached
        f.arm_cut(1, k)
        raises(PowerCut, _store(f, seed=b"%d" % k).write, "rec", b"v3")
        f.reboot()
        assert _store(f).read("rec") == b"v2"


def test_every_byte_of_a_lone_slot_is_authenticated():
    m = MemoryStorage()
    _store(m).write("rec", b"secret state")
    blob = m.read("rec.a")
    for i in range(len(blob)):
        t = MemoryStorage({"rec.a": _flip(blob, i)})
        raises(RecordCorrupt, _store(t).read, "rec")
    for bad in (blob[:-1], blob + b"\x00", blob[: OVERHEAD - 1], b"", b"\xff" * len(blob)):
        t = MemoryStorage({"rec.a": bad})
        exc = raises(RecordCorrupt, _store(t).read, "rec")
        assert exc.reason == "record_corrupt" and exc.name == "rec"


def test_tampered_newest_slot_falls_back_to_the_previous_never_garbage():
    m = MemoryStorage()
    r = _store(m)
    r.write("rec", b"old")
    r.write("rec", b"new")
    newest = m.read("rec.b")
    for i in range(len(newest)):
        t = MemoryStorage({"rec.a": m.read("rec.a"), "rec.b": _flip(newest, i)})
        assert _store(t).read("rec") == b"old"
    older = m.read("rec.a")
    for i in range(len(older)):
        t = MemoryStorage({"rec.a": _flip(older, i), "rec.b": newest})
        assert _store(t).read("rec") == b"new"


def test_both_slots_bad_is_corrupt_and_a_write_recovers():
    m = MemoryStorage()
    r = _store(m)
    r.write("rec", b"1")
    r.write("rec", b"2")
    m.write("rec.a", _flip(m.read("rec.a"), 25))
    m.write("rec.b", _flip(m.read("rec.b"), 3))
    raises(RecordCorrupt, r.read, "rec")
    raises(RecordCorrupt, r.generation, "rec")
    # Only the caller can decide to start over (e.g. after a rejoin); the store lets it.
    assert r.write("rec", b"fresh") == 1
    assert r.read("rec") == b"fresh"


def test_reads_cache_nothing():
    m = MemoryStorage()
    r = _store(m)
    r.write("rec", b"1")
    r.write("rec", b"2")
    assert r.read("rec") == b"2"
    m.write("rec.b", b"torn")
    assert r.read("rec") == b"1"
    m.delete("rec.a")
    raises(RecordCorrupt, r.read, "rec")
    m.delete("rec.b")
    assert r.read("rec") is None


def test_wrong_storage_key_is_corrupt():
    m = MemoryStorage()
    _store(m).write("rec", b"1")
    _store(m).write("rec", b"2")
    raises(RecordCorrupt, _store(m, key=derive_storage_key(b"another device")).read, "rec")


def test_slots_spliced_between_names_are_rejected():
    m = MemoryStorage()
    r = _store(m)
    for name in ("x", "y"):
        r.write(name, name.encode() + b"1")
        r.write(name, name.encode() + b"2")
    snap = m.snapshot()
    swapped = MemoryStorage(
        {"x.a": snap["y.a"], "x.b": snap["y.b"], "y.a": snap["x.a"], "y.b": snap["x.b"]}
    )
    raises(RecordCorrupt, _store(swapped).read, "x")
    raises(RecordCorrupt, _store(swapped).read, "y")
    # One foreign slot is ignored: the record's own other slot is read.
    one = MemoryStorage(snap)
    one.write("x.b", snap["y.b"])
    assert _store(one).read("x") == b"x1"


def test_slot_order_and_generation_field():
    m = MemoryStorage()
    r = _store(m)
    r.write("rec", b"1")
    r.write("rec", b"2")
    snap = m.snapshot()
    # Which slot holds what does not matter: the generation decides.
    crossed = MemoryStorage({"rec.a": snap["rec.b"], "rec.b": snap["rec.a"]})
    assert _store(crossed).read("rec") == b"2"
    # Raising an older copy's generation breaks its tag: it cannot overtake.
    older = bytearray(snap["rec.a"])
    older[6] = 9
    bumped = MemoryStorage({"rec.a": bytes(older), "rec.b": snap["rec.b"]})
    assert _store(bumped).read("rec") == b"2"


def test_an_old_copy_put_back_never_beats_the_newer_slot():
    m = MemoryStorage()
    r = _store(m)
    r.write("rec", b"v1")
    v1 = m.read("rec.a")
    r.write("rec", b"v2")
    r.write("rec", b"v3")
    m.write("rec.a", v1)  # v3's slot replaced by the genuine v1 copy
    assert r.read("rec") == b"v2"  # what a torn v3 write would give, never v1


def test_two_copies_of_one_generation_must_agree():
    m = MemoryStorage()
    _store(m).write("rec", b"mine")
    other = MemoryStorage()
    _store(other, seed=b"other").write("rec", b"theirs")
    m.write("rec.b", other.read("rec.a"))  # same key, same name, same generation
    raises(RecordCorrupt, _store(m).read, "rec")
    m.write("rec.b", m.read("rec.a"))  # an identical copy is harmless
    assert _store(m).read("rec") == b"mine"
