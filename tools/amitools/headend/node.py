"""The head end as a node on the radio: join server, collection engine and command API.

It speaks the protocol of docs/protocol.md through the firmware's own codec and crypto (the
native backend on CPython), keeps hot state in memory and makes durable, in the registry,
everything whose loss could reuse a nonce or a counter: DevNonce and JoinNonce before the
response goes out, the session and its reserved downlink counters before use.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ami import crypto
from ami import identity as ident
from ami.commands import envelope as E
from ami.keyschedule import group_kek, mic_key, rekey_kek, root_kek
from ami.link import frame, messages
from ami.link.headend_join import HeadEndJoin, confirm_certificate, open_request
from ami.link.replay import ReplayWindow
from ami.link.session import Opened, Rejected, message, unseal

from amitools.headend.monitor import SecurityMonitor
from amitools.headend.registry import GroupRow

JOIN_RATE = 4  # join requests per device ...
JOIN_WINDOW_MS = 300_000  # ... per five minutes
RESERVE = 4096  # downlink counters reserved per registry write (a restart skips the rest)
REQ_RESERVE = 256  # request ids reserved per registry write
MAX_FCNT = 0xFFFFFFFF
# Group commit: readings are committed together at most this often, and acknowledged only
# once committed, so an acknowledged reading is never lost with the head end.
FLUSH_MS = 5_000
UP_WINDOW = 64
# A DECOMMISSION whose result has not arrived by then revokes the identity anyway: a meter
# that never answers (or a clone that drops the command) must not join again.
DECOMMISSION_TIMEOUT_MS = 86_400_000
# Signs a command for the head end's key management: (command, target kind, target,
# params) -> envelope. The key-management role of the HSM, not an operator's.
Sign = Callable[[int, int, bytes, tuple], bytes]


class Air(Protocol):
    """The medium a head end serves on (`amitools.sim.radio.Medium` is one)."""

    def poke(self, address: bytes) -> None:
        """Re-read the node's next wakeup: it has frames to send now."""
        ...

    def add_to_group(self, group_id: bytes, address: bytes) -> None:
        """Deliver the group's frames to this member from now on."""
        ...


@dataclass
class HeadEndIdentity:
    """The head end's EUI, static signing key (unwrapped from its HSM) and trust anchor."""

    eui: bytes
    private: bytes
    ca_public: bytes


@dataclass
class PendingJoin:
    """A JOIN_RESPONSE sent, waiting for the device's JOIN_CONFIRM."""

    join: HeadEndJoin
    root: bytes  # the root key the request's mic proved (a pending one is being confirmed)
    root_pending: bool = False


@dataclass
class Session:
    """An active session: keys, uplink replay window, downlink counter and its reservation."""

    join_nonce: int
    k_up: bytes
    k_down: bytes
    down_limit: int
    down_next: int = 0
    window: ReplayWindow = field(default_factory=lambda: ReplayWindow(UP_WINDOW))

    @property
    def key_gen(self) -> int:
        return self.join_nonce & 0xFF


@dataclass
class PendingRekey:
    """Session keys delivered in a KEY_CHANGE, switched to once the device confirms."""

    counter: int
    epoch: int
    k_up: bytes
    k_down: bytes
    grace_s: int


@dataclass
class Group:
    """A multicast group: its key, generation, members and downlink counter; `rotation`
    holds a new key until every member confirmed it: (key gen, key, counters pending)."""

    group_id: bytes
    key: bytes
    key_gen: int = 1
    members: set[bytes] = field(default_factory=set)
    fcnt: int = 0
    rotation: tuple[int, bytes, dict[tuple[bytes, int], bytes]] | None = None
    fcnt_limit: int = 0  # frame counters below it are reserved in the registry
    last_counter: int = 0  # the newest command counter broadcast: a new member's floor


