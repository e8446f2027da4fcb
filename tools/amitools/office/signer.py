"""The utility's command signer (docs/protocol.md section 10), after Certicom's AMI 7100
signing appliance: an HSM holds the signing key and signs commands for the collection
engine; operator policy in front of it decides which commands get signed.

:class:`Signer` (the HSM side) holds its P-256 key only sealed: AES key wrap (RFC 3394)
under a KEK derived from the HSM master secret (``HKDF(master, "", "AMI hsm wrap", 16)``,
the derivation ``amitools.office.provision`` uses, so keys it wrapped load here). The key is
unwrapped into a local for each signature and dropped; no attribute or method returns it,
and a Signer refuses to be pickled. It signs canonical envelopes built by the firmware codec
(``ami.commands.envelope``) and assigns the per-target command counters itself, persisted in
SQLite before any envelope carrying them leaves.

:class:`SigningService` (the operator side, after Mueller's disconnect safeguards): operators
log in with credentials (PBKDF2-HMAC-SHA-256); disconnect and reconnect need a recent
re-authentication; each operator may request at most ``operator_limit`` commands per
``operator_window_s``; more than ``fleet_disconnect_limit`` disconnected devices fleet-wide
per ``fleet_window_s`` (a group counts as its size, an unknown size as over the limit) need a
second operator's ``approve``. Every decision is appended to ``audit``. Time comes from the
clock given (virtual time), never from the system.

Refusals are :class:`PolicyError` with ``reason``: ``unknown_operator``, ``bad_credentials``,
``not_authenticated`` (unknown or expired session), ``malformed`` (the envelope fields),
``unsupported_command``, ``reauth_required``, ``throttled``, ``second_approver_required``
(with ``request_id``), ``unknown_request``, ``request_expired``, ``same_approver``.

Counters: a notified action takes two counters at once, the NOTIFY the lower, because the
device must accept the NOTIFY first. The head end must deliver a notified action before any
later command for the same target: a later command raises the target's counter past it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ami import crypto
from ami.commands import envelope as E
from ami.crypto import p256

WRAP_INFO = b"AMI hsm wrap"
MAX_COUNTER = 0xFFFFFFFF
COMMAND_NAMES = {
    E.DISCONNECT: "DISCONNECT",
    E.ARM_RECONNECT: "ARM_RECONNECT",
    E.RECONNECT: "RECONNECT",
    E.LOAD_LIMIT: "LOAD_LIMIT",
    E.NOTIFY: "NOTIFY",
}
# What an operator may request directly (NOTIFY only comes with its action).
REQUESTABLE = frozenset((E.DISCONNECT, E.ARM_RECONNECT, E.RECONNECT, E.LOAD_LIMIT))


class SignerError(Exception):
    """The signer refused an operation; ``reason`` says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def hsm_kek(master_key: bytes) -> bytes:
    """The 16-byte key-wrapping key of an HSM master secret."""
    if not isinstance(master_key, bytes | bytearray) or len(master_key) < 16:
        raise ValueError("HSM master key must be at least 16 bytes")
    return crypto.hkdf_sha256(bytes(master_key), b"", WRAP_INFO, 16)


def _new_private(random_bytes: Callable[[int], bytes]) -> bytes:
    while True:
        d = random_bytes(32)
        if len(d) == 32 and 0 < int.from_bytes(d, "big") < p256.N:
            return d


