"""The meter's key lifecycle on both runtimes: tamper and DECOMMISSION zeroize every secret but
keep the event log, a compromise REJOIN erases the session and group keys, and a power cut at
any write of a zeroization never leaves a usable key store next to erased state.

Helpers and the provisioned identity come from fwmeter; every meter here has an anchor.
"""

import gc

from ami import crypto
from ami.commands import envelope as E
from ami.crypto import aes_ccm_decrypt
from ami.events import CRITICAL, ZEROIZED
from ami.keyschedule import derive_storage_key, group_kek
from ami.keystore import image
from ami.link import messages
from ami.link.groups import Groups
from ami.meter import ACTIVE, ANCHORED, IDLE, UNPROVISIONED, Config, Meter
from ami.ports.anchor import MemoryAnchor
from ami.ports.entropy import DeterministicEntropy
from ami.ports.flashsim import FlashSim, PowerCut
from ami.ports.metrology import SimMetrology
from ami.ports.storage import MemoryStorage
from ami.store.records import RecordStore
from fwtest import raises
from meterpair import EUI, GEN, HE, K_DOWN, K_UP, MICRO, SECRET, T0, down, uplinks

STORAGE_KEY = derive_storage_key(SECRET)
ROOT = b"\x44" * 16
DEVICE_KEY = b"\x55" * 32
SIGNER = crypto.sha256(b"lifecycle signer")
SIGNER_PUB = crypto.p256_public_key(SIGNER)
KEY_ID = 2
GID = b"GRP\x00\x00\x00\x00\x05"
GROUP_KEY = b"\x6b\xb6" * 8
PENDING_KEYS = b"\x7c\xc7" * 16  # delivered session keys waiting for their confirmation
NOW = T0 // 1000
SECRETS = ("keystore", "session", "rekey", "groups")


def _records(storage, anchor):
    return RecordStore(storage, STORAGE_KEY, DeterministicEntropy(b"setup"), anchor, ANCHORED)


def _provision(storage, anchor):
    """A key store with a command signer, an active session, a group key and a pending
    rekey: every kind of secret a meter keeps."""
    r = _records(storage, anchor)
    r.write("keystore", image(
        EUI, bytes(116), crypto.p256_public_key(b"\x66" * 32), HE,
        crypto.p256_public_key(b"\x77" * 32), ROOT, DEVICE_KEY, ((KEY_ID, SIGNER_PUB),),
    ))
    r.write("session", GEN.to_bytes(4, "big") + K_UP + K_DOWN)
    r.write("txctr", (0).to_bytes(4, "big"))
    r.write("rxfloor", b"")
    assert Groups(r).install(K_DOWN, GID, 1, crypto.aes_key_wrap(group_kek(K_DOWN), GROUP_KEY)) \
        is None
    r.write("rekey", (GEN + 1).to_bytes(4, "big") + PENDING_KEYS + (NOW + 3600).to_bytes(4, "big"))
    return storage


def _meter(storage, anchor, boot=0):
    return Meter(storage, SECRET, DeterministicEntropy(b"life%d" % boot), SimMetrology(b"m"),
                 Config(reserve=8), anchor=anchor)


def _slots(storage, name):
    """Each slot of a record opened with the storage key directly (None: absent)."""
    out = []
    for suffix in (".a", ".b"):
        blob = storage.read(name + suffix)
        if blob is None:
            out.append(None)
        else:
            out.append(aes_ccm_decrypt(STORAGE_KEY, blob[7:20], blob[20:],
                                       name.encode() + blob[:7], 16))
    return out


def _needles(storage):
    """8-byte pieces of the secret records' ciphertext as they are now (readable by whoever
    has the storage key, so they must be gone after an erasure)."""
    out = []
    for name in SECRETS:
        for suffix in (".a", ".b"):
            blob = storage.read(name + suffix)
            if blob is not None:
                body = blob[20:-16]
                out += [body[i : i + 8] for i in range(0, len(body) - 7, 8)]
    return out


def _leftover(storage, needles):
    snap = storage.snapshot()
    for name in snap:
        for n in needles:
            if n in snap[name]:
                return name
    return None


def _assert_erased(storage, needles):
    """Every slot of the secret records a tombstone (or absent), no old ciphertext, no key."""
    for name in SECRETS:
        slots = _slots(storage, name)
        assert b"" in slots and slots.count(b"") + slots.count(None) == 2, (name, slots)
    assert _leftover(storage, needles) is None
    for value in (K_UP, K_DOWN, ROOT, DEVICE_KEY, GROUP_KEY, PENDING_KEYS):
        assert _leftover(storage, [value]) is None


