"""Signed commands: envelope codec, the device checks in order, counters across reboots, NOTIFY.

ECDSA is the cost here on MicroPython (a few ms each): envelopes are signed once per test and
the codec tests use a dummy signature (decode does not verify).
"""

from ami.commands import envelope as E
from ami.commands.verify import (
    MAX_COUNTERS,
    MAX_NOTICES,
    RECORD,
    CommandVerifier,
    decode_state,
    encode_state,
)
from ami.crypto import p256_public_key, sha256
from ami.keyschedule import derive_storage_key
from ami.ports.entropy import DeterministicEntropy
from ami.ports.flashsim import FlashSim, PowerCut
from ami.ports.storage import MemoryStorage
from ami.store.records import RecordCorrupt, RecordStore
from fwtest import raises

SIGNER = sha256(b"command signer")
SIGNER_PUB = p256_public_key(SIGNER)
ROGUE = sha256(b"rogue signer")
KEY_ID = 3
EUI = b"\x02AMI\x00\x00\x00\x01"
OTHER_EUI = b"\x02AMI\x00\x00\x00\x02"
GROUP = b"\x47\x52\x50\x00\x00\x00\x00\x01"
GROUP2 = b"\x47\x52\x50\x00\x00\x00\x00\x02"
NOW = 1735689600
DAY = 86400
DUMMY_SIG = bytes(range(64))
STORAGE_KEY = derive_storage_key(b"device secret")


def _records(storage=None):
    return RecordStore(storage or MemoryStorage(), STORAGE_KEY, DeterministicEntropy(b"cmd"))


def _verifier(records=None, groups=(), notice=()):
    return CommandVerifier(
        records or _records(), {KEY_ID: SIGNER_PUB}, EUI, groups, notice_required=notice
    )


def _body(command=E.DISCONNECT, counter=1, kind=E.TARGET_DEVICE, target=EUI, params=(), **kw):
    nb = kw.get("not_before", NOW - 60)
    na = kw.get("not_after", NOW + DAY)
    return E.encode(command, kind, target, counter, nb, na, kw.get("key_id", KEY_ID), params)


def _signed(key=SIGNER, **kw):
    return E.sign(_body(**kw), key)


def _reasons(errors_of, cases):
    for args in cases:
        exc = raises(E.CommandError, errors_of, *args)
        assert exc.reason == "malformed", args


# --- codec -----------------------------------------------------------------------------------


def test_round_trip_every_command_and_exact_lengths():
    cases = (
        (E.DISCONNECT, (), 89),
        (E.ARM_RECONNECT, (), 89),
        (E.RECONNECT, (), 89),
        (E.LOAD_LIMIT, (0xFFFFFFFF, 0xFFFF, 1), 96),
        (E.LOAD_LIMIT, (0, 0, 0), 96),
        (E.NOTIFY, (bytes(range(32)), 0xFFFFFFFF), 125),
    )
    for command, params, size in cases:
        for kind, target in ((E.TARGET_DEVICE, EUI), (E.TARGET_GROUP, GROUP)):
            body = E.encode(command, kind, target, 0xFFFFFFFF, 0, 7 * DAY, 255, params)
            data = body + DUMMY_SIG
            assert len(data) == size
            env = E.decode(data)
            assert (env.version, env.command, env.target_kind, env.target) == (
                1,
                command,
                kind,
                target,
            )
            assert (env.counter, env.not_before, env.not_after, env.key_id) == (
                0xFFFFFFFF,
                0,
                7 * DAY,
                255,
            )
            assert env.args == params and len(env.params) == size - 89
            assert env.signed_part == body and env.signature == DUMMY_SIG and env.raw == data
            assert env.digest() == sha256(data)
            assert E.encode(command, kind, target, env.counter, 0, 7 * DAY, 255, env.args) == body
    assert E.decode(bytearray(data)).raw == data
    assert E.decode(memoryview(data)).raw == data


def test_layout_matches_the_spec():
    body = E.encode(E.LOAD_LIMIT, E.TARGET_GROUP, GROUP, 0x01020304, 5, 6, 9, (7000, 900, 1))
    assert body == (
        b"\x01\x04\x01"
        + GROUP
        + b"\x01\x02\x03\x04"
        + b"\x00\x00\x00\x05\x00\x00\x00\x06"
        + b"\x09\x07"
        + b"\x00\x00\x1b\x58\x03\x84\x01"
    )
    assert E.signing_input(body) == b"AMI-CMD-1" + body