class CounterStore:
    """Last issued command counter per (target kind, target), in SQLite.

    ``allocate`` commits before it returns, so a counter is never issued twice even if the
    signer stops right after; a crash may skip counters (devices only need them increasing).
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.db = sqlite3.connect(str(path))
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS counters (kind INTEGER NOT NULL, target BLOB NOT NULL,"
            " last INTEGER NOT NULL, PRIMARY KEY (kind, target)) WITHOUT ROWID"
        )
        self.db.commit()

    def last(self, kind: int, target: bytes) -> int | None:
        """The last counter issued for a target, or None."""
        row = self.db.execute(
            "SELECT last FROM counters WHERE kind = ? AND target = ?", (kind, bytes(target))
        ).fetchone()
        return None if row is None else row[0]

    def allocate(self, kind: int, target: bytes, n: int = 1) -> int:
        """Reserve n consecutive counters for a target (from 1) and return the first."""
        target = bytes(target)
        with self.db:
            last = self.last(kind, target)
            first = 1 if last is None else last + 1
            if first + n - 1 > MAX_COUNTER:
                raise SignerError("counter_exhausted", target.hex())
            self.db.execute(
                "INSERT INTO counters (kind, target, last) VALUES (?, ?, ?)"
                " ON CONFLICT (kind, target) DO UPDATE SET last = excluded.last",
                (kind, target, first + n - 1),
            )
        return first

    def close(self) -> None:
        self.db.close()


class Signer:
    """An HSM-held command signing key (see the module docstring).

    ``key_id`` is the signer key id devices know it by, ``public_key`` its 65-byte public
    key (the devices' trust anchor), ``wrapped_key`` the sealed key (safe to back up: only
    the HSM master opens it).
    """

    def __init__(
        self,
        master_key: bytes,
        wrapped_key: bytes,
        key_id: int,
        counters: CounterStore | str | Path = ":memory:",
    ) -> None:
        if not isinstance(key_id, int) or not 0 <= key_id <= 255:
            raise ValueError("key id must be 0..255")
        self._kek = hsm_kek(master_key)
        self._wrapped = bytes(wrapped_key)
        self.key_id = key_id
        # Raises AuthError under the wrong master key; the scalar lives only in this call.
        self.public_key = crypto.p256_public_key(self._unwrap())
        self.counters = counters if isinstance(counters, CounterStore) else CounterStore(counters)

    @classmethod
    def generate(
        cls,
        master_key: bytes,
        key_id: int,
        counters: CounterStore | str | Path = ":memory:",
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> Signer:
        """A signer with a fresh key, generated and wrapped inside the HSM."""
        wrapped = crypto.aes_key_wrap(hsm_kek(master_key), _new_private(random_bytes))
        return cls(master_key, wrapped, key_id, counters)

    @property
    def wrapped_key(self) -> bytes:
        return self._wrapped

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id}, public={self.public_key[1:9].hex()}...)"

    def __reduce__(self):
        raise TypeError("a Signer cannot be serialised; back up wrapped_key instead")

    def _unwrap(self) -> bytes:
        return crypto.aes_key_unwrap(self._kek, self._wrapped)

    def sign_body(self, body: bytes) -> bytes:
        """The envelope of a canonical body (checked by the firmware codec) naming this key.

        The raw signing path: no counter or policy here (see issue()).
        """
        if len(body) < E.HEADER_LEN or body[23] != self.key_id:
            raise SignerError("wrong_key_id", "the body names another signer key")
        return E.sign(body, self._unwrap())

    def issue(
        self,
        command: int,
        target_kind: int,
        target: bytes,
        not_before: int,
        not_after: int,
        params: tuple = (),
    ) -> bytes:
        """Sign a command with the target's next counter; CommandError if a field is bad."""
        E.encode(command, target_kind, target, 0, not_before, not_after, self.key_id, params)
        counter = self.counters.allocate(target_kind, target)
        return self.sign_body(
            E.encode(
                command, target_kind, target, counter, not_before, not_after, self.key_id, params
            )
        )

    def issue_with_notice(
        self,
        command: int,
        target_kind: int,
        target: bytes,
        not_before: int,
        not_after: int,
        params: tuple = (),
        notice_from: int | None = None,
        deadline: int | None = None,
    ) -> tuple[bytes, bytes]:
        """(NOTIFY, action): the action with counter c + 1 and a NOTIFY with counter c naming
        its SHA-256, valid from notice_from (default not_before) to the deadline (default
        not_after, at most 7 days later)."""
        deadline = not_after if deadline is None else deadline
        notice_from = not_before if notice_from is None else notice_from
        if not isinstance(deadline, int) or deadline < not_before:
            raise E.CommandError("malformed", "deadline before the action's not_before")
        kid = self.key_id
        E.encode(command, target_kind, target, 0, not_before, not_after, kid, params)
        E.encode(E.NOTIFY, target_kind, target, 0, notice_from, deadline, kid, (bytes(32), 0))
        first = self.counters.allocate(target_kind, target, 2)
        action = self.sign_body(
            E.encode(command, target_kind, target, first + 1, not_before, not_after, kid, params)
        )
        notify = self.sign_body(
            E.encode(
                E.NOTIFY,
                target_kind,
                target,
                first,
                notice_from,
                deadline,
                kid,
                (crypto.sha256(action), deadline),
            )
        )
        return notify, action


