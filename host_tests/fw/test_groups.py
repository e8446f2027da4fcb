"""Group keys: joining, make-before-break rotation with a grace for the previous key, replay
windows per (group, key generation), erasure."""

import struct

from ami import crypto
from ami.keyschedule import GROUP_KEK_INFO, derive_storage_key, group_kek
from ami.link.groups import MAX_GROUPS, RECORD, Groups
from ami.ports.anchor import MemoryAnchor
from ami.ports.entropy import DeterministicEntropy
from ami.ports.storage import MemoryStorage
from ami.store.records import RecordCorrupt, RecordStore
from fwtest import raises

STORAGE_KEY = derive_storage_key(b"group test device")
K_DOWN = b"\x02" * 16
OTHER_DOWN = b"\x03" * 16
GID = b"GRP\x00\x00\x00\x00\x01"
GID2 = b"GRP\x00\x00\x00\x00\x02"
KEY1 = b"\xb1\x1b\xc2\x2c\xd3\x3d\xe4\x4e\xf5\x5f\x06\x60\x17\x71\x28\x82"
KEY2 = b"\x1c\xc1\x2d\xd2\x3e\xe3\x4f\xf4\x50\x05\x61\x16\x72\x27\x83\x38"
KEY3 = b"\x39\x93" * 8
NOW = 1767225600


def _records(storage=None, anchor=None):
    return RecordStore(storage or MemoryStorage(), STORAGE_KEY, DeterministicEntropy(b"g"),
                       anchor, (RECORD,))


def _wrap(key, k_down=K_DOWN):
    return crypto.aes_key_wrap(group_kek(k_down), key)


def test_group_kek_is_derived_from_the_session_downlink_key():
    assert group_kek(K_DOWN) == crypto.hkdf_sha256(K_DOWN, b"", GROUP_KEK_INFO, 16)
    assert GROUP_KEK_INFO == b"AMI group kek" and group_kek(OTHER_DOWN) != group_kek(K_DOWN)


def test_join_a_group_and_read_it_back_after_a_reboot():
    records = _records()
    g = Groups(records)
    assert g.ids() == [] and g.current(GID) is None and g.key(GID, 0, NOW) is None
    assert g.install(K_DOWN, GID2, 7, _wrap(KEY2)) is None
    assert g.install(K_DOWN, GID, 1, _wrap(KEY1)) is None
    assert g.ids() == [GID, GID2]  # sorted
    assert g.current(GID) == (1, KEY1) and g.key(GID, 1, NOW) == KEY1
    assert g.key(GID, 2, NOW) is None and g.key(GID, 0, NOW) is None
    # Record: n x (id (8) | gen (1) | key (16) | previous gen (1) | until (4) | previous (16)).
    assert records.read(RECORD) == (
        struct.pack(">8sB16sBI16s", GID, 1, KEY1, 0, 0, bytes(16))
        + struct.pack(">8sB16sBI16s", GID2, 7, KEY2, 0, 0, bytes(16))
    )
    again = Groups(records)
    assert again.ids() == [GID, GID2] and again.key(GID2, 7, NOW) == KEY2


def test_refused_installs_change_nothing():
    records = _records()
    g = Groups(records)
    g.install(K_DOWN, GID, 1, _wrap(KEY1))
    gen = records.generation(RECORD)
    tampered = bytearray(_wrap(KEY2))
    tampered[3] ^= 1
    for k_down, key_gen, wrapped, reason in (
        (OTHER_DOWN, 2, _wrap(KEY2), "unwrap_failed"),  # wrapped for another session
        (K_DOWN, 2, bytes(tampered), "unwrap_failed"),
        (K_DOWN, 2, _wrap(KEY2)[:16], "unwrap_failed"),
        (K_DOWN, 2, _wrap(KEY2 + KEY1), "malformed"),  # a 32-byte key
        (K_DOWN, 256, _wrap(KEY2), "malformed"),
        (K_DOWN, -1, _wrap(KEY2), "malformed"),
    ):
        assert g.install(k_down, GID, key_gen, wrapped, NOW, 60) == reason, reason
    assert records.generation(RECORD) == gen and g.current(GID) == (1, KEY1)
    assert g.key(GID, 2, NOW) is None
    for i in range(MAX_GROUPS - 1):
        assert g.install(K_DOWN, b"G" + bytes([i]) * 7, 0, _wrap(KEY3)) is None
    assert g.install(K_DOWN, GID2, 0, _wrap(KEY3)) == "malformed"  # a ninth group
    assert len(g.ids()) == MAX_GROUPS
    assert g.install(K_DOWN, GID, 2, _wrap(KEY2)) is None  # a rotation still fits


