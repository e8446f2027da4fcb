"""Sealed A/B records: torn writes at every byte, tampering, wrong keys and spliced slots;
anchored records (rollback) and erasure (wipe) with power cuts."""

import struct
import sys

from ami.crypto import AuthError, aes_ccm_decrypt
from ami.keyschedule import derive_storage_key
from ami.ports.anchor import MemoryAnchor, StorageAnchor
from ami.ports.entropy import DeterministicEntropy
from ami.ports.flashsim import FlashSim, PowerCut
from ami.ports.storage import MemoryStorage
from ami.store.records import MAX_RECORD_NAME, OVERHEAD, RecordCorrupt, RecordRollback, RecordStore
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


# --- anchored records: rollback ----------------------------------------------------------------

MICRO = sys.implementation.name == "micropython"
# A distinctive key, so its bytes are easy to look for in the storage.
SECRET = b"\xa5\x5a\xc3\x3c\x96\x69\x0f\xf0\x11\xee\x22\xdd\x33\xcc\x44\xbb"


def _anchored(storage, anchor, seed=b"anc"):
    """A store whose record "key" is anchored ("free" is not)."""
    return RecordStore(storage, KEY, DeterministicEntropy(seed), anchor, ("key",))


def test_anchor_refuses_an_old_genuine_copy_put_back():
    m = MemoryStorage()
    a = MemoryAnchor()
    r = _anchored(m, a)
    r.write("key", b"v1")
    r.write("key", b"v2")
    old = m.snapshot()  # an attacker's copy of the flash
    r.write("key", b"v3")
    r.write("key", b"v4")
    assert a.get("key") == 4
    m.write("key.a", old["key.a"])
    m.write("key.b", old["key.b"])
    for store in (r, _anchored(m, a, seed=b"reboot")):
        exc = raises(RecordRollback, store.read, "key")
        assert exc.reason == "record_rollback" and exc.name == "key"
        assert isinstance(exc, RecordCorrupt)  # who fails closed on corruption does here too
        raises(RecordRollback, store.generation, "key")
    # Without the anchor the same slots read as a valid older state: the anchor decides.
    assert _store(m).read("key") == b"v2"
    assert _anchored(m, MemoryAnchor()).read("key") == b"v2"
    # The device may start over: a write lands above the anchor and reads back.
    assert r.write("key", b"v5") == 5
    assert r.read("key") == b"v5" and a.get("key") == 5


def test_anchor_refuses_one_slot_rolled_back_by_a_generation():
    m = MemoryStorage()
    a = MemoryAnchor()
    r = _anchored(m, a)
    for v in (b"v1", b"v2", b"v3"):
        r.write("key", v)
    older = m.read("key.b")  # generation 2
    r.write("key", b"v4")  # generation 4 goes to key.b
    m.write("key.b", older)  # what is left is a genuine generation 3 and a genuine 2
    raises(RecordRollback, r.read, "key")
    # Putting back a copy next to the newest one changes nothing (as a torn write would).
    m2 = MemoryStorage()
    r2 = _anchored(m2, MemoryAnchor())
    for v in (b"v1", b"v2", b"v3"):
        r2.write("key", v)
    m2.write("key.b", m.read("key.a"))  # same key, same name: a genuine generation 3 copy
    assert r2.read("key") == b"v3"


def test_deleting_an_anchored_record_is_a_rollback():
    m = MemoryStorage()
    a = MemoryAnchor()
    r = _anchored(m, a)
    r.write("key", b"v1")
    r.write("free", b"f1")
    for name in ("key.a", "free.a"):
        m.delete(name)
    raises(RecordRollback, r.read, "key")  # the anchor says generation 1 was written
    raises(RecordRollback, r.generation, "key")
    assert r.read("free") is None and r.generation("free") == 0  # unanchored: just absent
    r.write("key", b"v2")
    r.write("key", b"v3")
    m.delete("key.a")
    m.delete("key.b")
    raises(RecordRollback, _anchored(m, a).read, "key")
    # The next write continues the generations: nothing below the anchor is ever reissued.
    assert r.write("key", b"again") == 4 and r.read("key") == b"again"