def bench_signer(n: int = 20000) -> float:
    """Signatures per second of the raw sign path (unwrap, codec check, ECDSA) on one core."""
    signer = Signer.generate(bytes(range(32)), 1)
    eui = bytes.fromhex("02414d4900000001")
    bodies = [
        E.encode(E.DISCONNECT, E.TARGET_DEVICE, eui, i + 1, 1_000_000, 1_003_600, 1)
        for i in range(n)
    ]
    start = time.perf_counter()
    for body in bodies:
        signer.sign_body(body)
    return n / (time.perf_counter() - start)


# --- Operator policy -----------------------------------------------------------------------


class PolicyError(Exception):
    """A refused operator action; ``reason`` as listed in the module docstring."""

    def __init__(self, reason: str, detail: str = "", request_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.request_id = request_id


@dataclass(frozen=True)
class Policy:
    """Limits of the signing service (times in seconds)."""

    reauth_commands: frozenset[int] = frozenset((E.DISCONNECT, E.ARM_RECONNECT, E.RECONNECT))
    reauth_window_s: int = 300
    session_ttl_s: int = 8 * 3600
    operator_limit: int = 20
    operator_window_s: int = 3600
    fleet_disconnect_limit: int = 100
    fleet_window_s: int = 3600
    approval_ttl_s: int = 3600
    validity_s: int = 3600  # default envelope window from the request time
    pbkdf2_iterations: int = 200_000


@dataclass
class AuditRecord:
    """One decision of the service."""

    time: int
    event: str  # add_operator, login, reauth, request, approve
    operator: str
    decision: str  # ok, signed, pending, refused
    reason: str = ""
    command: int | None = None
    target_kind: int | None = None
    target: bytes | None = None
    request_id: str | None = None
    counters: tuple[int, ...] = ()


@dataclass
class Issued:
    """Envelopes signed for one request, in sending order (a NOTIFY before its action)."""

    request_id: str
    envelopes: tuple[bytes, ...]
    counter: int  # the action's


@dataclass
class _Operator:
    name: str
    salt: bytes
    verifier: bytes
    iterations: int


@dataclass
class _Session:
    operator: str
    expires: int
    reauth_at: int | None = None


@dataclass
class _Request:
    request_id: str
    operator: str
    time: int
    expires: int
    command: int
    target_kind: int
    target: bytes
    not_before: int
    not_after: int
    params: tuple
    notice_from: int | None
    deadline: int | None
    weight: int


@dataclass
class _Window:
    """Sliding-window event counts: (time, weight) pairs younger than span."""

    span: int
    events: list[tuple[int, int]] = field(default_factory=list)

    def total(self, now: int) -> int:
        self.events = [e for e in self.events if e[0] > now - self.span]
        return sum(w for _, w in self.events)

    def add(self, now: int, weight: int = 1) -> None:
        self.events.append((now, weight))


class SigningService:
    """Operator policy in front of a Signer (see the module docstring).

    clock: a callable returning the current time in seconds (e.g. a VirtualClock's now).
    group_size: the number of devices in a group, or None if unknown.
    """

    def __init__(
        self,
        signer: Signer,
        clock: Callable[[], float],
        policy: Policy | None = None,
        group_size: Callable[[bytes], int | None] | None = None,
    ) -> None:
        self.signer = signer
        self.policy = policy or Policy()
        self.audit: list[AuditRecord] = []
        self._clock = clock
        self._group_size = group_size
        self._operators: dict[str, _Operator] = {}
        self._sessions: dict[str, _Session] = {}
        self._pending: dict[str, _Request] = {}
        self._per_operator: dict[str, _Window] = {}
        self._fleet = _Window(self.policy.fleet_window_s)

    def _now(self) -> int:
        return int(self._clock())

    def _log(self, event: str, operator: str, decision: str, **kw) -> None:
        self.audit.append(AuditRecord(self._now(), event, operator, decision, **kw))

    def _refuse(self, event: str, operator: str, reason: str, detail: str = "", **kw):
        self._log(event, operator, "refused", reason=reason, **kw)
        return PolicyError(reason, detail, kw.get("request_id"))

    # -- operators and sessions --

    def add_operator(self, name: str, password: str) -> None:
        """Enrol an operator (the password is kept only as a salted PBKDF2 verifier)."""
        if not name or name in self._operators:
            raise ValueError("operator names must be new and non-empty")
        salt = secrets.token_bytes(16)
        n = self.policy.pbkdf2_iterations
        verifier = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, n)
        self._operators[name] = _Operator(name, salt, verifier, n)
        self._log("add_operator", name, "ok")

    def _password_ok(self, op: _Operator, password: str) -> bool:
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), op.salt, op.iterations)
        return hmac.compare_digest(got, op.verifier)

    def login(self, name: str, password: str) -> str:
        """A session token for an operator; PolicyError unknown_operator or bad_credentials."""
        op = self._operators.get(name)
        if op is None:
            raise self._refuse("login", name, "unknown_operator")
        if not self._password_ok(op, password):
            raise self._refuse("login", name, "bad_credentials")
        token = secrets.token_hex(16)
        self._sessions[token] = _Session(name, self._now() + self.policy.session_ttl_s)
        self._log("login", name, "ok")
        return token

    def _session(self, token: str, event: str) -> _Session:
        s = self._sessions.get(token)
        if s is None or self._now() > s.expires:
            self._sessions.pop(token, None)
            raise self._refuse(event, "?", "not_authenticated")
        return s

    def reauthenticate(self, token: str, password: str) -> int:
        """Confirm the password again; returns when the re-authentication lapses."""
        s = self._session(token, "reauth")
        if not self._password_ok(self._operators[s.operator], password):
            raise self._refuse("reauth", s.operator, "bad_credentials")
        s.reauth_at = self._now()
        self._log("reauth", s.operator, "ok")
        return s.reauth_at + self.policy.reauth_window_s

    def logout(self, token: str) -> None:
        s = self._sessions.pop(token, None)
        if s is not None:
            self._log("logout", s.operator, "ok")

    def _reauth_fresh(self, s: _Session) -> bool:
        return s.reauth_at is not None and self._now() - s.reauth_at <= self.policy.reauth_window_s

    # -- commands --

    def request(
        self,
        token: str,
        command: int,
        target_kind: int,
        target: bytes,
        params: tuple = (),
        not_before: int | None = None,
        not_after: int | None = None,
        notice_deadline: int | None = None,
    ) -> Issued:
        """Sign a command if policy allows, else PolicyError (second_approver_required
        carries the request_id to approve). The window defaults to [now, now + validity_s];
        with notice_deadline the action is announced by a NOTIFY (sent first)."""
        s = self._session(token, "request")
        now = self._now()
        nb = now if not_before is None else not_before
        na = nb + self.policy.validity_s if not_after is None else not_after
        what = dict(command=command, target_kind=target_kind, target=bytes(target))
        if command not in REQUESTABLE:
            raise self._refuse("request", s.operator, "unsupported_command", **what)
        try:
            kid = self.signer.key_id
            E.encode(command, target_kind, target, 0, nb, na, kid, params)
            if notice_deadline is not None:
                h = (bytes(32), 0)
                E.encode(E.NOTIFY, target_kind, target, 0, now, notice_deadline, kid, h)
                if notice_deadline < nb:
                    raise E.CommandError("malformed", "deadline before not_before")
        except E.CommandError as exc:
            raise self._refuse("request", s.operator, "malformed", str(exc), **what) from exc
        if command in self.policy.reauth_commands and not self._reauth_fresh(s):
            raise self._refuse("request", s.operator, "reauth_required", **what)
        window = self._per_operator.setdefault(s.operator, _Window(self.policy.operator_window_s))
        if window.total(now) >= self.policy.operator_limit:
            raise self._refuse("request", s.operator, "throttled", **what)
        window.add(now)
        req = _Request(
            secrets.token_hex(8),
            s.operator,
            now,
            min(now + self.policy.approval_ttl_s, na),
            command,
            target_kind,
            bytes(target),
            nb,
            na,
            tuple(params),
            None if notice_deadline is None else now,
            notice_deadline,
            self._weight(command, target_kind, bytes(target)),
        )
        if req.weight and self._fleet.total(now) + req.weight > self.policy.fleet_disconnect_limit:
            self._pending[req.request_id] = req
            self._log("request", s.operator, "pending", request_id=req.request_id, **what)
            raise PolicyError("second_approver_required", "", req.request_id)
        return self._sign(req, "request", s.operator)

    def _weight(self, command: int, target_kind: int, target: bytes) -> int:
        """Devices a request disconnects (over any limit when a group's size is unknown)."""
        if command != E.DISCONNECT:
            return 0
        if target_kind == E.TARGET_DEVICE:
            return 1
        size = self._group_size(target) if self._group_size else None
        return self.policy.fleet_disconnect_limit + 1 if size is None else max(size, 1)

    def approve(self, request_id: str, token: str) -> Issued:
        """A second operator approves a pending request: it is signed."""
        s = self._session(token, "approve")
        req = self._pending.get(request_id)
        kw = dict(request_id=request_id)
        if req is None:
            raise self._refuse("approve", s.operator, "unknown_request", **kw)
        if s.operator == req.operator:
            raise self._refuse("approve", s.operator, "same_approver", **kw)
        if req.command in self.policy.reauth_commands and not self._reauth_fresh(s):
            raise self._refuse("approve", s.operator, "reauth_required", **kw)
        del self._pending[request_id]
        if self._now() > req.expires:
            raise self._refuse("approve", s.operator, "request_expired", **kw)
        return self._sign(req, "approve", s.operator)

    def pending(self) -> list[str]:
        """Ids of requests waiting for a second approver."""
        return sorted(self._pending)

    def _sign(self, req: _Request, event: str, operator: str) -> Issued:
        if req.deadline is None:
            envs: tuple[bytes, ...] = (
                self.signer.issue(
                    req.command,
                    req.target_kind,
                    req.target,
                    req.not_before,
                    req.not_after,
                    req.params,
                ),
            )
        else:
            envs = self.signer.issue_with_notice(
                req.command,
                req.target_kind,
                req.target,
                req.not_before,
                req.not_after,
                req.params,
                req.notice_from,
                req.deadline,
            )
        counters = tuple(int.from_bytes(e[11:15], "big") for e in envs)
        if req.weight:
            self._fleet.add(self._now(), req.weight)
        self._log(
            event,
            operator,
            "signed",
            command=req.command,
            target_kind=req.target_kind,
            target=req.target,
            request_id=req.request_id,
            counters=counters,
        )
        return Issued(req.request_id, envs, counters[-1])