def _zeroized_events(m):
    return [e for e in m.events.events() if e[2] == ZEROIZED]


def _command(counter, command, params=()):
    body = E.encode(command, E.TARGET_DEVICE, EUI, counter, NOW - 60, NOW + 3600, KEY_ID, params)
    return messages.encode_command(E.sign(body, SIGNER))


# Signed at import, and one verified: ECDSA's precomputed table of G is then made before any
# meter fragments a board-sized heap (the firmware keeps it once made).
DECOMMISSION = _command(1, E.DECOMMISSION)
COMPROMISE = _command(1, E.REJOIN, (E.REJOIN_COMPROMISE,))
assert crypto.ecdsa_verify(SIGNER_PUB, b"warm", crypto.ecdsa_sign(SIGNER, b"warm"))


def test_tamper_zeroizes_and_the_log_survives_the_reboot():
    anchor = MemoryAnchor()
    storage = _provision(MemoryStorage(), anchor)
    m = _meter(storage, anchor)
    assert m.state == ACTIVE and m.groups.ids() == [GID] and m._pending is not None
    m.start(T0)
    needles = _needles(storage)
    m.tamper(T0 + 5000)
    assert m.state == UNPROVISIONED and m.keys is None and m.stats["zeroized"] == 1
    assert m.next_wakeup() is None and m.tick(T0 + 10**7) == []
    assert m.receive(down(1, messages.encode_get(1, 1)), T0 + 6000) == ("unprovisioned", [])
    _assert_erased(storage, needles)
    (ev,) = _zeroized_events(m)
    assert ev[1] == NOW + 5 and ev[3] == CRITICAL
    assert ev[4] >> 14 == 2 and ev[4] & 0x3FFF == 1  # the tamper input; key store generation
    # After a reboot: still erased, still refusing, and the event is still in the log (and
    # pending: it goes upstream once the meter is provisioned again).
    writes = storage.writes()
    r = _meter(storage, anchor, boot=1)
    assert storage.writes() == writes  # nothing left to erase
    assert r.state == UNPROVISIONED and r.stats.get("zeroized") == 1
    assert r.start(T0 + 60000) == []
    assert r.receive(down(2, messages.encode_get(1, 1)), T0 + 61000) == ("unprovisioned", [])
    assert [e[:5] for e in _zeroized_events(r)] == [ev[:5]]
    assert r.event_counts().get("zeroized") == 1
    assert ev[0] in [e[0] for e in r.events.pending_alarms()]
    # The tamper input firing again on an erased meter is logged, nothing else.
    r.tamper(T0 + 70000)
    assert len(_zeroized_events(r)) == 2 and r.state == UNPROVISIONED
    # Provisioned again (a newer key store generation): the alarms still pending name the
    # erased generation, so this boot keeps the new key store.
    _records(storage, anchor).write("keystore", image(
        EUI, bytes(116), crypto.p256_public_key(b"\x66" * 32), HE,
        crypto.p256_public_key(b"\x77" * 32), ROOT, DEVICE_KEY, ((KEY_ID, SIGNER_PUB),),
    ))
    p = _meter(storage, anchor, boot=2)
    assert p.keys is not None and p.state == IDLE and len(_zeroized_events(p)) == 2
    assert [d >> 14 for d in p.events.pending_details(ZEROIZED)] == [2, 2]


def test_decommission_answers_under_the_old_keys_then_zeroizes():
    anchor = MemoryAnchor()
    storage = _provision(MemoryStorage(), anchor)
    m = _meter(storage, anchor)
    m.start(T0)
    needles = _needles(storage)
    reason, out = m.receive(down(1, DECOMMISSION), T0 + 1000)
    assert reason is None
    results = [p for _, _, p in uplinks(out) if p[0] == messages.COMMAND_RESULT]
    mtype, fields = messages.decode(results[0])
    assert mtype == messages.COMMAND_RESULT and fields[:3] == (1, E.DECOMMISSION, 0)
    assert m.state == UNPROVISIONED and m.keys is None
    _assert_erased(storage, needles)
    (ev,) = _zeroized_events(m)
    assert ev[4] >> 14 == 1  # the command
    r = _meter(storage, anchor, boot=1)
    assert r.state == UNPROVISIONED and len(_zeroized_events(r)) == 1