def test_both_slots_corrupt_is_corrupt_not_rollback():
    m = MemoryStorage()
    a = MemoryAnchor()
    r = _anchored(m, a)
    r.write("key", b"v1")
    r.write("key", b"v2")
    m.write("key.a", _flip(m.read("key.a"), 30))
    m.write("key.b", _flip(m.read("key.b"), 30))
    exc = raises(RecordCorrupt, r.read, "key")
    assert exc.reason == "record_corrupt"
    assert r.write("key", b"v3") == 3 and r.read("key") == b"v3"


def test_cut_between_slot_write_and_anchor_advance_is_not_a_rollback():
    for erase_first in (False, True):
        payload = b"v3 payload"
        size = OVERHEAD + len(payload)
        # Every byte (sampled on MicroPython), and always the last: the slot complete.
        for k in list(range(0, size, 3 if MICRO else 1)) + [size]:
            f = FlashSim(erase_first=erase_first)
            a = MemoryAnchor()
            r = _anchored(f, a)
            r.write("key", b"v1")
            r.write("key", b"v2")
            f.arm_cut(1, k)
            raises(PowerCut, r.write, "key", payload)
            f.reboot()
            assert a.get("key") == 2  # the anchor never advanced
            s = _anchored(f, a, seed=b"after")
            got = s.read("key")
            if k == size:  # the slot is complete: one generation above its anchor
                assert got == payload and s.generation("key") == 3, k
            else:
                assert got == b"v2" and s.generation("key") == 2, k
            # The next write catches the anchor up.
            gen = s.write("key", b"v4")
            assert a.get("key") == gen and s.read("key") == b"v4"


def test_torn_first_write_of_an_anchored_record_reads_as_never_written():
    """No write of it ever completed (its anchor is zero): nothing can have been acted on,
    so a lone torn slot is no record, at every byte; the next write starts it cleanly."""
    payload = b"first payload"
    size = OVERHEAD + len(payload)
    for erase_first in (False, True):
        for k in list(range(0, size, 3 if MICRO else 1)) + [size]:
            f = FlashSim(erase_first=erase_first)
            a = MemoryAnchor()
            f.arm_cut(1, k)
            raises(PowerCut, _anchored(f, a).write, "key", payload)
            f.reboot()
            s = _anchored(f, a, seed=b"after")
            if k == size:  # complete, the anchor not advanced: one generation above it
                assert s.read("key") == payload and s.generation("key") == 1, k
                continue
            assert f.read("key.a") is not None and s.read("key") is None, k
            assert s.generation("key") == 0
            assert s.write("key", b"again") == 1 and s.read("key") == b"again"
            assert a.get("key") == 1


def test_a_lone_bad_slot_is_corrupt_unless_the_anchor_proves_a_torn_first_write():
    m = MemoryStorage()
    a = MemoryAnchor()
    r = _anchored(m, a)
    r.write("key", b"v1")  # completed: its anchor is 1
    m.write("key.a", _flip(m.read("key.a"), 30))
    assert raises(RecordCorrupt, r.read, "key").reason == "record_corrupt"
    # Unanchored (or no anchor port): nothing tells a torn first write from the only copy
    # damaged, so it stays corrupt.
    r.write("free", b"f1")
    m.write("free.a", _flip(m.read("free.a"), 30))
    assert raises(RecordCorrupt, r.read, "free").reason == "record_corrupt"
    bare = RecordStore(m, KEY, DeterministicEntropy(b"x"), None, ("key",))
    raises(RecordCorrupt, bare.read, "key")


def test_unanchored_records_are_unaffected():
    m = MemoryStorage()
    a = MemoryAnchor()
    r = _anchored(m, a)
    r.write("free", b"f1")
    r.write("free", b"f2")
    old = m.snapshot()
    r.write("free", b"f3")
    r.write("free", b"f4")
    assert a.get("free") == 0 and a.advances == 0  # no anchor writes for it at all
    m.write("free.a", old["free.a"])
    m.write("free.b", old["free.b"])
    assert r.read("free") == b"f2"  # plain A/B semantics: the newest valid copy
    # Anchored names without an anchor port: nothing is anchored.
    bare = RecordStore(m, KEY, DeterministicEntropy(b"x"), None, ("free",))
    assert bare.read("free") == b"f2"