def test_rotation_keeps_the_previous_key_only_until_its_grace_ends():
    records = _records()
    g = Groups(records)
    g.install(K_DOWN, GID, 1, _wrap(KEY1))
    assert g.install(K_DOWN, GID, 2, _wrap(KEY2), now_s=NOW, grace_s=300) is None
    assert g.current(GID) == (2, KEY2)
    assert g.key(GID, 2, NOW) == KEY2 and g.key(GID, 2, NOW + 10**6) == KEY2
    assert g.key(GID, 1, NOW) == KEY1 and g.key(GID, 1, NOW + 300) == KEY1
    assert g.key(GID, 1, NOW + 301) is None
    assert g.key(GID, 3, NOW) is None
    rebooted = Groups(records)  # the grace is persisted with the key
    assert rebooted.key(GID, 1, NOW + 300) == KEY1 and rebooted.key(GID, 1, NOW + 301) is None
    # Another rotation: the key before the previous one goes at once.
    assert g.install(K_DOWN, GID, 3, _wrap(KEY3), now_s=NOW + 10, grace_s=100) is None
    assert g.key(GID, 1, NOW + 10) is None
    assert g.key(GID, 2, NOW + 110) == KEY2 and g.key(GID, 2, NOW + 111) is None
    assert g.key(GID, 3, NOW + 111) == KEY3
    # The same generation again replaces the key and keeps no previous one.
    assert g.install(K_DOWN, GID, 3, _wrap(KEY1), now_s=NOW + 20, grace_s=100) is None
    assert g.key(GID, 3, NOW) == KEY1 and g.key(GID, 2, NOW + 20) is None
    assert records.read(RECORD)[25:] == bytes(21)  # no previous generation, until, key
    # The grace saturates at the end of the 32-bit clock.
    g.install(K_DOWN, GID, 4, _wrap(KEY2), now_s=0xFFFFFF00, grace_s=0xFFFFFFFF)
    assert g.key(GID, 3, 0xFFFFFFFF) == KEY1
    assert struct.unpack(">I", records.read(RECORD)[26:30])[0] == 0xFFFFFFFF
    # A rotation with no grace: the previous key only for the second it happened in.
    g.install(K_DOWN, GID, 5, _wrap(KEY3), now_s=NOW, grace_s=0)
    assert g.key(GID, 4, NOW) == KEY2 and g.key(GID, 4, NOW + 1) is None
    # Other groups are not touched by a rotation.
    g.install(K_DOWN, GID2, 9, _wrap(KEY1))
    g.install(K_DOWN, GID, 6, _wrap(KEY1), now_s=NOW, grace_s=60)
    assert g.current(GID2) == (9, KEY1) and g.key(GID2, 5, NOW) is None


def test_replay_windows_per_group_and_key_generation():
    records = _records()
    g = Groups(records)
    g.install(K_DOWN, GID, 1, _wrap(KEY1))
    g.install(K_DOWN, GID2, 1, _wrap(KEY1))
    w = g.window(GID, 1)
    assert g.window(GID, 1) is w and g.window(bytearray(GID), 1) is w
    assert g.window(GID, 2) is not w and g.window(GID2, 1) is not w
    assert w.check(5)
    w.accept(5)
    assert not g.window(GID, 1).check(5)
    # The same counter under the next key generation or in another group is new.
    assert g.window(GID, 2).check(5) and g.window(GID2, 1).check(5)
    # Windows live in RAM (the command counter stops replays after a reboot).
    assert Groups(records).window(GID, 1).check(5)


def test_clear_leaves_every_group_and_erases_the_keys():
    storage = MemoryStorage()
    anchor = MemoryAnchor()
    records = _records(storage, anchor)
    g = Groups(records)
    g.install(K_DOWN, GID, 1, _wrap(KEY1))
    g.install(K_DOWN, GID, 2, _wrap(KEY2), NOW, 600)
    g.window(GID, 2).accept(9)
    g.clear()
    assert g.ids() == [] and g.current(GID) is None and g.key(GID, 1, NOW) is None
    assert g.window(GID, 2).check(9)  # the windows went with the keys
    assert records.read(RECORD) == b""
    for suffix in (".a", ".b"):
        blob = storage.read(RECORD + suffix)
        aad = RECORD.encode() + blob[:7]
        assert crypto.aes_ccm_decrypt(STORAGE_KEY, blob[7:20], blob[20:], aad, 16) == b""
    assert Groups(_records(storage, anchor)).ids() == []
    # Idempotent: a second clear writes nothing.
    writes = storage.writes()
    g.clear()
    Groups(records).clear()
    assert storage.writes() == writes
    # And the groups can be joined again.
    assert g.install(K_DOWN, GID, 3, _wrap(KEY3)) is None and g.ids() == [GID]


def test_a_corrupt_record_is_not_guessed():
    storage = MemoryStorage()
    records = _records(storage)
    Groups(records).install(K_DOWN, GID, 1, _wrap(KEY1))
    blob = bytearray(storage.read(RECORD + ".a"))
    blob[40] ^= 1
    storage.write(RECORD + ".a", bytes(blob))
    raises(RecordCorrupt, Groups, records)
