"""Regression tests of the security review's meter-side defects (issue 12, part A), on both
runtimes: retiring signers, group frames, group joins, alarm eviction and odd values in
sealed records. The provisioned identity and the downlink helpers come from test_meter."""

from ami import crypto
from ami.commands import envelope as E
from ami.events import ALARM, RELAY_OPEN, EventLog, pack_event
from ami.keyschedule import derive_storage_key, group_kek
from ami.keystore import image
from ami.link import frame, messages
from ami.link.groups import Groups
from ami.meter import ACTIVE, IDLE, Meter
from ami.ports.entropy import DeterministicEntropy
from ami.ports.metrology import SimMetrology
from ami.ports.storage import MemoryStorage
from ami.store.records import RecordStore
from meterpair import EUI, GEN, HE, K_DOWN, SECRET, T0, down, meter, provision, uplinks

SIGNER = crypto.sha256(b"hardening signer")
KEY_ID = 2
GID = b"GRP\x00\x00\x00\x00\x05"
GROUP_KEY = b"\x6b\xb6" * 8
NOW = T0 // 1000
KEYSTORE = image(
    EUI, bytes(116), crypto.p256_public_key(b"\x66" * 32), HE,
    crypto.p256_public_key(b"\x77" * 32), b"\x44" * 16, b"\x55" * 32,
    ((KEY_ID, crypto.p256_public_key(SIGNER)),),
)
NEW_SIGNER = crypto.sha256(b"hardening new signer")
THIEF = crypto.sha256(b"hardening thief")
M32 = 0xFFFFFFFF


def _group_env(counter, command=E.LOAD_LIMIT, params=(5000, 300, E.RESTORE_AUTO), key=SIGNER,
               kind=E.TARGET_GROUP, target=GID, not_after=NOW + 3600):
    body = E.encode(command, kind, target, counter, not_after - 3660, not_after, KEY_ID, params)
    return E.sign(body, key)


def _gdown(fcnt, env, gen=1, key=GROUP_KEY):
    return frame.seal(key, frame.DATA, HE, GID, frame.KEY_GROUP, gen, fcnt,
                      messages.encode_command(env), True, True)


def _storage(group=True):
    """A meter's flash: a key store with signer KEY_ID, an active session and (group) a
    member of GID under key generation 1."""
    storage = provision(MemoryStorage())
    r = RecordStore(storage, derive_storage_key(SECRET), DeterministicEntropy(b"s"))
    r.write("keystore", KEYSTORE)
    if group:
        wrapped = crypto.aes_key_wrap(group_kek(K_DOWN), GROUP_KEY)
        assert Groups(r).install(K_DOWN, GID, 1, wrapped) is None
    return storage


def _active():
    m = meter(_storage())
    m.start(T0)
    return m


def _command(counter, command, params=()):
    body = E.encode(command, E.TARGET_DEVICE, EUI, counter, NOW - 60, NOW + 3600, KEY_ID, params)
    return messages.encode_command(E.sign(body, SIGNER))


def _results(out):
    return [messages.decode(p)[1] for _, _, p in uplinks(out) if p[0] == messages.COMMAND_RESULT]


def _signer_change(counter, key_id, private):
    """A KEY_CHANGE signed by signer KEY_ID installing private's public key as key_id."""
    public = crypto.p256_public_key(private)
    params = (E.KC_SIGNER, key_id, 1, 600, bytes((2 + (public[64] & 1),)) + public[1:33])
    return _command(counter, E.KEY_CHANGE, params)