def test_encode_range_checks_every_field():
    good = [E.DISCONNECT, E.TARGET_DEVICE, EUI, 1, NOW, NOW + 1, KEY_ID, ()]
    bad = (
        (0, -1),
        (0, 0),
        (0, 6),  # KEY_CHANGE needs its 5 parameters
        (0, 7),  # FIRMWARE_ACTIVATE: no parameter layout yet
        (0, 8),  # REJOIN needs its flags
        (0, 10),
        (0, 256),
        (1, 2),
        (1, 256),
        (2, EUI[:7]),
        (2, EUI + b"\x00"),
        (2, "target12"),
        (3, -1),
        (3, 1 << 32),
        (3, True),
        (4, -1),
        (4, 1 << 32),
        (5, NOW - 1),  # not_after before not_before
        (5, NOW + 7 * DAY + 1),  # window longer than 7 days
        (5, 1 << 32),
        (6, 256),
        (6, -1),
        (7, (1,)),  # DISCONNECT takes no parameters
        (7, [1]),
    )
    cases = []
    for i, value in bad:
        args = list(good)
        args[i] = value
        cases.append(tuple(args))
    ll = [E.LOAD_LIMIT] + good[1:7]
    for params in (
        (1, 2),
        (1 << 32, 0, 0),
        (0, 1 << 16, 0),
        (0, 0, 2),
        (0, 0, 256),
        (-1, 0, 0),
        [0, 0, 0],
    ):
        cases.append(tuple(ll + [params]))
    nt = [E.NOTIFY] + good[1:7]
    for params in ((bytes(31), 1), (bytes(33), 1), (bytes(32), 1 << 32), (bytes(32),)):
        cases.append(tuple(nt + [params]))
    _reasons(E.encode, cases)
    # The boundary values themselves are accepted.
    E.encode(E.DISCONNECT, E.TARGET_DEVICE, EUI, 0, NOW, NOW + 7 * DAY, 0)
    E.encode(E.DISCONNECT, E.TARGET_DEVICE, EUI, 0, NOW, NOW, 0)


def _mutate(data, i, value):
    b = bytearray(data)
    b[i] = value
    return bytes(b)


def test_decode_rejects_malformed():
    dis = _body() + DUMMY_SIG
    ll = _body(command=E.LOAD_LIMIT, params=(5000, 60, 0)) + DUMMY_SIG
    nt = _body(command=E.NOTIFY, params=(bytes(32), NOW)) + DUMMY_SIG
    window = E.encode(E.DISCONNECT, 0, EUI, 1, NOW, NOW + 7 * DAY, KEY_ID) + DUMMY_SIG
    too_long = bytearray(window)
    too_long[22] += 1  # not_after one second later: window of 7 days + 1 s
    backwards = bytearray(window)
    backwards[15:19] = (NOW + 7 * DAY + 1).to_bytes(4, "big")
    cases = (
        b"",
        dis[:-1],  # short signature
        dis + b"\x00",  # trailing byte
        dis[:88],
        ll[:-1],
        ll + b"\x00",
        nt + bytes(36),
        bytes(161),
        _mutate(dis, 0, 0),  # version
        _mutate(dis, 0, 2),
        _mutate(dis, 1, 0),  # command
        _mutate(dis, 1, 6),  # KEY_CHANGE without parameters
        _mutate(dis, 1, 7),
        _mutate(dis, 1, 8),  # REJOIN without its flags
        _mutate(dis, 1, 10),
        _mutate(dis, 1, E.LOAD_LIMIT),  # parameter length does not fit the command
        _mutate(ll, 1, E.DISCONNECT),
        _mutate(nt, 1, E.LOAD_LIMIT),
        _mutate(dis, 2, 2),  # target kind
        _mutate(dis, 24, 1),  # parameter length byte disagrees with the size
        _mutate(ll, 24, 0),
        _mutate(ll, 24, 8),
        _mutate(ll, 31, 2),  # restore
        bytes(too_long),
        bytes(backwards),
        "x" * 89,
        None,
        89,
    )
    for data in cases:
        exc = raises(E.CommandError, E.decode, data)
        assert exc.reason == "malformed", data
    # An envelope of the maximum size is rejected only for its command, not its length.
    big = b"\x01\x01\x00" + EUI + bytes(12) + b"\x00\x47" + bytes(71) + DUMMY_SIG
    assert len(big) == E.MAX_ENVELOPE
    assert "parameter length" in str(raises(E.CommandError, E.decode, big))