def test_compromise_rejoin_erases_session_group_and_pending_keys():
    anchor = MemoryAnchor()
    storage = _provision(MemoryStorage(), anchor)
    m = _meter(storage, anchor)
    m.start(T0)
    reason, out = m.receive(down(1, COMPROMISE), T0 + 1000)
    assert reason is None and len(out) >= 1  # the answer went under the old keys first
    assert m.state == IDLE and m.groups.ids() == [] and m.keys is not None
    assert m.next_wakeup() is not None  # a fresh join is scheduled
    # The session record keeps only the join nonce (monotonic), in both slots.
    nonce = GEN.to_bytes(4, "big")
    assert _slots(storage, "session") == [nonce, nonce]
    assert _slots(storage, "groups") == [b"", b""] and _slots(storage, "rekey") == [b"", b""]
    for value in (K_UP, K_DOWN, GROUP_KEY, PENDING_KEYS):
        for name in ("session", "groups", "rekey"):
            for slot in _slots(storage, name):
                assert value not in slot
    r = _meter(storage, anchor, boot=1)
    assert r.state == IDLE and r.keys is not None and r._pending is None
    assert r.receive(down(2, messages.encode_get(1, 1)), T0 + 2000)[0] == "unknown_key"


def test_a_boot_levels_key_records_a_cut_left_uneven():
    """A compromise rejoin or a wipe cut between its two writes leaves the old keys in the
    older slot: the next boot overwrites them; a boot with nothing uneven writes nothing."""
    anchor = MemoryAnchor()
    storage = _provision(MemoryStorage(), anchor)
    r = _records(storage, anchor)
    r.write("session", GEN.to_bytes(4, "big"))  # the first of the two writes, then the cut
    r.write("rekey", b"")
    r.write("groups", b"")
    assert K_UP + K_DOWN in _slots(storage, "session")[0]
    m = _meter(storage, anchor)
    assert m.state == IDLE and m.groups.ids() == [] and m._pending is None
    nonce = GEN.to_bytes(4, "big")
    assert _slots(storage, "session") == [nonce, nonce]
    assert _slots(storage, "rekey") == [b"", b""] and _slots(storage, "groups") == [b"", b""]
    assert _slots(storage, "keystore")[1] is None  # written once: nothing older to erase
    for value in (K_UP, K_DOWN, GROUP_KEY, PENDING_KEYS):
        assert _leftover(storage, [value]) is None
    writes = storage.writes()
    _meter(storage, anchor, boot=1)
    assert storage.writes() == writes


def _cut(write_no, at_byte):
    """Provision, boot, cut the tamper zeroization at (write_no, at_byte), power back on.
    Returns (flash, anchor, needles), or None if the zeroization has fewer writes."""
    gc.collect()  # one meter at a time: the campaign must fit a board-sized heap
    anchor = MemoryAnchor()
    flash = _provision(FlashSim(), anchor)
    m = _meter(flash, anchor)
    m.start(T0)
    needles = _needles(flash)
    flash.clear_log()
    flash.arm_cut(write_no, at_byte)
    try:
        m.tamper(T0 + 5000)
    except PowerCut:
        flash.reboot()
        return flash, anchor, needles
    return None


def _cut_case(write_no, at_byte):
    """As _cut, then the reboot: (flash, anchor, rebooted meter, needles) or None."""
    case = _cut(write_no, at_byte)
    if case is None:
        return None
    flash, anchor, needles = case
    return flash, anchor, _meter(flash, anchor, boot=1), needles