def test_a_retiring_signer_authorises_no_key_change():
    """Defect 3: during a signer rotation's grace the old key still signs ordinary commands,
    but not a KEY_CHANGE (it may have been retired because it leaked)."""
    m = _active()
    assert m.receive(down(1, _signer_change(1, 3, NEW_SIGNER)), T0 + 1000)[0] is None
    assert sorted(m.keys.signers(NOW + 1)) == [KEY_ID, 3]
    # Retiring key 2 tries to install another active signer, then to overwrite the new one.
    for fcnt, counter, key_id in ((2, 2, 4), (3, 3, 3)):
        reason, out = m.receive(down(fcnt, _signer_change(counter, key_id, THIEF)),
                                T0 + 1000 * fcnt)
        assert reason == "policy", reason
        (res,) = _results(out)
        assert res[2] == 1  # refused
    anchors = m.keys.signers(NOW + 5)
    assert sorted(anchors) == [KEY_ID, 3]
    assert anchors[3] == crypto.p256_public_key(NEW_SIGNER)
    assert m.stats.get("retiring_signer") == 1 + 1
    # The retiring key still signs an ordinary command within its grace.
    env = _command(4, E.LOAD_LIMIT, (0, 0, E.RESTORE_AUTO))
    assert m.receive(down(4, env), T0 + 5000)[0] is None


def test_group_frames_refuse_device_targeted_commands():
    """Defect 11: a DECOMMISSION for this device, delivered in a group frame (whose key every
    member holds), is refused, counted and logged: the meter keeps its keys."""
    m = _active()
    body = E.encode(E.DECOMMISSION, E.TARGET_DEVICE, EUI, 1, NOW - 60, NOW + 3600, KEY_ID, ())
    reason, out = m.receive(_gdown(1, E.sign(body, SIGNER)), T0 + 1000)
    assert reason == "device_command_in_group" and out == []
    assert m.state == ACTIVE and m.keys is not None
    assert m.stats["device_command_in_group"] == 1
    assert m.event_counts().get("wrong_target") == 1


def test_group_commands_that_fail_their_checks_get_no_answer():
    """Defect 5: a group-key holder's forgeries (bad signature, other target, expired,
    replayed counter) cost each member no uplink; a genuine group command is answered."""
    m = _active()
    reason, out = m.receive(_gdown(1, _group_env(5)), T0 + 1000)
    assert reason is None and len(_results(out)) == 1
    forged = (
        (_group_env(6, key=THIEF), "bad_signature"),
        (_group_env(7, target=b"GRP\x00\x00\x00\x00\x09"), "wrong_target"),
        (_group_env(8, not_after=NOW - 3600), "expired"),
        (_group_env(5), "counter_reused"),
    )
    for i, (env, why) in enumerate(forged):
        reason, out = m.receive(_gdown(2 + i, env), T0 + 2000 + i)
        assert reason == why and out == [], (why, out)
        assert m.stats[why] == 1


def _member():
    """A meter that joins GID now, by GROUP_KEY over its session: the group's next frame
    counter is 10 and its last command counter 41 (the head end's broadcasts so far)."""
    storage = _storage(group=False)
    m = meter(storage)
    m.start(T0)
    wrapped = crypto.aes_key_wrap(group_kek(K_DOWN), GROUP_KEY)
    key_msg = messages.encode_group_key(GID, 1, wrapped, 10, 41)
    assert m.receive(down(1, key_msg), T0 + 500)[0] is None
    return m, storage


def test_a_group_join_sets_the_members_replay_floors():
    """Defect 4: a group command recorded before the meter joined (frame counter 9, command
    counter 41) is refused when replayed to it under the same key generation, also after a
    reboot (the command floor is persisted)."""
    m, storage = _member()
    assert m.groups.ids() == [GID]
    old = _gdown(9, _group_env(41))
    assert m.receive(old, T0 + 1000) == ("replay", [])
    late = _gdown(12, _group_env(41))  # the same envelope in a fresher frame
    reason, out = m.receive(late, T0 + 1100)
    assert reason == "counter_reused" and out == []
    r = meter(storage, boot=1)
    r.start(T0 + 2000)
    reason, out = r.receive(_gdown(9, _group_env(41)), T0 + 3000)
    assert reason == "counter_reused" and out == []
    reason, out = r.receive(_gdown(13, _group_env(42)), T0 + 4000)
    assert reason is None and len(_results(out)) == 1