# --- key lifecycle commands (KEY_CHANGE, REJOIN, DECOMMISSION) ------------------------------

COMPRESSED = b"\x03" + bytes(range(32))  # a compressed point's form (the codec checks no more)
MATERIAL = {
    E.KC_SESSION: bytes(range(40)),  # wrapped K_up || K_down
    E.KC_GROUP: GROUP + bytes(range(100, 124)),  # group id || wrapped group key
    E.KC_ROOT: bytes(range(200, 224)),  # wrapped root key
    E.KC_SIGNER: COMPRESSED,
}


def test_lifecycle_commands_round_trip_with_exact_layouts():
    cases = [
        (E.KEY_CHANGE, (kind, 7, 0x01020304, 0x0A0B0C0D, MATERIAL[kind]), 99 + len(MATERIAL[kind]))
        for kind in (E.KC_SESSION, E.KC_GROUP, E.KC_ROOT, E.KC_SIGNER)
    ]
    cases += [
        (E.KEY_CHANGE, (E.KC_SIGNER, 0, 0, 0, b"\x02" + bytes(32)), 132),
        (E.KEY_CHANGE, (E.KC_ROOT, 255, 0xFFFFFFFF, 0xFFFFFFFF, MATERIAL[E.KC_ROOT]), 123),
        (E.REJOIN, (0,), 90),
        (E.REJOIN, (E.REJOIN_COMPROMISE,), 90),
        (E.DECOMMISSION, (), 89),
    ]
    for command, params, size in cases:
        body = E.encode(command, E.TARGET_DEVICE, EUI, 42, NOW, NOW + DAY, KEY_ID, params)
        data = body + DUMMY_SIG
        assert len(data) == size, (command, params)
        env = E.decode(data)
        assert (env.command, env.target_kind, env.target, env.counter) == (
            command, E.TARGET_DEVICE, EUI, 42)
        assert env.args == params and env.raw == data and env.signed_part == body
        assert E.encode(command, E.TARGET_DEVICE, EUI, 42, NOW, NOW + DAY, KEY_ID, env.args) == (
            body
        )
        if command == E.REJOIN:  # it may go to a group too
            group = E.encode(command, E.TARGET_GROUP, GROUP, 1, NOW, NOW, KEY_ID, params)
            assert E.decode(group + DUMMY_SIG).args == params
    # kind (1) | key id (1) | generation (4) | grace_s (4) | material, after the header.
    body = E.encode(E.KEY_CHANGE, E.TARGET_DEVICE, EUI, 1, 5, 6, 9,
                    (E.KC_ROOT, 2, 0x01020304, 0x0A0B0C0D, MATERIAL[E.KC_ROOT]))
    assert body[1] == 6 and body[24] == 34
    assert body[25:35] == b"\x03\x02\x01\x02\x03\x04\x0a\x0b\x0c\x0d"
    assert body[35:] == MATERIAL[E.KC_ROOT]
    body = E.encode(E.REJOIN, E.TARGET_DEVICE, EUI, 1, 5, 6, 9, (1,))
    assert body[1] == 8 and body[24:] == b"\x01\x01"
    body = E.encode(E.DECOMMISSION, E.TARGET_DEVICE, EUI, 1, 5, 6, 9)
    assert body[1] == 9 and body[24:] == b"\x00"


def test_rejoin_may_target_a_group_but_not_key_change_or_decommission():
    assert E.decode(E.encode(E.REJOIN, E.TARGET_GROUP, GROUP, 1, NOW, NOW, 0, (1,)) + DUMMY_SIG)
    cases = [(E.DECOMMISSION, E.TARGET_GROUP, GROUP, 1, NOW, NOW, 0, ())]
    for kind in MATERIAL:
        cases.append((E.KEY_CHANGE, E.TARGET_GROUP, GROUP, 1, NOW, NOW, 0,
                      (kind, 0, 1, 0, MATERIAL[kind])))
    _reasons(E.encode, cases)
    for args in cases:  # the same bodies built by hand
        device = list(args)
        device[1] = E.TARGET_DEVICE
        data = bytearray(E.encode(*device) + DUMMY_SIG)
        data[2] = E.TARGET_GROUP
        assert raises(E.CommandError, E.decode, bytes(data)).reason == "malformed"