def test_power_cut_at_every_write_of_a_zeroization():
    """Either the meter boots fully provisioned (the key store tombstone never landed), or it
    boots zeroized and that boot finishes erasing the session, pending and group keys: never
    a usable key store next to erased state, never old keys left behind."""
    dry = FlashSim()
    anchor = MemoryAnchor()
    _provision(dry, anchor)
    m = _meter(dry, anchor)
    m.start(T0)
    dry.clear_log()
    m.tamper(T0 + 5000)
    log = list(dry.write_log)
    del dry, m, anchor
    assert [n for n, _ in log if n.startswith("keystore")] == ["keystore.a", "keystore.b"] or (
        [n for n, _ in log if n.startswith("keystore")] == ["keystore.b", "keystore.a"]
    )
    provisioned = zeroized = 0
    for write_no in range(1, len(log) + 1):
        size = log[write_no - 1][1]
        points = (0, size // 2, size) if MICRO else (0, 7, 20, size - 1, size)
        for at_byte in points:
            case = r = flash = None
            case = _cut_case(write_no, at_byte)
            assert case is not None, (write_no, at_byte)
            flash, anchor, r, needles = case
            where = (write_no, at_byte, log[write_no - 1][0])
            if r.state != UNPROVISIONED:
                # Cut before the log entry was complete: nothing logged, nothing erased.
                provisioned += 1
                assert write_no == 1 and at_byte < size, where
                assert r.keys is not None and r.state == ACTIVE, where
                assert r.groups.ids() == [GID] and r._pending is not None, where
                assert _records(flash, anchor).read("keystore"), where
                assert _zeroized_events(r) == [], where
                assert r.receive(down(1, messages.encode_get(1, 1)), T0 + 9000)[0] is None
                continue
            zeroized += 1
            assert r.stats.get("zeroized") == 1, (where, r.stats)  # not corrupt, not rollback
            assert len(_zeroized_events(r)) == 1, where  # logged before anything was erased
            _assert_erased(flash, needles)
            assert r.receive(down(1, messages.encode_get(1, 1)), T0 + 9000)[0] == "unprovisioned"
    assert provisioned and zeroized
    case = r = flash = None
    # The log entry is the commit point: torn, nothing happened; complete, the next boot
    # finishes the erasure.
    assert log[0][0].startswith("ev.al")
    assert _cut_case(1, log[0][1] - 1)[2].state == ACTIVE
    assert _cut_case(1, log[0][1])[2].state == UNPROVISIONED


def test_a_cut_during_the_boot_that_finishes_a_zeroization():
    """The erasure a boot resumes can itself be cut at any of its writes; every later boot
    is still zeroized and the one that completes leaves nothing behind. Resumed from a cut
    right after the log entry (the key store untouched: the pending alarm names its
    generation) and from one right after the first tombstone."""
    for resume, expected in ((2, 8), (3, 7)):
        r = flash = anchor = needles = None
        gc.collect()
        flash, anchor, needles = _cut(resume, 0)
        flash.clear_log()
        r = _meter(flash, anchor, boot=1)
        assert r.state == UNPROVISIONED and len(_zeroized_events(r)) == 1
        left = len(flash.write_log)
        # The key store slots left, then session, pending keys and groups (two each).
        assert left == expected, (resume, left)
        for write_no in range(1, left + 1):
            for at_byte in (0, 36) if MICRO else (0, 20, 36):
                r = flash = anchor = needles = None
                flash, anchor, needles = _cut(resume, 0)
                flash.clear_log()
                flash.arm_cut(write_no, at_byte)
                raises(PowerCut, _meter, flash, anchor, 1)
                flash.reboot()
                r = _meter(flash, anchor, boot=2)
                assert r.state == UNPROVISIONED and r.stats.get("zeroized") == 1
                assert _records(flash, anchor).read("keystore") == b""  # not rolled back
                assert len(_zeroized_events(r)) == 1
                _assert_erased(flash, needles)


def test_tamper_erases_a_meter_whose_key_store_was_rolled_back_or_is_corrupt():
    """A meter refusing to run on a bad key store still holds secrets (session, pending and
    group keys, and an old key store): the tamper input erases them too."""
    for fault in ("keystore_rollback", "keystore_corrupt"):
        anchor = MemoryAnchor()
        storage = _provision(MemoryStorage(), anchor)
        old = storage.snapshot()
        r = _records(storage, anchor)
        r.write("keystore", r.read("keystore"))  # any later key store write
        r.write("keystore", r.read("keystore"))
        for suffix in (".a", ".b"):  # the key store as provisioning left it, or damaged
            blob = old.get("keystore" + suffix)
            if blob is None:
                storage.delete("keystore" + suffix)
                continue
            if fault == "keystore_corrupt":
                blob = blob[:30] + bytes((blob[30] ^ 1,)) + blob[31:]
            storage.write("keystore" + suffix, blob)
        needles = _needles(storage)
        m = _meter(storage, anchor)
        assert m.state == UNPROVISIONED and m.stats.get(fault) == 1, fault
        m.start(T0)
        m.tamper(T0 + 1000)
        assert len(_zeroized_events(m)) == 1
        _assert_erased(storage, needles)
        r = _meter(storage, anchor, boot=1)
        assert r.state == UNPROVISIONED and r.stats.get("zeroized") == 1, fault