def test_a_group_key_reissued_under_the_same_generation_gets_a_fresh_window():
    """Defect 7 (member side): a new key under a generation the member already used (a head
    end restarted, or the generation wrapped) restarts that generation's replay window."""
    m, _ = _member()
    assert m.receive(_gdown(30, _group_env(45)), T0 + 1000)[0] is None
    fresh = b"\x5a" * 16
    wrapped = crypto.aes_key_wrap(group_kek(K_DOWN), fresh)
    assert m.receive(down(2, messages.encode_group_key(GID, 1, wrapped, 0, 45)),
                     T0 + 1500)[0] is None
    reason, out = m.receive(_gdown(1, _group_env(46), key=fresh), T0 + 2000)
    assert reason is None and len(_results(out)) == 1
    # The same key again (a repeated GROUP_KEY) keeps the window: no replay opening.
    assert m.receive(down(3, messages.encode_group_key(GID, 1, wrapped, 0, 45)),
                     T0 + 2500)[0] is None
    assert m.receive(_gdown(1, _group_env(46), key=fresh), T0 + 3000)[0] == "replay"


def test_groups_install_with_floors_directly():
    r = RecordStore(MemoryStorage(), derive_storage_key(b"g"), DeterministicEntropy(b"g"))
    g = Groups(r)
    wrapped = crypto.aes_key_wrap(group_kek(K_DOWN), GROUP_KEY)
    assert g.install(K_DOWN, GID, 1, wrapped, floor=9) is None
    w = g.window(GID, 1)
    assert not w.check(9) and w.check(10)


def test_alarms_are_not_evicted_by_alarms_of_no_higher_severity():
    """Defect 10: with acknowledgements jammed, a flood of forged-command alarms (severity
    alarm) fills the pending list: a pending relay alarm stays, the newest floods are
    dropped (counted)."""
    r = RecordStore(MemoryStorage(), derive_storage_key(b"e"), DeterministicEntropy(b"e"))
    log = EventLog(r, max_pending=4, burst=3, window_cap=16)
    log.log(NOW, RELAY_OPEN, 0, ALARM)
    t = NOW
    for _ in range(20):
        log.log(t, 6)  # bad_signature
        t += 301
    kinds = [e[2] for e in log.pending_alarms()]
    assert RELAY_OPEN in kinds and len(kinds) == 4
    assert log.dropped_alarms >= 1
    log.log(t, 34, 0, 3)  # a critical one still evicts an alarm
    kinds = [e[2] for e in log.pending_alarms()]
    assert 34 in kinds and RELAY_OPEN in kinds


def _odd(writes, ticks=48):
    storage = provision(MemoryStorage())
    r = RecordStore(storage, derive_storage_key(SECRET), DeterministicEntropy(b"x"))
    for name, value in writes:
        r.write(name, value)
    m = Meter(storage, SECRET, DeterministicEntropy(b"odd"), SimMetrology(b"m"))
    m.start(T0)
    for i in range(1, ticks):
        m.tick(T0 + i * 3600000)
    return m


def test_odd_values_in_sealed_records_reach_a_safe_state():
    """Defect 12: a reading interval of 0, and sequence numbers or nonces at 2^32-1, never
    make a boot or a tick raise; each is counted and logged."""
    m = _odd([("config", (0).to_bytes(4, "big"))])
    assert m.cfg.interval_s == 900 and m.stats["record_corrupt"] == 1
    assert m.event_counts().get("record_corrupt") == 1
    page = (0).to_bytes(4, "big") + M32.to_bytes(4, "big") + (5).to_bytes(4, "big") + bytes(8)
    m = _odd([("rq.0", page)])
    assert m.stats["counter_exhausted"] >= 1 and m.event_counts().get("counter_exhausted")
    m = _odd([("devnonce", M32.to_bytes(4, "big")), ("session", GEN.to_bytes(4, "big"))])
    assert m.state == IDLE and m.stats["counter_exhausted"] == 1 and m.next_wakeup() is not None
    m = _odd([("ev.p0", pack_event(M32, 5, 20, 0, 0))])
    assert m.state == ACTIVE and m.events.exhausted
    m = _odd([("rxfloor", M32.to_bytes(4, "big"))])
    assert m.stats["counter_exhausted"] == 1 and m.state != ACTIVE