def test_malformed_lifecycle_parameters():
    base = [E.KEY_CHANGE, E.TARGET_DEVICE, EUI, 1, NOW, NOW + 1, KEY_ID]
    bad_params = []
    for kind in MATERIAL:
        m = MATERIAL[kind]
        bad_params += [(kind, 0, 1, 0, m[:-1]), (kind, 0, 1, 0, m + b"\x00")]
    for kind in (0, 5, 255):
        for m in MATERIAL.values():
            bad_params.append((kind, 0, 1, 0, m))
    for prefix in (b"\x00", b"\x01", b"\x04", b"\x05", b"\xff"):
        bad_params.append((E.KC_SIGNER, 0, 1, 0, prefix + COMPRESSED[1:]))
    uncompressed = p256_public_key(SIGNER)  # 65 bytes: the wrong length for a signer
    bad_params += [
        (E.KC_SIGNER, 0, 1, 0, uncompressed),
        (E.KC_SIGNER, 0, 1, 0, uncompressed[:33]),  # 04 prefix
        (E.KC_ROOT, 0, 1, 0, b""),
        (E.KC_ROOT, 0, 1, 0),  # four parameters
        (E.KC_ROOT, 0, 1, 0, MATERIAL[E.KC_ROOT], 0),
        (E.KC_ROOT, 256, 1, 0, MATERIAL[E.KC_ROOT]),
        (E.KC_ROOT, 0, 1 << 32, 0, MATERIAL[E.KC_ROOT]),
        (E.KC_ROOT, 0, 1, -1, MATERIAL[E.KC_ROOT]),
        (E.KC_ROOT, 0, 1, 0, "x" * 24),
        [E.KC_ROOT, 0, 1, 0, MATERIAL[E.KC_ROOT]],
        (),
    ]
    cases = [tuple(base + [p]) for p in bad_params]
    rejoin = [E.REJOIN] + base[1:]
    for p in ((2,), (3,), (0x80,), (0xFF,), (256,), (-1,), (), (0, 0), [0]):
        cases.append(tuple(rejoin + [p]))
    cases.append(tuple([E.DECOMMISSION] + base[1:] + [(0,)]))
    _reasons(E.encode, cases)
    # The decoder, on bytes edited from valid envelopes.
    for kind in MATERIAL:
        good = E.encode(*(base + [(kind, 0, 1, 0, MATERIAL[kind])])) + DUMMY_SIG
        assert E.decode(good).args[0] == kind
        # Every kind's material has its own length: another kind byte never fits.
        for other in (0, 5, 255) + tuple(k for k in MATERIAL if k != kind):
            assert raises(E.CommandError, E.decode, _mutate(good, 25, other)).reason == (
                "malformed"
            )
        longer = bytearray(good[:-64] + b"\x00" + DUMMY_SIG)
        longer[24] += 1
        shorter = bytearray(good[:-65] + DUMMY_SIG)
        shorter[24] -= 1
        for data in (bytes(longer), bytes(shorter)):
            assert raises(E.CommandError, E.decode, data).reason == "malformed"
    signer = E.encode(*(base + [(E.KC_SIGNER, 0, 1, 0, COMPRESSED)])) + DUMMY_SIG
    assert E.decode(_mutate(signer, 35, 2)).args[4][0] == 2
    for prefix in (0, 1, 4, 0xFF):
        assert raises(E.CommandError, E.decode, _mutate(signer, 35, prefix)).reason == "malformed"
    rejoin = E.encode(E.REJOIN, E.TARGET_DEVICE, EUI, 1, NOW, NOW, 0, (1,)) + DUMMY_SIG
    for flags in (2, 3, 0x80, 0xFF):
        assert raises(E.CommandError, E.decode, _mutate(rejoin, 25, flags)).reason == "malformed"
    decommission = E.encode(E.DECOMMISSION, E.TARGET_DEVICE, EUI, 1, NOW, NOW, 0) + DUMMY_SIG
    # A KEY_CHANGE header too short for its parameters, or padded: malformed.
    for n in range(0, 11):
        data = bytearray(decommission[:25] + bytes(n) + DUMMY_SIG)
        data[1] = E.KEY_CHANGE
        data[24] = n
        assert raises(E.CommandError, E.decode, bytes(data)).reason == "malformed", n
    assert E.param_len(E.KEY_CHANGE) == -1 and E.param_len(E.REJOIN) == 1
    assert E.param_len(E.DECOMMISSION) == 0 and E.param_len(10) is None