@dataclass
class Device:
    """A registered device's identity and live state."""

    eui: bytes
    public: bytes
    root_key: bytes
    revoked: bool
    last_dev_nonce: int | None
    join_nonce: int
    mic_key: bytes = b""
    join_times: deque = field(default_factory=deque)
    pending: PendingJoin | None = None
    session: Session | None = None
    seqs: set[int] = field(default_factory=set)
    root_gen: int = 1
    pending_root: bytes | None = None
    pending_gen: int | None = None
    previous: Session | None = None  # the session before a rekey, for uplinks in flight
    previous_until: int = 0
    rekey: PendingRekey | None = None
    decommission: int | None = None  # counter of a DECOMMISSION awaiting its result
    decommission_deadline: int = 0  # ms: revoked then even without a result


class HeadEnd:
    """Node interface: start, receive, tick, next_wakeup. API: get, set, send_command,
    groups, key lifecycle, revoke, flush. Served on a medium (`serve`), it transmits by
    itself after every API call that queued a frame: callers never wake it."""

    def __init__(self, ident_: HeadEndIdentity, registry, entropy) -> None:
        self.id = ident_
        self.address = ident_.eui
        self.registry = registry
        self.entropy = entropy
        self.stats: Counter[str] = Counter()
        self.devices: dict[bytes, Device] = {}
        for row in registry.devices():
            self.devices[row.eui] = Device(
                row.eui, row.public, row.root_key, row.revoked, row.last_dev_nonce,
                row.join_nonce, mic_key(row.root_key), root_gen=row.root_gen,
                pending_root=row.pending_root, pending_gen=row.pending_gen,
            )
            if row.decommission is not None:
                dev = self.devices[row.eui]
                dev.decommission, dev.decommission_deadline = row.decommission
        for s in registry.sessions():
            dev = self.devices.get(s.eui)
            if dev is not None:
                # Resume above the reserved limit: counters below it may have been used;
                # uplinks at or below the last accepted counter are replays.
                dev.session = Session(s.join_nonce, s.k_up, s.k_down, s.down_limit, s.down_limit,
                                      ReplayWindow(UP_WINDOW, s.up_floor))
        self.outbox: list[bytes] = []
        self.responses: dict[tuple[bytes, int], tuple[int, int, int]] = {}
        # COMMAND_RESULT per (device, command counter): (command, status, relay_state, reason)
        self.command_results: dict[tuple[bytes, int], tuple[int, int, int, int]] = {}
        # Commands sent and not yet answered: (device, counter) -> command code. A result is
        # taken only for a command sent to that device: an answer to an envelope meant for
        # another target (a copied one, refused as wrong_target) carries that envelope's
        # counter, which may equal one of this device's own (stats "stray_result"; a
        # forged broadcast's answers are strays too).
        self.outstanding: dict[tuple[bytes, int], int] = {
            (eui, counter): command for eui, counter, command in registry.outstanding()
        }
        self.strays: list[tuple[bytes, int]] = []  # (device, counter) of each stray result
        self.groups: dict[bytes, Group] = {}
        for g in registry.groups():
            # Resume above the reserved frame counters: those below may have been used.
            self.groups[g.group_id] = Group(g.group_id, g.key, g.key_gen, g.members,
                                            g.fcnt_limit, None, g.fcnt_limit, g.last_counter)
        self.monitor = SecurityMonitor()
        self._req_id = self._req_limit = registry.reserved("req_id")
        self._rows: list[tuple[bytes, int, int, int, int]] = []
        self._acks: dict[bytes, list[int]] = {}  # readings awaiting their commit, per device
        self._up_floors: dict[bytes, int] = {}  # uplink counters accepted since the commit
        self._flush_at: int | None = None
        self._now = 0
        self._air: Air | None = None
        self.readings_stored = 0
        self.duplicates = 0
        self.joins = 0

    # ---- node interface ----------------------------------------------------------------

    def serve(self, air: Air) -> None:
        """Serve on `air`: what the API queues goes on the air at once, and group members
        are registered on it as they are enrolled."""
        self._air = air

    def start(self, now_ms: int) -> list[bytes]:
        self._now = now_ms
        return []

    def receive(self, data: bytes, now_ms: int) -> tuple[str | None, list[bytes]]:
        """One uplink frame: (None, replies) if accepted, else (reason, [])."""
        self._now = now_ms
        reason, fr, dev = self.route(data)
        if reason:
            return self._reject(reason)
        if fr.ftype == frame.JOIN_REQUEST:
            return self._on_join_request(dev, fr)
        if fr.ftype == frame.JOIN_CONFIRM:
            return self._on_join_confirm(dev, fr)
        if fr.ftype != frame.DATA:
            return self._reject("unexpected")
        plain = self.open_data(dev, fr)
        if isinstance(plain, Rejected):
            return self._reject(plain.reason)
        opened = message(fr.fcnt, plain, down=False)
        if isinstance(opened, Rejected):
            return self._reject(opened.reason)
        return self._on_data(dev, opened)

    def route(self, data: bytes) -> tuple[str | None, frame.Frame | None, Device | None]:
        """Decode an uplink and find its registered sender: (reason, frame, device)."""
        try:
            fr = frame.decode(data)
        except frame.FrameError as exc:
            return exc.reason, None, None
        if fr.dst != self.address or fr.group:
            return "not_for_me", None, None
        if fr.down:
            return "unexpected", None, None
        dev = self.devices.get(fr.src)
        if dev is None:
            return "unknown_device", None, None
        if dev.revoked:
            return "revoked", None, None
        return None, fr, dev

    def open_data(self, dev: Device, fr: frame.Frame) -> bytes | Rejected:
        """The plaintext of a DATA uplink under the session of its key generation, or
        Rejected: the firmware's receive path (ami.link.session.unseal)."""
        s = dev.session
        if s is None or fr.key_id != frame.KEY_SESSION:
            return Rejected("unknown_key")
        if fr.key_gen != s.key_gen:
            p = dev.previous
            if p is None or fr.key_gen != p.key_gen or self._now > dev.previous_until:
                return Rejected("key_generation")
            s = p  # sent before the device switched to the rekeyed session
        plain = unseal(fr, s.k_up, s.window)
        if isinstance(plain, Rejected):
            return plain
        if s is dev.session:
            self._up_floors[dev.eui] = s.window.top  # durable at the next commit
            # The device uses the new keys (this uplink proves it): the old ones are done.
            # Only now: a forged frame under the new generation must not end the grace.
            dev.previous = None
        return plain

    def tick(self, now_ms: int) -> list[bytes]:
        self._now = now_ms
        if self._flush_at is not None and now_ms >= self._flush_at:
            self._commit()
        for dev in self._decommissions():
            if dev.decommission_deadline <= now_ms:
                # The result never came: revoke anyway, so a clone cannot join again.
                self.revoke(dev.eui)
                self.stats["decommission_timeout"] += 1
        out, self.outbox = self.outbox, []
        return out

    def next_wakeup(self) -> int | None:
        if self.outbox:
            return self._now
        times = [d.decommission_deadline for d in self._decommissions()]
        if self._flush_at is not None:
            times.append(self._flush_at)
        return min(times, default=None)

    def _decommissions(self) -> list[Device]:
        return [d for d in self.devices.values() if d.decommission is not None]

    # ---- command API -------------------------------------------------------------------

    def get(self, eui: bytes, register: int) -> int:
        """Queue a GET; returns its request id (the answer lands in `responses`)."""
        rid = self._next_req()
        self._queue_down(eui, messages.encode_get(rid, register))
        return rid

    def set(self, eui: bytes, register: int, value: int) -> int:
        """Queue a SET; returns its request id."""
        rid = self._next_req()
        self._queue_down(eui, messages.encode_set(rid, register, value))
        return rid

    def send_command(self, eui: bytes, envelope: bytes) -> None:
        """Queue a signed command envelope to one device (its answer: command_results)."""
        try:
            env = E.decode(envelope)
        except E.CommandError:  # a malformed one (an attack): its answer is a stray
            env = None
        if env is not None and env.target_kind == E.TARGET_DEVICE and env.target == eui:
            self.outstanding[(eui, env.counter)] = env.command
            self.registry.save_outstanding([(eui, env.counter, env.command)])
        self._queue_down(eui, messages.encode_command(envelope))

    def add_to_group(self, group_id: bytes, eui: bytes) -> None:
        """Make a device a member of a group: its key goes down wrapped under the session."""
        g = self.groups.get(group_id)
        if g is None:
            g = self.groups[group_id] = Group(group_id, self.entropy.random_bytes(16))
        dev = self.devices[eui]
        if dev.session is None:
            raise ValueError("a device joins groups over its session")
        g.members.add(eui)
        self._save_group(g)
        if self._air is not None:
            self._air.add_to_group(group_id, eui)
        self._send_group_key(g, eui)

    def _send_group_key(self, g: Group, eui: bytes) -> None:
        """GROUP_KEY to one member: the key wrapped under its session, and the floors that
        keep what was broadcast before from acting on it."""
        wrapped = crypto.aes_key_wrap(group_kek(self.devices[eui].session.k_down), g.key)
        self._queue_down(eui, messages.encode_group_key(g.group_id, g.key_gen, wrapped, g.fcnt,
                                                        g.last_counter))

    def _save_group(self, g: Group) -> None:
        self.registry.save_group(GroupRow(g.group_id, g.key, g.key_gen, g.fcnt_limit,
                                          g.last_counter, g.members))

    def broadcast(self, group_id: bytes, envelope: bytes) -> None:
        """Send a signed command to a whole group in one frame under the group key."""
        g = self.groups[group_id]
        env = E.decode(envelope)
        for eui in g.members:
            self.outstanding[(eui, env.counter)] = env.command
        self.registry.save_outstanding([(eui, env.counter, env.command) for eui in g.members])
        fcnt = g.fcnt
        g.fcnt += 1
        if g.fcnt > g.fcnt_limit or env.counter > g.last_counter:
            g.fcnt_limit = max(g.fcnt_limit, fcnt + RESERVE)
            g.last_counter = max(g.last_counter, env.counter)
            self._save_group(g)
        self.outbox.append(
            frame.seal(
                g.key, frame.DATA, self.address, group_id, frame.KEY_GROUP, g.key_gen, fcnt,
                messages.encode_command(envelope), down=True, group=True,
            )
        )
        self._transmit()

    def revoke(self, eui: bytes) -> None:
        """Revoke a device identity: it cannot join or send again, and every group it was
        in gets a new key (GROUP_KEY to the remaining members) that it never sees."""
        dev = self.devices[eui]
        dev.revoked = True
        dev.session = None
        dev.pending = None
        dev.decommission = None
        self.registry.revoke(eui)
        for g in self.groups.values():
            if eui in g.members:
                g.members.discard(eui)
                self._rekey_group(g)

    def _rekey_group(self, g: Group) -> None:
        """A new key under the next generation, at once (no grace: the old key is known to
        a revoked device); members without a session leave the group."""
        g.key_gen, g.key = g.key_gen % 255 + 1, self.entropy.random_bytes(16)
        g.fcnt = g.fcnt_limit = 0
        g.rotation = None
        g.members = {e for e in g.members if self.devices[e].session is not None}
        self._save_group(g)
        for member in sorted(g.members):
            self._send_group_key(g, member)
        self.stats["group_rekeyed_on_revocation"] += 1

    def flush(self) -> None:
        """Commit buffered readings now, then send their acknowledgements."""
        self._commit()
        self._transmit()

    def _commit(self) -> None:
        """Commit buffered readings, then queue their acknowledgements."""
        if self._rows:
            self.registry.add_readings(self._rows)
            self._rows = []
        self._commit_state()
        step = messages.MAX_ITEMS
        for eui, seqs in self._acks.items():
            dev = self.devices[eui]
            for i in range(0, len(seqs), step):
                self.outbox += self._seal(dev, messages.encode_ack(seqs[i : i + step]))
        self._acks = {}
        self._flush_at = None

    # ---- join --------------------------------------------------------------------------

    def _on_join_request(self, dev: Device, fr) -> tuple[str | None, list[bytes]]:
        keys = (dev.mic_key,) if dev.pending_root is None else (mic_key(dev.pending_root),
                                                                   dev.mic_key)
        req = open_request(fr, keys)
        if isinstance(req, Rejected):
            return self._reject(req.reason)
        root_pending = dev.pending_root is not None and req.key_index == 0
        root = dev.pending_root if root_pending else dev.root_key  # a new root is confirmed
        times = dev.join_times
        while times and times[0] <= self._now - JOIN_WINDOW_MS:
            times.popleft()
        if len(times) >= JOIN_RATE:
            return self._reject("rate_limited")
        he_join = HeadEndJoin(self.address, self.id.private, self.entropy)
        join_nonce = dev.join_nonce + 1
        response = he_join.respond(fr, req, root, join_nonce, dev.last_dev_nonce)
        if isinstance(response, Rejected):
            return self._reject(response.reason)
        times.append(self._now)
        # Durable before the response leaves: neither nonce can be accepted twice.
        self.registry.save_join(dev.eui, req.dev_nonce, join_nonce)
        dev.last_dev_nonce = req.dev_nonce
        dev.join_nonce = join_nonce
        dev.pending = PendingJoin(he_join, root, root_pending)
        self.stats["join_request"] += 1
        return None, [response]

    def _on_join_confirm(self, dev: Device, fr) -> tuple[str | None, list[bytes]]:
        p = dev.pending
        if p is None:
            return self._reject("unexpected")
        try:
            cert_bytes = confirm_certificate(fr)
            cert = ident.decode_certificate(cert_bytes)
        except (frame.FrameError, ident.CertificateError):
            return self._reject("bad_certificate")
        reason = ident.verify_certificate(
            cert, self.id.ca_public, eui=dev.eui, roles=(ident.ROLE_METER, ident.ROLE_HUB),
            now=self._now // 1000,
        )
        if reason is None and cert.public33 != ident.compress_point(dev.public):
            reason = "bad_certificate"  # a genuine certificate, but not the registered key
        if reason:
            return self._reject(reason)
        joined = p.join.confirm(fr, dev.public)
        if isinstance(joined, Rejected):
            return self._reject(joined.reason)
        dev.pending = None
        if p.root_pending:
            self.registry.promote_root(dev.eui)
            dev.root_key, dev.root_gen = p.root, dev.pending_gen or dev.root_gen + 1
            dev.mic_key = mic_key(p.root)
            dev.pending_root = dev.pending_gen = None
            self.stats["root_rotated"] += 1
        dev.previous = dev.rekey = None
        n = joined.join_nonce
        session = Session(n, joined.k_up, joined.k_down, RESERVE)
        self.registry.save_session(dev.eui, n, joined.k_up, joined.k_down, RESERVE)
        dev.session = session
        self.joins += 1
        self.stats["joined"] += 1
        return None, self._seal(dev, messages.encode_session_start(n))

    # ---- data --------------------------------------------------------------------------

    def _on_data(self, dev: Device, opened: Opened) -> tuple[str | None, list[bytes]]:
        s = dev.session
        mtype, fields = opened.mtype, opened.fields
        if mtype == messages.READINGS:
            return None, self._on_readings(dev, fields[0])
        if mtype == messages.RESPONSE:
            rid, status, reg, value = fields
            self.responses[(dev.eui, rid)] = (status, reg, value)
            self._commit_state()
            return None, []
        if mtype == messages.STATUS:
            _reason, rx_floor = fields
            # The device rebooted and accepts only counters above its floor.
            if s.down_next <= rx_floor:
                s.down_next = rx_floor + 1
            self.stats["device_reboot"] += 1
            self._commit_state()
            if s.down_next > MAX_FCNT:
                self._exhausted(dev)
            return None, []
        if mtype == messages.COMMAND_RESULT:
            counter, command, status, state, reason = fields
            key = (dev.eui, counter)
            if self.outstanding.get(key) != command:
                # An answer again (its uplink repeated), or to a command not sent to it.
                seen = self.command_results.get(key)
                again = seen is not None and seen[0] == command
                self.stats["duplicate_result" if again else "stray_result"] += 1
                if not again:
                    self.strays.append(key)
                return None, []
            del self.outstanding[key]
            self.registry.drop_outstanding(dev.eui, counter)
            self._commit_state()
            self.command_results[key] = (command, status, state, reason)
            return None, self._on_result(dev, counter, status == 0)
        if mtype == messages.EVENTS:
            events = fields[0]
            self.monitor.ingest(dev.eui, events, self._now)
            self._commit_state()
            upto = max(e[0] for e in events)
            return None, self._seal(dev, messages.encode_events_ack(upto))
        return self._reject("unexpected")

    def _on_readings(self, dev: Device, readings: list[tuple[int, int, int]]) -> list[bytes]:
        pending = self._acks.setdefault(dev.eui, [])
        for seq, t, wh in readings:
            if seq not in pending:
                # Duplicates are acknowledged again: the meter missed the acknowledgement.
                pending.append(seq)
            if seq in dev.seqs:
                self.duplicates += 1
                continue
            dev.seqs.add(seq)
            self._rows.append((dev.eui, seq, t, wh, self._now))
            self.readings_stored += 1
        if self._flush_at is None:
            self._flush_at = self._now + FLUSH_MS
        return []

    # ---- key lifecycle (docs/protocol.md section 13) -----------------------------------

    def rekey(self, eui: bytes, sign: Sign, grace_s: int = 3600) -> bytes:
        """Deliver new session keys in a signed KEY_CHANGE; switch once confirmed."""
        dev = self.devices[eui]
        s = dev.session
        if s is None:
            raise ValueError("a rekey needs a session to deliver it")
        epoch = dev.join_nonce + 1  # shares the JoinNonce space: monotonic, never reused
        self.registry.save_join(eui, dev.last_dev_nonce, epoch)
        dev.join_nonce = epoch
        keys = self.entropy.random_bytes(32)
        kek = rekey_kek(s.k_down)
        env = sign(E.KEY_CHANGE, E.TARGET_DEVICE, eui,
                   (E.KC_SESSION, 0, epoch, grace_s, crypto.aes_key_wrap(kek, keys)))
        dev.rekey = PendingRekey(E.decode(env).counter, epoch, keys[:16], keys[16:], grace_s)
        self.send_command(eui, env)
        return env

    def rotate_root(self, eui: bytes, sign: Sign) -> bytes:
        """Deliver a new root key, wrapped under the old; the device's next join under it
        confirms it (the old one is kept until then)."""
        dev = self.devices[eui]
        gen = dev.root_gen + 1
        root = self.entropy.random_bytes(16)
        self.registry.save_pending_root(eui, gen, root)  # durable before it leaves
        dev.pending_root, dev.pending_gen = root, gen
        kek = root_kek(dev.root_key)
        env = sign(E.KEY_CHANGE, E.TARGET_DEVICE, eui,
                   (E.KC_ROOT, 0, gen, 0, crypto.aes_key_wrap(kek, root)))
        self.send_command(eui, env)
        return env

    def rotate_group_key(self, group_id: bytes, sign: Sign, grace_s: int = 3600) -> int:
        """Deliver a new group key to every member with a session; broadcasts move to it
        once all of them confirmed (members without a session leave the group). Returns
        the number of members it was sent to."""
        g = self.groups[group_id]
        gen = g.key_gen % 255 + 1
        key = self.entropy.random_bytes(16)
        waiting: dict[tuple[bytes, int], bytes] = {}
        for eui in sorted(g.members):
            s = self.devices[eui].session
            if s is None:
                g.members.discard(eui)
                continue
            wrapped = crypto.aes_key_wrap(group_kek(s.k_down), key)
            env = sign(E.KEY_CHANGE, E.TARGET_DEVICE, eui,
                       (E.KC_GROUP, 0, gen, grace_s, group_id + wrapped))
            waiting[(eui, E.decode(env).counter)] = eui
            self.send_command(eui, env)
        g.rotation = (gen, key, waiting)
        return len(waiting)

    def finish_group_rotation(self, group_id: bytes) -> int:
        """Switch a group to its new key now; members that have not confirmed it leave the
        group (re-enrol them). Returns how many left."""
        g = self.groups[group_id]
        if g.rotation is None:
            return 0
        stragglers = set(g.rotation[2].values())
        g.members -= stragglers
        g.key_gen, g.key, g.fcnt, g.rotation = g.rotation[0], g.rotation[1], 0, None
        g.fcnt_limit = 0
        self._save_group(g)
        self.stats["group_key_rotated"] += 1
        return len(stragglers)

    def order_rejoin(self, eui: bytes, sign: Sign, compromise: bool = False) -> bytes:
        """Order a fresh join; with compromise the device first erases its session and
        group keys."""
        flags = E.REJOIN_COMPROMISE if compromise else 0
        env = sign(E.REJOIN, E.TARGET_DEVICE, eui, (flags,))
        self.send_command(eui, env)
        return env

    def decommission(self, eui: bytes, sign: Sign) -> bytes:
        """Order the device to erase its secrets; its identity is revoked once it confirms."""
        env = sign(E.DECOMMISSION, E.TARGET_DEVICE, eui, ())
        dev = self.devices[eui]
        dev.decommission = E.decode(env).counter
        dev.decommission_deadline = self._now + DECOMMISSION_TIMEOUT_MS
        self.registry.save_decommission(eui, (dev.decommission, dev.decommission_deadline))
        self.send_command(eui, env)
        return env

    def _on_result(self, dev: Device, counter: int, executed: bool) -> list[bytes]:
        """Advance a key change waiting for this COMMAND_RESULT; frames to send."""
        r = dev.rekey
        if r is not None and r.counter == counter:
            dev.rekey = None
            if not executed:
                return []
            dev.previous, dev.previous_until = dev.session, self._now + r.grace_s * 1000
            dev.session = Session(r.epoch, r.k_up, r.k_down, RESERVE)
            self.registry.save_session(dev.eui, r.epoch, r.k_up, r.k_down, RESERVE)
            self.stats["rekeyed"] += 1
            return self._seal(dev, messages.encode_session_start(r.epoch))
        if dev.decommission == counter:
            dev.decommission = None
            self.registry.save_decommission(dev.eui, None)
            if executed:
                self.revoke(dev.eui)
                self.stats["decommissioned"] += 1
            return []
        for g in self.groups.values():
            if g.rotation is not None and g.rotation[2].pop((dev.eui, counter), None):
                if not executed:
                    g.members.discard(dev.eui)
                if not g.rotation[2]:  # every member holds the new key: switch to it
                    self.finish_group_rotation(g.group_id)
        return []

    # ---- helpers -----------------------------------------------------------------------

    def _seal(self, dev: Device, plaintext: bytes) -> list[bytes]:
        s = dev.session
        if s is None:
            return []
        fcnt = s.down_next
        if fcnt > MAX_FCNT:
            self._exhausted(dev)
            return []
        if fcnt >= s.down_limit:
            s.down_limit = fcnt + RESERVE
            self.registry.save_down_limit(dev.eui, s.down_limit)
        s.down_next = fcnt + 1
        return [
            frame.seal(
                s.k_down, frame.DATA, self.address, dev.eui, frame.KEY_SESSION, s.key_gen, fcnt,
                plaintext, down=True,
            )
        ]

    def _commit_state(self) -> None:
        """Make the uplink counters accepted so far durable with everything pending: an
        uplink acted on is refused after a restart. Readings are acted on (acknowledged)
        only at the flush, so their counters ride on its commit."""
        if self._up_floors:
            self.registry.save_up_floors(self._up_floors)
            self._up_floors = {}
        self.registry.commit()

    def _exhausted(self, dev: Device) -> None:
        """No downlink counter is left in this session: the device must join again."""
        dev.session = None
        self.registry.forget_session(dev.eui)
        self.stats["counter_exhausted"] += 1
        self.monitor.note("counter_exhausted", dev.eui, self._now)

    def _queue_down(self, eui: bytes, plaintext: bytes) -> None:
        dev = self.devices[eui]
        self.outbox += self._seal(dev, plaintext)
        self._transmit()

    def _transmit(self) -> None:
        # As aioquic's protocol transmits after each API call: the service wakes itself on
        # its medium, so no caller has to.
        if self._air is not None:
            self._air.poke(self.address)

    def _next_req(self) -> int:
        self._req_id += 1
        if self._req_id >= self._req_limit:
            self._req_limit = self._req_id + REQ_RESERVE
            self.registry.reserve("req_id", self._req_limit)
        return self._req_id & 0xFFFF

    def _reject(self, reason: str) -> tuple[str, list[bytes]]:
        self.stats[reason] += 1
        self.monitor.note(reason, None, self._now)
        return reason, []