def test_memory_anchor_is_monotonic_and_checks_its_arguments():
    a = MemoryAnchor()
    assert a.get("x") == 0
    a.advance("x", 5)
    a.advance("x", 3)  # never lowered
    a.advance("x", 5)
    assert a.get("x") == 5 and a.advances == 1
    a.advance("x", 0xFFFFFFFF)
    assert a.get("x") == 0xFFFFFFFF
    for name, value in (("", 1), ("n" * 33, 1), (None, 1), ("x", -1), ("x", 1 << 32),
                        ("x", "1")):
        raises(ValueError, a.advance, name, value)


def test_storage_anchor_persists_and_rejects_a_malformed_blob():
    s = MemoryStorage()
    a = StorageAnchor(s)
    assert a.get("keystore") == 0 and s.read("anchors") is None
    a.advance("txctr", 1)
    a.advance("keystore", 3)
    a.advance("keystore", 2)  # lower: no write
    assert s.writes("anchors") == 2 and a.advances == 2
    blob = s.read("anchors")
    # Sorted by name: n x (name length | name | value (4, big-endian)).
    assert blob == b"\x08keystore\x00\x00\x00\x03\x05txctr\x00\x00\x00\x01"
    b = StorageAnchor(s)  # a reboot
    assert b.get("keystore") == 3 and b.get("txctr") == 1 and b.get("other") == 0
    b.advance("keystore", 4)
    assert StorageAnchor(s).get("keystore") == 4
    for bad in (b"\x00", b"\x00" + bytes(4), blob + b"\x00", blob[:-1], blob + b"\x05txc",
                b"\x01", b"\x02\xff\xfe" + bytes(4)):
        raises(ValueError, StorageAnchor, MemoryStorage({"anchors": bad}))
    assert StorageAnchor(MemoryStorage({"anchors": b""})).get("x") == 0


def test_storage_anchor_on_another_storage_defeats_a_restored_flash():
    flash = MemoryStorage()
    anchors = MemoryStorage()  # another partition the record storage cannot reach
    r = _anchored(flash, StorageAnchor(anchors))
    r.write("key", b"v1")
    r.write("key", b"v2")
    old = flash.snapshot()
    r.write("key", b"v3")
    for name in old:
        flash.write(name, old[name])
    raises(RecordRollback, _anchored(flash, StorageAnchor(anchors)).read, "key")
    # Imaging both (the whole device) is beyond it, as the port's note says.
    assert _anchored(flash, StorageAnchor(MemoryStorage())).read("key") == b"v2"


# --- erasure: wipe -----------------------------------------------------------------------------


def _slot_payloads(storage, name):
    """Each slot of a record decrypted with the storage key directly (None: absent); a slot
    that fails its tag raises AuthError."""
    out = []
    for suffix in (".a", ".b"):
        blob = storage.read(name + suffix)
        if blob is None:
            out.append(None)
            continue
        out.append(aes_ccm_decrypt(KEY, blob[7:20], blob[20:], name.encode() + blob[:7], 16))
    return out


def _chunks(blob, size=8):
    """The ciphertext of a slot in size-byte pieces (what a reader with the key could use)."""
    body = blob[20:-16]
    return [body[i : i + size] for i in range(0, len(body) - size + 1, size)]


def _leftovers(storage, needles):
    """Needles (plaintext or old ciphertext pieces) found anywhere in the storage."""
    snap = storage.snapshot()
    found = []
    for name in snap:
        for n in needles:
            if n in snap[name]:
                found.append((name, n))
    return found


def _secret_state(storage, store):
    """Two genuine copies holding secrets; returns the needles to look for afterwards."""
    store.write("key", b"old key " + SECRET)
    store.write("key", b"new key " + SECRET[8:] + SECRET[:8])
    needles = [SECRET, SECRET[8:] + SECRET[:8]]
    for suffix in (".a", ".b"):
        needles += _chunks(storage.read("key" + suffix))
    return needles