def test_sign_checks_the_body_and_signs_the_domain():
    body = _body()
    env = E.decode(E.sign(body, SIGNER))
    assert env.signed_part == body
    from ami.crypto import ecdsa_verify

    assert ecdsa_verify(SIGNER_PUB, b"AMI-CMD-1" + body, env.signature)
    assert not ecdsa_verify(SIGNER_PUB, body, env.signature)
    for bad in (body[:-1], body + b"\x00", _mutate(body, 0, 2), "body", None):
        assert raises(E.CommandError, E.sign, bad, SIGNER).reason == "malformed"


# --- device checks ---------------------------------------------------------------------------


def test_accepts_commits_and_rejects_the_same_envelope_after():
    v = _verifier()
    data = _signed(counter=5)
    reason, env = v.check(data, NOW)
    assert reason is None and env.counter == 5
    # check() changes nothing: the same envelope passes again until committed.
    assert v.check(data, NOW)[0] is None
    assert v.last_counter(E.TARGET_DEVICE, EUI) is None
    assert v.commit(env) is None
    assert v.last_counter(E.TARGET_DEVICE, EUI) == 5
    assert v.check(data, NOW)[0] == "counter_reused"
    assert v.check(_signed(counter=4), NOW)[0] == "counter_reused"
    reason, env6 = v.check(_signed(counter=6), NOW)
    assert reason is None
    assert v.counts == {"accepted": 1, "counter_reused": 2}
    # commit() only takes what check() accepted, and only once.
    assert v.commit(env6) is None
    raises(ValueError, v.commit, env6)
    raises(ValueError, v.commit, E.decode(_signed(counter=7)))


def test_two_checked_envelopes_race_to_commit():
    v = _verifier()
    _, a = v.check(_signed(counter=10), NOW)
    _, b = v.check(_signed(counter=9, command=E.RECONNECT), NOW)
    assert v.commit(a) is None
    assert v.commit(b) == "counter_reused"  # state moved since check: the device must not act
    assert v.last_counter(E.TARGET_DEVICE, EUI) == 10


def test_rejections_in_the_order_of_section_10_3():
    v = _verifier(groups=(GROUP,))
    assert v.commit(v.check(_signed(counter=100), NOW)[1]) is None
    late = NOW + 2 * DAY  # past every default window below
    # Each case also breaks every later check, so only the order explains the reason.
    unknown = _signed(key_id=KEY_ID + 1, target=OTHER_EUI, counter=1)
    copy = _signed(target=OTHER_EUI, counter=1)
    forged = _mutate(copy, 88, copy[88] ^ 0x55)
    rogue = _signed(key=ROGUE, target=OTHER_EUI, counter=1)
    copycat = copy
    non_member = _signed(kind=E.TARGET_GROUP, target=GROUP2, counter=1)
    expired = _signed(counter=1)
    early = _signed(counter=1, not_before=late + 400, not_after=late + DAY)
    cases = (
        (b"\x01" * 50, "malformed"),
        (unknown, "unknown_signer"),
        (forged, "bad_signature"),
        (rogue, "bad_signature"),
        (copycat, "wrong_target"),
        (non_member, "wrong_target"),
        (expired, "expired"),
        (early, "not_yet_valid"),
    )
    for data, reason in cases:
        assert v.check(data, late)[0] == reason, reason
    assert v.check(b"\x01" * 50, late) == ("malformed", None)
    assert v.check(copycat, late)[1].target == OTHER_EUI  # the decoded envelope comes back
    # A bit flipped anywhere in the signed part breaks the signature.
    good = _signed(counter=101)
    assert v.check(_mutate(good, 11, good[11] ^ 1), NOW)[0] == "bad_signature"  # counter
    assert v.check(_mutate(good, 22, good[22] ^ 1), NOW)[0] == "bad_signature"  # not_after
    assert v.check(good, NOW)[0] is None
    assert v.last_counter(E.TARGET_DEVICE, EUI) == 100  # no check changed anything


