"""The host command signer and its operator policy (amitools.office.signer).

Envelopes it signs are checked with the firmware's own verifier (ami.commands.verify); the
policy runs on a virtual clock.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from ami import crypto
from ami.commands import envelope as E
from ami.commands.verify import CommandVerifier
from ami.crypto import AuthError
from ami.ports.entropy import DeterministicEntropy
from ami.ports.storage import MemoryStorage
from ami.store.records import RecordStore
from amitools.office.signer import (
    CounterStore,
    Policy,
    PolicyError,
    Signer,
    SignerError,
    SigningService,
    hsm_kek,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

MASTER = bytes(range(32))
KEY_ID = 7
EUI = bytes.fromhex("02414d4900000001")
EUI2 = bytes.fromhex("02414d4900000002")
GROUP = bytes.fromhex("4752500000000001")
T0 = 1_735_689_600
FAST = Policy(pbkdf2_iterations=1000)


class Clock:
    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def device(signer: Signer, eui: bytes = EUI, **kw: Any) -> CommandVerifier:
    records = RecordStore(MemoryStorage(), bytes(16), DeterministicEntropy(eui))
    return CommandVerifier(records, {signer.key_id: signer.public_key}, eui, **kw)


def accept(v: CommandVerifier, data: bytes, now: int = T0) -> str | None:
    reason, env = v.check(data, now)
    return reason if reason else v.commit(env)


def service(policy: Policy = FAST, **kw: Any) -> tuple[SigningService, Clock]:
    clock = Clock()
    svc = SigningService(Signer.generate(MASTER, KEY_ID), clock, policy, **kw)
    for name in ("alice", "bob", "carol"):
        svc.add_operator(name, name + "-pw")
    return svc, clock


def session(svc: SigningService, name: str, reauth: bool = True) -> str:
    token = svc.login(name, name + "-pw")
    if reauth:
        svc.reauthenticate(token, name + "-pw")
    return token


def refused(reason: str, func: Any, *args: Any, **kw: Any) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        func(*args, **kw)
    assert info.value.reason == reason
    return info.value


# --- the signer (HSM side) -------------------------------------------------------------------


def test_issued_envelopes_verify_on_the_device_once() -> None:
    signer = Signer.generate(MASTER, KEY_ID)
    v = device(signer)
    first = signer.issue(E.DISCONNECT, E.TARGET_DEVICE, EUI, T0, T0 + 600)
    second = signer.issue(E.LOAD_LIMIT, E.TARGET_DEVICE, EUI, T0, T0 + 600, (4000, 60, 1))
    assert accept(v, first) is None and accept(v, second) is None
    assert accept(v, first) == "counter_reused"
    # Another device (the copy-cat) and a device trusting another signer refuse it.
    assert device(signer, EUI2).check(second, T0)[0] == "wrong_target"
    other = Signer.generate(MASTER, KEY_ID)
    assert device(other).check(other.issue(1, 0, EUI, T0, T0 + 1), T0)[0] is None
    assert device(signer).check(other.issue(1, 0, EUI, T0, T0 + 1), T0)[0] == "bad_signature"
    assert E.decode(second).args == (4000, 60, 1) and E.decode(second).key_id == KEY_ID


def test_sign_body_checks_key_id_and_structure() -> None:
    signer = Signer.generate(MASTER, KEY_ID)
    body = E.encode(E.RECONNECT, E.TARGET_DEVICE, EUI, 1, T0, T0 + 60, KEY_ID)
    assert E.decode(signer.sign_body(body)).signed_part == body
    wrong = E.encode(E.RECONNECT, E.TARGET_DEVICE, EUI, 1, T0, T0 + 60, KEY_ID + 1)
    with pytest.raises(SignerError):
        signer.sign_body(wrong)
    with pytest.raises(E.CommandError):
        signer.sign_body(body + b"\x00")
    with pytest.raises(E.CommandError):  # a bad request burns no counter
        signer.issue(E.DISCONNECT, E.TARGET_DEVICE, EUI, T0, T0 + 8 * 86400)
    assert signer.counters.last(E.TARGET_DEVICE, EUI) is None


def _scan(obj: Any, seen: set[int], found: list[str], secret: bytes, path: str) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, bytes | bytearray | memoryview):
        if secret in bytes(obj):
            found.append(path)
    elif isinstance(obj, str):
        if secret.hex() in obj.lower():
            found.append(path)
    elif isinstance(obj, int):
        if obj == int.from_bytes(secret, "big"):
            found.append(path)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _scan(k, seen, found, secret, path + ".key")
            _scan(v, seen, found, secret, f"{path}[{k!r}]")
    elif isinstance(obj, list | tuple | set | frozenset):
        for i, v in enumerate(obj):
            _scan(v, seen, found, secret, f"{path}[{i}]")
    elif hasattr(obj, "__dict__"):
        for k, v in vars(obj).items():
            _scan(v, seen, found, secret, f"{path}.{k}")


def test_the_signing_key_is_never_held_or_returned_in_clear() -> None:
    private = crypto.sha256(b"the utility's command key")
    wrapped = crypto.aes_key_wrap(hsm_kek(MASTER), private)
    signer = Signer(MASTER, wrapped, KEY_ID)
    assert signer.public_key == crypto.p256_public_key(private)
    clock = Clock()
    svc = SigningService(signer, clock, FAST)
    svc.add_operator("alice", "pw")
    token = svc.login("alice", "pw")
    svc.reauthenticate(token, "pw")
    issued = svc.request(token, E.DISCONNECT, E.TARGET_DEVICE, EUI, notice_deadline=T0 + 600)
    found: list[str] = []
    _scan(svc, set(), found, private, "svc")
    _scan(issued, set(), found, private, "issued")
    assert found == []
    for attr in dir(signer):
        if not attr.startswith("__") and not callable(getattr(signer, attr)):
            _scan(getattr(signer, attr), set(), found, private, attr)
    assert found == []
    assert private.hex() not in repr(signer)
    with pytest.raises(TypeError):
        pickle.dumps(signer)
    # Only the wrapped form leaves, and only the HSM master opens it.
    assert signer.wrapped_key == wrapped and private not in wrapped
    with pytest.raises(AuthError):
        Signer(bytes(32), wrapped, KEY_ID)
    # The scanner does find a key that is there.
    found.clear()
    _scan({"x": [b"prefix" + private]}, set(), found, private, "probe")
    assert found == ["probe['x'][0]"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 2), st.booleans()), max_size=25))
def test_counters_strictly_increase_per_target(ops: list[tuple[int, int, bool]]) -> None:
    signer = Signer.generate(MASTER, KEY_ID)
    targets = (EUI, EUI2, GROUP)
    last: dict[tuple[int, bytes], int] = {}
    for kind, t, notice in ops:
        target = targets[t]
        if notice:
            envs = signer.issue_with_notice(E.DISCONNECT, kind, target, T0, T0 + 60)
        else:
            envs = (signer.issue(E.RECONNECT, kind, target, T0, T0 + 60),)
        for env in envs:
            e = E.decode(env)
            assert e.target_kind == kind and e.target == target
            assert e.counter > last.get((kind, target), 0)
            last[(kind, target)] = e.counter
    for (kind, target), counter in last.items():
        assert signer.counters.last(kind, target) == counter


def test_counters_persist_across_signer_restarts(tmp_path: Any) -> None:
    path = tmp_path / "counters.db"
    signer = Signer.generate(MASTER, KEY_ID, path)
    v = device(signer)
    env = signer.issue(E.DISCONNECT, E.TARGET_DEVICE, EUI, T0, T0 + 60)
    assert accept(v, env) is None
    signer.counters.close()
    restarted = Signer(MASTER, signer.wrapped_key, KEY_ID, path)
    again = restarted.issue(E.DISCONNECT, E.TARGET_DEVICE, EUI, T0, T0 + 60)
    assert E.decode(again).counter == E.decode(env).counter + 1
    assert accept(v, again) is None
    store = CounterStore()
    assert store.allocate(0, EUI, 3) == 1 and store.allocate(0, EUI) == 4
    store.db.execute("UPDATE counters SET last = ?", (0xFFFFFFFF - 1,))
    assert store.allocate(0, EUI) == 0xFFFFFFFF
    with pytest.raises(SignerError):
        store.allocate(0, EUI)


def test_notified_action_is_accepted_only_after_its_notice() -> None:
    signer = Signer.generate(MASTER, KEY_ID)
    v = device(signer, notice_required=(E.DISCONNECT,))
    notify, action = signer.issue_with_notice(
        E.DISCONNECT, E.TARGET_DEVICE, EUI, T0 + 3600, T0 + 7200, notice_from=T0
    )
    n, a = E.decode(notify), E.decode(action)
    assert n.command == E.NOTIFY and n.counter + 1 == a.counter
    assert n.args == (crypto.sha256(action), T0 + 7200)
    assert (n.not_before, n.not_after) == (T0, T0 + 7200)
    assert accept(v, action, T0 + 3600) == "window_violation"
    assert accept(v, notify, T0) is None
    assert accept(v, action, T0 + 3600) is None
    with pytest.raises(E.CommandError):
        signer.issue_with_notice(E.DISCONNECT, 0, EUI, T0, T0 + 60, deadline=T0 - 1)


# --- the operator policy ---------------------------------------------------------------------


def test_credentials_and_sessions() -> None:
    svc, clock = service()
    refused("unknown_operator", svc.login, "mallory", "x")
    refused("bad_credentials", svc.login, "alice", "bob-pw")
    token = svc.login("alice", "alice-pw")
    refused("bad_credentials", svc.reauthenticate, token, "wrong")
    refused("not_authenticated", svc.request, "forged-token", E.RECONNECT, 0, EUI)
    clock.t += FAST.session_ttl_s + 1
    refused("not_authenticated", svc.request, token, E.LOAD_LIMIT, 0, EUI, (0, 0, 0))
    with pytest.raises(ValueError):
        svc.add_operator("alice", "again")
    token = svc.login("alice", "alice-pw")
    svc.logout(token)
    refused("not_authenticated", svc.reauthenticate, token, "alice-pw")


def test_disconnect_and_reconnect_need_recent_reauthentication() -> None:
    svc, clock = service()
    token = session(svc, "alice", reauth=False)
    for command in (E.DISCONNECT, E.ARM_RECONNECT, E.RECONNECT):
        refused("reauth_required", svc.request, token, command, E.TARGET_DEVICE, EUI)
    # A load limit needs no re-authentication.
    svc.request(token, E.LOAD_LIMIT, E.TARGET_DEVICE, EUI, (5000, 60, 0))
    until = svc.reauthenticate(token, "alice-pw")
    assert until == T0 + FAST.reauth_window_s
    clock.t = until
    issued = svc.request(token, E.DISCONNECT, E.TARGET_DEVICE, EUI)
    assert accept(device(svc.signer), issued.envelopes[0], clock.t) is None
    clock.t += 1
    refused("reauth_required", svc.request, token, E.RECONNECT, E.TARGET_DEVICE, EUI)


def test_per_operator_throttle() -> None:
    policy = Policy(pbkdf2_iterations=1000, operator_limit=3, operator_window_s=600)
    svc, clock = service(policy)
    alice, bob = session(svc, "alice"), session(svc, "bob")
    for i in range(3):
        svc.request(alice, E.LOAD_LIMIT, E.TARGET_DEVICE, EUI, (1000 + i, 60, 0))
    refused("throttled", svc.request, alice, E.LOAD_LIMIT, E.TARGET_DEVICE, EUI, (1, 1, 0))
    svc.request(bob, E.LOAD_LIMIT, E.TARGET_DEVICE, EUI, (7, 60, 0))  # others unaffected
    clock.t += 600
    svc.request(alice, E.LOAD_LIMIT, E.TARGET_DEVICE, EUI, (9, 60, 0))


def test_fleet_limit_needs_a_second_approver() -> None:
    policy = Policy(pbkdf2_iterations=1000, fleet_disconnect_limit=2, fleet_window_s=3600)
    small = bytes.fromhex("4752500000000002")
    svc, clock = service(policy, group_size=lambda g: {GROUP: 5, small: 1}.get(g))
    alice, bob, carol = session(svc, "alice"), session(svc, "bob"), session(svc, "carol")
    svc.request(alice, E.DISCONNECT, E.TARGET_DEVICE, EUI)
    svc.request(bob, E.DISCONNECT, E.TARGET_DEVICE, EUI2)
    svc.request(alice, E.RECONNECT, E.TARGET_DEVICE, EUI)  # reconnects do not count
    err = refused("second_approver_required", svc.request, alice, E.DISCONNECT, 0, EUI)
    rid = err.request_id
    assert rid and svc.pending() == [rid]
    refused("same_approver", svc.approve, rid, alice)
    refused("unknown_request", svc.approve, "nope", bob)
    stale = session(svc, "carol", reauth=False)
    refused("reauth_required", svc.approve, rid, stale)
    issued = svc.approve(rid, bob)
    assert issued.request_id == rid and svc.pending() == []
    v = device(svc.signer)
    assert accept(v, issued.envelopes[0], clock.t) is None
    refused("unknown_request", svc.approve, rid, carol)  # approved once only
    # Group disconnects count as the group's size; an unknown group is always over the limit.
    clock.t += 3600
    svc.reauthenticate(carol, "carol-pw")
    assert svc.request(carol, E.LOAD_LIMIT, 1, GROUP, (0, 0, 0))
    refused("second_approver_required", svc.request, carol, E.DISCONNECT, 1, GROUP)
    refused("second_approver_required", svc.request, carol, E.DISCONNECT, 1, bytes(8))
    assert svc.request(carol, E.DISCONNECT, 1, small).counter == 1
    # A pending request lapses.
    err = refused("second_approver_required", svc.request, carol, E.DISCONNECT, 1, GROUP)
    clock.t += policy.approval_ttl_s + 1
    bob = session(svc, "bob")
    refused("request_expired", svc.approve, err.request_id, bob)


def test_notice_through_the_service_and_bad_requests() -> None:
    svc, clock = service()
    alice = session(svc, "alice")
    issued = svc.request(
        alice,
        E.DISCONNECT,
        0,
        EUI,
        not_before=T0 + 60,
        not_after=T0 + 600,
        notice_deadline=T0 + 600,
    )
    notify, action = issued.envelopes
    v = device(svc.signer, notice_required=(E.DISCONNECT,))
    assert accept(v, notify, T0) is None and accept(v, action, T0 + 60) is None
    assert issued.counter == E.decode(action).counter
    refused("unsupported_command", svc.request, alice, E.NOTIFY, 0, EUI, (bytes(32), T0))
    refused("unsupported_command", svc.request, alice, E.KEY_CHANGE, 0, EUI)
    refused("malformed", svc.request, alice, E.DISCONNECT, 0, EUI, not_after=T0 + 8 * 86400)
    refused("malformed", svc.request, alice, E.LOAD_LIMIT, 0, EUI, (1, 2, 3))
    refused("malformed", svc.request, alice, E.DISCONNECT, 0, EUI[:4])
    refused("malformed", svc.request, alice, E.DISCONNECT, 0, EUI, notice_deadline=T0 - 1)
    decisions = [(r.event, r.decision, r.reason) for r in svc.audit if r.event == "request"]
    assert decisions[0] == ("request", "signed", "")
    assert [d[2] for d in decisions[1:]] == ["unsupported_command"] * 2 + ["malformed"] * 4


OPS = st.lists(
    st.tuples(
        st.integers(0, 2),  # operator
        st.integers(0, 150),  # seconds since the previous call
        st.sampled_from((E.DISCONNECT, E.RECONNECT, E.LOAD_LIMIT)),
        st.booleans(),  # re-authenticate first
        st.integers(0, 1),  # target
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_policy_invariants_hold_on_random_runs(ops: list[tuple[int, int, int, bool, int]]) -> None:
    policy = Policy(
        pbkdf2_iterations=1,
        operator_limit=4,
        operator_window_s=900,
        fleet_disconnect_limit=3,
        fleet_window_s=1200,
        reauth_window_s=300,
    )
    svc, clock = service(policy)
    names = ("alice", "bob", "carol")
    tokens = [svc.login(n, n + "-pw") for n in names]
    for who, dt, command, reauth, t in ops:
        clock.t += dt
        if reauth:
            svc.reauthenticate(tokens[who], names[who] + "-pw")
        before = len(svc.audit)
        params = (100, 60, 0) if command == E.LOAD_LIMIT else ()
        try:
            issued = svc.request(tokens[who], command, 0, (EUI, EUI2)[t], params)
            assert len(issued.envelopes) == 1
            event("signed")
        except PolicyError as exc:
            assert exc.reason in ("reauth_required", "throttled", "second_approver_required")
            event(exc.reason)
        assert len(svc.audit) == before + 1  # every decision is logged, once
    requests = [r for r in svc.audit if r.event == "request"]
    for r in requests:
        # Per operator: accepted requests (signed or pending) within any window <= limit.
        in_window = [
            q
            for q in requests
            if q.operator == r.operator
            and q.decision in ("signed", "pending")
            and r.time - policy.operator_window_s < q.time <= r.time
        ]
        assert len(in_window) <= policy.operator_limit
        # Fleet: disconnects signed without approval within any window <= the fleet limit.
        fleet = [
            q
            for q in requests
            if q.command == E.DISCONNECT
            and q.decision == "signed"
            and r.time - policy.fleet_window_s < q.time <= r.time
        ]
        assert len(fleet) <= policy.fleet_disconnect_limit
        if r.decision == "signed" and r.command in policy.reauth_commands:
            reauths = [
                q.time
                for q in svc.audit
                if q.event == "reauth" and q.operator == r.operator and q.time <= r.time
            ]
            assert reauths and r.time - max(reauths) <= policy.reauth_window_s