def test_wipe_overwrites_both_slots_and_is_idempotent():
    for anchor in (None, MemoryAnchor()):
        m = MemoryStorage()
        r = _anchored(m, anchor)
        needles = _secret_state(m, r)
        assert _leftovers(m, needles[2:])  # the ciphertext is there before
        r.wipe("key")
        assert m.writes("key.a") == 2 and m.writes("key.b") == 2  # one tombstone each
        assert _slot_payloads(m, "key") == [b"", b""]
        assert _leftovers(m, needles) == []
        assert r.read("key") == b"" and r.generation("key") == 4
        assert _anchored(m, anchor, seed=b"reboot").read("key") == b""
        total = m.writes()
        r.wipe("key")
        _anchored(m, anchor, seed=b"reboot").wipe("key")
        assert m.writes() == total  # already wiped: no write at all
        # The generations go on: a write after the erasure lands above the tombstones.
        assert r.write("key", b"reprovisioned") == 5


def test_wipe_of_absent_half_wiped_and_damaged_records():
    m = MemoryStorage()
    r = _anchored(m, MemoryAnchor())
    r.wipe("key")
    assert m.writes() == 0 and r.read("key") is None  # nothing to erase: nothing written
    r.write("key", SECRET)  # only key.a exists
    r.wipe("key")
    assert m.writes("key.a") == 2 and m.writes("key.b") == 1
    assert _slot_payloads(m, "key") == [b"", b""]
    # One slot already a tombstone: only the other is rewritten.
    r.write("key", SECRET)
    r.write("key", b"")
    before = m.writes()
    r.wipe("key")
    assert m.writes() == before + 1 and _slot_payloads(m, "key") == [b"", b""]
    # A damaged slot may still hold old ciphertext (readable once repaired): rewritten too.
    r.write("key", SECRET)
    r.write("key", b"")
    m.write("key.b", _flip(m.read("key.b"), 25))  # the newest tombstone damaged
    r.wipe("key")
    assert _slot_payloads(m, "key") == [b"", b""] and _leftovers(m, [SECRET]) == []
    # A foreign slot (another record's copy) is not a tombstone of this one.
    other = MemoryStorage()
    o = RecordStore(other, KEY, DeterministicEntropy(b"o"))
    o.write("zzz", b"")
    m.write("key.a", other.read("zzz.a"))
    r.wipe("key")
    assert _slot_payloads(m, "key") == [b"", b""]


def test_power_cut_at_every_byte_of_a_wipe():
    """A wipe torn anywhere: the record reads as the old payload or as erased (never as
    corrupt or rolled back), and repeating the wipe leaves no secret behind."""
    step = 4 if MICRO else 1
    cases = 0
    for erase_first in (False, True):
        for write_no in (1, 2):
            for k in list(range(0, OVERHEAD, step)) + [OVERHEAD]:  # a tombstone's size
                f = FlashSim(erase_first=erase_first)
                a = MemoryAnchor()
                r = _anchored(f, a)
                needles = _secret_state(f, r)
                newest = r.read("key")
                f.arm_cut(write_no, k)
                raises(PowerCut, r.wipe, "key")
                f.reboot()
                s = _anchored(f, a, seed=b"after")
                got = s.read("key")
                assert got == newest or got == b"", (erase_first, write_no, k)
                if write_no == 2 or k == OVERHEAD:
                    assert got == b""  # the first tombstone landed: erased from then on
                before = f.writes()
                s.wipe("key")
                assert f.writes() - before <= 2
                assert _slot_payloads(f, "key") == [b"", b""], (erase_first, write_no, k)
                assert _leftovers(f, needles) == [], (erase_first, write_no, k)
                assert s.read("key") == b""
                cases += 1
    assert cases >= 20


def test_tombstones_are_sealed_records_that_keep_the_generations():
    m = MemoryStorage()
    a = MemoryAnchor()
    r = _anchored(m, a)
    r.write("key", SECRET)
    copy = m.read("key.a")
    r.wipe("key")
    assert len(m.read("key.a")) == OVERHEAD and len(m.read("key.b")) == OVERHEAD
    assert struct.unpack(">I", m.read("key.a")[3:7])[0] == 3 and a.get("key") == 3
    m.write("key.a", _flip(m.read("key.a"), 21))
    raises(AuthError, _slot_payloads, m, "key")
    # The older tombstone is below the anchor: a damaged newest slot of an anchored record
    # cannot be told from a rollback (without the anchor it would read as erased).
    raises(RecordRollback, r.read, "key")
    assert _store(m).read("key") == b""
    # Putting the erased contents back is a rollback, not a restore.
    m.write("key.a", copy)
    m.delete("key.b")
    raises(RecordRollback, r.read, "key")