def test_window_edges_with_skew():
    v = _verifier()
    data = _signed(not_before=NOW, not_after=NOW + 3600)
    for now, reason in (
        (NOW - 301, "not_yet_valid"),
        (NOW - 300, None),
        (NOW + 3600 + 300, None),
        (NOW + 3601 + 300, "expired"),
    ):
        assert v.check(data, now)[0] == reason, now
    strict = CommandVerifier(_records(), {KEY_ID: SIGNER_PUB}, EUI, skew_s=0)
    assert strict.check(data, NOW - 1)[0] == "not_yet_valid"
    assert strict.check(data, NOW + 3601)[0] == "expired"


def test_groups_have_their_own_counters_and_membership_changes():
    v = _verifier(groups=(GROUP,))
    g5 = _signed(kind=E.TARGET_GROUP, target=GROUP, counter=5)
    assert v.commit(v.check(g5, NOW)[1]) is None
    # The device's own counter is separate from the group's.
    assert v.commit(v.check(_signed(counter=1), NOW)[1]) is None
    assert v.last_counter(E.TARGET_GROUP, GROUP) == 5
    assert v.last_counter(E.TARGET_DEVICE, EUI) == 1
    v.set_groups(())
    assert v.groups == ()
    g6 = _signed(kind=E.TARGET_GROUP, target=GROUP, counter=6)
    assert v.check(g6, NOW)[0] == "wrong_target"
    v.set_groups((GROUP2, GROUP))
    assert v.check(g5, NOW)[0] == "counter_reused"  # the former group's counter was kept
    assert v.check(g6, NOW)[0] is None
    # Joining with a floor: commands of the group at or below it are refused.
    v.set_groups(((GROUP2, 40),))
    assert v.last_counter(E.TARGET_GROUP, GROUP2) == 40
    g40 = _signed(kind=E.TARGET_GROUP, target=GROUP2, counter=40)
    assert v.check(g40, NOW)[0] == "counter_reused"
    v.set_groups(((GROUP2, 3),))  # a floor never lowers a counter
    assert v.last_counter(E.TARGET_GROUP, GROUP2) == 40
    raises(ValueError, v.set_groups, (GROUP[:7],))
    raises(ValueError, v.set_groups, [bytes([i]) * 8 for i in range(9)])
    raises(ValueError, v.set_groups, ((GROUP, -1),))


def test_counter_table_is_bounded_and_keeps_members():
    records = _records()
    v = _verifier(records)
    assert v.commit(v.check(_signed(counter=3), NOW)[1]) is None
    gids = [b"G" + bytes([i]) * 7 for i in range(MAX_COUNTERS + 4)]
    v.set_groups(((gids[0], 50),))
    for i in range(1, len(gids)):
        v.set_groups(((gids[0], 50), (gids[i], i)))  # gids[0] stays a member throughout
    counters = decode_state(records.read(RECORD))[0]
    assert len(counters) == MAX_COUNTERS
    assert (E.TARGET_DEVICE, EUI, 3) in counters and (E.TARGET_GROUP, gids[0], 50) in counters
    # The least recently set former groups went first; the newest are kept.
    assert v.last_counter(E.TARGET_GROUP, gids[1]) is None
    assert v.last_counter(E.TARGET_GROUP, gids[-1]) == len(gids) - 1
    assert _verifier(records).last_counter(E.TARGET_DEVICE, EUI) == 3


def test_replay_after_reboot_and_power_cut_during_commit():
    flash = FlashSim()
    v = _verifier(_records(flash))
    data = _signed(counter=7)
    _, env = v.check(data, NOW)
    assert v.commit(env) is None
    rebooted = _verifier(_records(flash))
    assert rebooted.check(data, NOW)[0] == "counter_reused"
    # A cut at any byte of the commit's one write: either the counter is persisted or commit
    # raised before the device acted. Never a lost state.
    start = dict(flash._blobs)
    dry = FlashSim(dict(start))
    w = _verifier(_records(dry))
    env9 = w.check(_signed(counter=9), NOW)[1]  # checked once, committed under each cut
    dry.clear_log()
    assert w.commit(env9) is None
    points = list(dry.cut_points(step=5))
    assert len(dry.write_log) == 1 and len(points) >= 10
    seen = set()
    for n, k in points:
        f = FlashSim(dict(start))
        u = _verifier(_records(f))
        env9.checked_by = u  # the same checked envelope, so no ECDSA per cut point
        f.arm_cut(n, k)
        raises(PowerCut, u.commit, env9)
        f.reboot()
        last = _verifier(_records(f)).last_counter(E.TARGET_DEVICE, EUI)
        assert last in (7, 9), last
        seen.add(last)
    assert seen == {7, 9}


def test_notify_announces_an_action():
    records = _records()
    v = _verifier(records, notice=(E.DISCONNECT,))
    action = _signed(counter=11, not_before=NOW + DAY, not_after=NOW + 2 * DAY)
    later = NOW + DAY + 10
    deadline = NOW + DAY + 3600
    notify = _signed(command=E.NOTIFY, counter=10, params=(sha256(action), deadline))
    # Unannounced: refused even though everything else holds.
    assert v.check(action, later)[0] == "window_violation"
    reason, n = v.check(notify, NOW)
    assert reason is None and n.args == (sha256(action), deadline)
    assert v.commit(n) is None
    assert v.notices() == [(sha256(action), deadline)]
    # Past the deadline: refused; before it: accepted, and the announcement is consumed.
    assert v.check(action, deadline + 1)[0] == "window_violation"
    reason, a = v.check(action, later)
    assert reason is None
    # The announcement survives a reboot; the committed action consumes it.
    rebooted = _verifier(records, notice=(E.DISCONNECT,))
    assert rebooted.notices() == [(sha256(action), deadline)]
    assert v.commit(a) is None
    assert v.notices() == []
    assert _verifier(records, notice=(E.DISCONNECT,)).notices() == []
    # Another disconnect, not announced, is refused; a command without notice is accepted.
    assert v.check(_signed(counter=12), later)[0] == "window_violation"
    assert v.check(_signed(command=E.RECONNECT, counter=12), later)[0] is None
    # The counter check comes before the notice check.
    assert v.check(action, later)[0] == "counter_reused"
    raises(ValueError, _verifier, None, (), (E.NOTIFY,))


def test_announcements_are_bounded_earliest_deadline_dropped():
    v = _verifier(notice=(E.DISCONNECT,))
    hashes = [sha256(bytes([i])) for i in range(MAX_NOTICES + 1)]
    deadlines = [NOW + 5000, NOW + 1000, NOW + 4000, NOW + 3000, NOW + 2000]
    for i in range(MAX_NOTICES + 1):
        n = _signed(command=E.NOTIFY, counter=i + 1, params=(hashes[i], deadlines[i]))
        assert v.commit(v.check(n, NOW)[1]) is None
    kept = v.notices()
    assert len(kept) == MAX_NOTICES
    assert (hashes[1], deadlines[1]) not in kept and (hashes[4], deadlines[4]) in kept


def test_state_record_codec_and_corruption_fails_closed():
    counters = [(0, EUI, 3), (1, GROUP, 0xFFFFFFFF)]
    notices = [(bytes(range(32)), NOW)]
    data = encode_state(counters, notices)
    assert len(data) == 2 + 2 * 13 + 36 and data[:2] == b"\x02\x01"
    assert data[2:15] == b"\x00" + EUI + b"\x00\x00\x00\x03"
    assert decode_state(data) == (counters, notices)
    assert decode_state(b"\x00\x00") == ([], [])
    for bad in (b"", b"\x01", data[:-1], data + b"\x00", b"\x01\x00" + b"\x02" + bytes(12)):
        raises(RecordCorrupt, decode_state, bad)
    records = _records()
    records.write(RECORD, b"\x07")  # genuine record, impossible payload
    v = _verifier(records)
    assert v.check(_signed(), NOW)[0] == "record_corrupt"
    raises(RecordCorrupt, v.last_counter, E.TARGET_DEVICE, EUI)


def test_constructor_checks_its_configuration():
    raises(ValueError, CommandVerifier, _records(), {KEY_ID: SIGNER_PUB}, EUI[:7])
    raises(ValueError, CommandVerifier, _records(), {KEY_ID: SIGNER_PUB[:33]}, EUI)
    raises(ValueError, CommandVerifier, _records(), {256: SIGNER_PUB}, EUI)
    raises(ValueError, CommandVerifier, _records(), {KEY_ID: SIGNER_PUB}, EUI, (), -1)
