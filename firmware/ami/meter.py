"""The smart meter: a sans-IO state machine over the secure link.

Bytes, times and events go in; frames to transmit and timer requests come out. The caller
(a board's main loop, the unix-port node process or the host harness) owns the radio and the
clock. Every persistent write goes through sealed A/B records, and every rejected frame is
counted by reason and changes nothing.

States: UNPROVISIONED (no usable key store: refuses everything), IDLE (waiting to join),
JOINING (request sent), CONFIRMING (confirm sent, waiting for SESSION_START), ACTIVE.

Signed commands drive the disconnect relay (ami.commands, ami.relay); every rejection and
relay operation goes to the persistent security event log (ami.events), and alarms go
upstream until the head end acknowledges them.

Key lifecycle (docs/protocol.md section 13): signed KEY_CHANGE commands deliver wrapped keys
(session rekey, group key, root key, command signer), make-before-break; REJOIN orders a
fresh join; DECOMMISSION and the tamper input erase every secret but keep the event log.
"""

from ami import relay as R
from ami.commands import envelope as E
from ami.commands.execute import CommandExecutor
from ami.commands.verify import RECORD as CMDSTATE_RECORD
from ami.commands.verify import CommandVerifier
from ami.crypto import AuthError, aes_key_unwrap, p256
from ami.events import (
    ALARM,
    CRITICAL,
    KEY_CHANGE,
    KEY_FALLBACK,
    REJOIN,
    ZEROIZED,
    EventLog,
    kind_for,
)
from ami.keyschedule import derive_storage_key, rekey_kek
from ami.keystore import RECORD as KEYSTORE_RECORD
from ami.keystore import Keystore, KeystoreError
from ami.link import frame, messages
from ami.link.groups import RECORD as GROUPS_RECORD
from ami.link.groups import Groups
from ami.link.join import DEVNONCE_RECORD, DeviceJoin, Pending
from ami.link.replay import ReplayWindow
from ami.link.session import Rejected, Session, open_data
from ami.readings import ReadingQueue
from ami.runtime import const
from ami.store.counters import CounterExhausted, RxFloor, TxCounter
from ami.store.records import RecordCorrupt, RecordStore

UNPROVISIONED = "unprovisioned"
IDLE = "idle"
JOINING = "joining"
CONFIRMING = "confirming"
ACTIVE = "active"

FIRMWARE_VERSION = const(0x000100)
SESSION_RECORD = "session"  # join nonce (4) || k_up (16) || k_down (16); nonce alone: no keys
_CONFIG = "config"
_TX = "txctr"
_RX = "rxfloor"
_REKEY = "rekey"
# Records whose rollback would reuse a nonce or a counter, resurrect a key, replay a
# command or close a relay the head end opened: their generations are anchored outside the
# storage (ami.ports.anchor).
ANCHORED = (KEYSTORE_RECORD, DEVNONCE_RECORD, SESSION_RECORD, _REKEY, _TX, _RX, CMDSTATE_RECORD,
            GROUPS_RECORD, R.RECORD)
# Records that hold keys: erased by a zeroization, levelled at boot (Meter._level_secrets).
_SECRETS = (KEYSTORE_RECORD, SESSION_RECORD, _REKEY, GROUPS_RECORD)
_REJOIN_DELAY_MS = const(2000)
_ZERO_COMMAND = const(1)  # ZEROIZED causes (the top 2 bits of the event's detail)
_ZERO_TAMPER = const(2)
_GEN_MASK = const(0x3FFF)  # the key store generation in the low 14 bits
_MAX_BATCH = const(13)
_STATUS_REBOOT = const(1)
_MIN_INTERVAL = const(60)  # reading interval bounds, seconds
_MAX_INTERVAL = const(86400)
_MAX_U32 = const(0xFFFFFFFF)


class Config:
    """Tunable behaviour; defaults follow docs/protocol.md."""

    def __init__(self, **kw):
        self.interval_s = kw.get("interval_s", 900)
        self.join_timeout_ms = kw.get("join_timeout_ms", 20000)
        self.join_backoff_ms = kw.get("join_backoff_ms", 15000)
        # Capped at 10 minutes: at 50 % frame loss a join (four frames) completes one try in
        # sixteen, and a meter must still join within the day (about 190 tries).
        self.join_backoff_max_ms = kw.get("join_backoff_max_ms", 600000)
        self.join_spread_ms = kw.get("join_spread_ms", 10000)
        self.retry_ms = kw.get("retry_ms", 60000)
        self.max_queue = kw.get("max_queue", 192)
        self.reserve = kw.get("reserve", 64)
        self.counter_cap = kw.get("counter_cap", 0xFFFFFFFF)
        self.remote_reconnect = kw.get("remote_reconnect", False)
        # Commands this device acts on only after a signed NOTIFY announced them (10.2).
        self.notice_required = tuple(kw.get("notice_required", ()))


class Meter:
    """One meter. `start`, `receive` and `tick` return frames to transmit."""

    def __init__(self, storage, device_secret, entropy, metrology, config=None, relay=None,
                 anchor=None):
        """anchor: the anchor port (ami.ports.anchor) that makes rollback of the ANCHORED
        records detectable; None: no rollback detection (a bare development board)."""
        self.cfg = config or Config()
        self.storage = storage  # the flash this meter lives on (kept across a reboot)
        self.anchor = anchor
        self.stats = {}
        self.state = UNPROVISIONED
        self._entropy = entropy
        self._metrology = metrology
        self._records = RecordStore(
            storage, derive_storage_key(device_secret), entropy, anchor, ANCHORED
        )
        self._wake = {}  # timer name -> absolute ms
        self._now = 0
        self._status_at = -60000
        self._join_failures = 0
        self._pending = None  # join or rekey keys waiting for SESSION_START
        self._session = None
        self._rejoin = False  # join even while a session is active (make-before-break)
        self._fault = None  # why the key store (or configuration) is unusable: logged at start()
        self._after = None  # what a lifecycle command does once its answer is sealed
        self.eui = self.address = None
        # Readings not yet acknowledged (ami.readings), before the key store like the log.
        self.queue = ReadingQueue(self._records, max_queue=self.cfg.max_queue)
        records = self._records
        self.events = EventLog(records)  # before the key store: it outlives a zeroization
        self.keys = None
        try:
            self.keys = Keystore.load(records)
        except KeystoreError as exc:
            self._count(exc.reason)
            self._fault = exc.reason
            if exc.reason == "zeroized":
                self._wipe_secrets()  # finish a zeroization a power cut interrupted
            return
        if self._zeroizing():
            # The zeroization was logged, then the power failed before the key store's
            # tombstone landed: finish it rather than come back with every key.
            self._wipe_secrets()
            self.keys = None
            self._fault = "zeroized"
            self._count("zeroized")
            return
        self._join = DeviceJoin(self.keys, records, entropy)
        self.eui = self.address = self.keys.eui
        if relay is None:
            from ami.ports.gpio import SimRelay

            relay = SimRelay(closed=True)
        self.relay = R.RelayController(
            records, relay, R.RelayPolicy(remote_reconnect=self.cfg.remote_reconnect)
        )
        self.groups = Groups(records)
        verifier = CommandVerifier(records, self.keys.signers(0), self.eui, self.groups.ids(),
                                   notice_required=self.cfg.notice_required)
        self.commands = CommandExecutor(verifier, self.relay, self.events, self._lifecycle)
        self._load_state()
        self._level_secrets()

    # ---- persistence -------------------------------------------------------------------

    def _load_state(self):
        """Restore queue, configuration and session; a corrupt session means rejoin."""
        # The queue loaded itself; a corrupt record there only makes its seqs skip ahead.
        for _name in self.queue.corrupt:
            self._count("record_corrupt")
        try:
            c = self._records.read(_CONFIG)
            if c:
                interval = int.from_bytes(c[0:4], "big")
                if not _MIN_INTERVAL <= interval <= _MAX_INTERVAL:
                    raise RecordCorrupt(_CONFIG, "interval")  # keep the default
                self.cfg.interval_s = interval
        except RecordCorrupt:
            self._count("record_corrupt")
            self._fault = "record_corrupt"
        self.state = IDLE
        try:
            s = self._records.read(SESSION_RECORD)
        except RecordCorrupt:
            self._count("record_corrupt")
            s = None
        self.last_join_nonce = None
        if s:
            self.last_join_nonce, k_up, k_down = session_keys(s)
            if k_up is not None:
                try:
                    self._activate(self.last_join_nonce, k_up, k_down, restore=True)
                except RecordCorrupt:
                    self._count("record_corrupt")
                    self._session = None
                    self.state = IDLE
        if self._session is not None:
            self._restore_rekey()

    def _level_secrets(self):
        """Bring the older slot of every key record level with the newest, so that keys a
        write replaced or erased (a join's previous session, a compromise rejoin or a root
        promotion cut between its two writes) do not outlive the next boot. Costs a write
        only where the slots differ."""
        for name in _SECRETS:
            try:
                data = self._records.read(name)
                if data is not None:
                    self._records.overwrite(name, data)
            except RecordCorrupt:
                pass  # counted where the record is used
            except OSError:
                self._count("storage")

    def info(self):
        """What an observer may know of this meter, JSON-ready and the same on every runtime:
        stats, state, queued readings, next seq, relay state, event counts by kind and the
        recent command verdicts ([time, envelope tag hex, command, verdict])."""
        provisioned = self.state != UNPROVISIONED
        return {"stats": self.stats, "state": self.state, "queue": len(self.queue),
                "next_seq": self.next_seq,
                "relay": self.relay.state if provisioned else None,
                "events": self.event_counts(),
                "commands": [[t, g.hex(), c, v] for t, g, c, v in self.commands.log]
                if provisioned else []}

    @property
    def next_seq(self):
        """The seq the next reading gets."""
        return self.queue.next_seq

    @property
    def energy(self):
        """Energy (Wh) at the newest reading, as persisted with it."""
        return self.queue.energy

    # ---- session -----------------------------------------------------------------------

    def _activate(self, join_nonce, k_up, k_down, restore=False, window=None):
        s = Session(join_nonce, k_up, k_down)
        r = self._records
        if restore:
            # Counters of a stored session must exist: a deleted record would otherwise
            # restart at zero under keys that already used those counters.
            if r.read(_TX) is None or r.read(_RX) is None:
                raise RecordCorrupt(_TX, "session without counters")
            s.tx = TxCounter(r, _TX, self.cfg.reserve, self.cfg.counter_cap)
            s.rx = RxFloor(r, _RX, self.cfg.reserve)
        else:
            # The session record first, then the counters: a cut between the two leaves new
            # keys with old, higher counter limits (only skips counters), or new keys without
            # counter records (the session is then refused at boot: a rejoin).
            r.write(SESSION_RECORD, join_nonce.to_bytes(4, "big") + k_up + k_down)
            s.tx = TxCounter(r, _TX, self.cfg.reserve, self.cfg.counter_cap, start=0)
            s.rx = RxFloor(r, _RX, self.cfg.reserve, fresh=True)
        if window is None:
            window = ReplayWindow(64, s.rx.floor if restore else None)
        s.window = window
        self._session = s
        self.last_join_nonce = join_nonce
        self.state = ACTIVE

    def drop_session(self, reason):
        """Give up the active session (counted as reason) and join again after a backoff."""
        self._count(reason)
        self._session = None
        self.state = IDLE
        self._wake["join"] = self._now + self._backoff()

    def _forget_session_keys(self):
        """Erase the session keys from both slots, keeping the join nonce (monotonic)."""
        self._records.overwrite(SESSION_RECORD, (self.last_join_nonce or 0).to_bytes(4, "big"))
        self._session = None

    # ---- inputs ------------------------------------------------------------------------

    def start(self, now_ms):
        """Power-on: schedule the first join or resume the session; returns frames."""
        self._now = now_ms
        if self.state == UNPROVISIONED:
            if self._fault not in (None, "unprovisioned", "zeroized"):
                self.events.log_reason(now_ms // 1000, self._fault)  # e.g. a rollback
            return []
        now_s = now_ms // 1000
        boot = self.relay.boot(now_s)  # the relay returns to the last commanded state
        self.events.log_reason(now_s, "reboot")
        self._relay_event(now_s, boot)
        if self.events.corrupt:
            self.events.log_reason(now_s, "record_corrupt", len(self.events.corrupt))
        if self._fault:  # the stored configuration was refused
            self.events.log_reason(now_s, self._fault)
        if self.state == ACTIVE and self._session.rx.floor == _MAX_U32:
            # No downlink can ever be above this floor: the session is used up.
            self.events.log_reason(now_s, "counter_exhausted")
            self.drop_session("counter_exhausted")
        self._schedule_reading(now_ms)
        if self._pending is not None:
            self._wake["rekey"] = self._pending.deadline_s * 1000
        if self.state == ACTIVE:
            s = self._session
            out = self._send_status(s.rx.floor)
            return out + self._send_queue() + self._send_events()
        self._wake["join"] = now_ms + self._uniform(0, self.cfg.join_spread_ms)
        return []

    def receive(self, data, now_ms):
        """Handle one received frame: (None, frames) if accepted, else (reason, [])."""
        self._now = now_ms
        if self.state == UNPROVISIONED:
            return self._reject(UNPROVISIONED)
        try:
            fr = frame.decode(data)
        except frame.FrameError as exc:
            return self._reject(exc.reason)
        if fr.group:
            return self._on_group_frame(fr)
        if fr.dst != self.eui:
            return self._reject("not_for_me")
        if fr.src != self.keys.he_eui:
            return self._reject("unknown_key")
        if fr.ftype == frame.JOIN_RESPONSE:
            return self._on_join_response(fr)
        if fr.ftype != frame.DATA or not fr.down:
            return self._reject("unexpected")
        if fr.key_id != frame.KEY_SESSION:
            return self._reject("unknown_key")
        p = self._pending
        if p is not None and fr.key_gen == p.key_gen and self.state != JOINING:
            return self._on_session_start(fr)  # a join's or a rekey's confirmation
        s = self._session
        if s is None:
            return self._reject("unknown_key")
        out = s.open(fr)
        if isinstance(out, Rejected):
            reason, frames = self._reject(out.reason)
            floor = s.window.floor
            if reason == "replay" and floor is not None and fr.fcnt <= floor \
                    and now_ms - self._status_at >= 60000:
                # The head end has not heard our post-reboot STATUS (lost on the air): say it
                # again, at most once a minute, instead of refusing its downlinks for good.
                frames = self._send_status(floor)
            return reason, frames
        if out.mtype == messages.COMMAND:
            return self._on_command(out.fields[0])
        return None, self._dispatch(out.mtype, out.fields)

    def tick(self, now_ms):
        """Run the timers that are due; returns frames."""
        self._now = now_ms
        out = []
        for name in ("button", "join", "confirm", "rekey", "reading", "retry", "events"):
            due = self._wake.get(name)
            if due is not None and due <= now_ms:
                del self._wake[name]
                out += getattr(self, "_on_" + name)()
        return out

    def next_wakeup(self):
        """Absolute ms of the earliest timer, or None."""
        best = None
        for t in self._wake.values():
            if best is None or t < best:
                best = t
        return best

    # ---- join --------------------------------------------------------------------------

    def _on_join(self):
        if self.state == ACTIVE and not self._rejoin:
            return []
        self.state = JOINING
        self._drop_rekey()
        self._wake["confirm"] = self._now + self.cfg.join_timeout_ms
        # A delivered root key is tried first, to confirm it, ROOT_ATTEMPTS times at most.
        if self.keys.begin_join()[1]:
            # The head end never took the delivered root key: back to the active one.
            self.events.log(self._now // 1000, KEY_FALLBACK, 1)
        try:
            return [self._join.request()]
        except ValueError:
            # The DevNonce space is used up: this identity can never join again. Stay
            # safe (readings keep queueing) and wait to be provisioned again.
            self._wake.pop("confirm", None)
            self.state = IDLE if self._session is None else ACTIVE
            self._count("counter_exhausted")
            self.events.log_reason(self._now // 1000, "counter_exhausted")
            return []

    def _on_confirm(self):
        """No response or no SESSION_START in time: back off and try again."""
        if self.state in (JOINING, CONFIRMING):
            self._join_failures += 1
            self._count("join_timeout")
            self._pending = None
            self.state = IDLE if self._session is None else ACTIVE
            self._wake["join"] = self._now + self._backoff()
        return []

    def _on_join_response(self, fr):
        if self.state != JOINING:
            return self._reject("unexpected")
        out = self._join.respond(fr, self.last_join_nonce)
        if isinstance(out, Rejected):
            return self._reject(out.reason)
        self._pending = out.pending
        self.state = CONFIRMING
        return None, [out.confirm]

    def _on_session_start(self, fr):
        """A frame under pending keys. A join's keys start with its SESSION_START; rekeyed
        keys with any downlink that authenticates under them (the head end switched on our
        COMMAND_RESULT), so a lost SESSION_START costs nothing."""
        p = self._pending
        rekey = p.deadline_s is not None
        window = ReplayWindow(64)  # the new session's, from its first frame
        out = open_data(fr, p.k_down, window, True)
        if isinstance(out, Rejected):  # a bad tag or message: not the head end's confirmation
            return self._reject("auth")
        mtype, fields = out.mtype, out.fields
        if not rekey and (
            mtype != messages.SESSION_START or fields[0] != p.join_nonce or fr.fcnt != 0
        ):
            return self._reject("key_confirmation")
        self._activate(p.join_nonce, p.k_up, p.k_down, window=window)
        self._session.rx.note(fr.fcnt)
        self._pending = None
        now_s = self._now // 1000
        if rekey:  # the pending copy is no longer needed; the frame is an ordinary downlink
            self._records.wipe(_REKEY)
            self._wake.pop("rekey", None)
            self._count("rekeyed")
            self.events.log(now_s, KEY_CHANGE, E.KC_SESSION)
            if mtype == messages.COMMAND:
                return self._on_command(fields[0])
            return None, self._dispatch(mtype, fields) + self._send_queue()
        self._join_failures = 0
        self._rejoin = False
        self._wake.pop("confirm", None)
        self._count("joined")
        if self.keys.join_confirmed():  # the head end used the delivered root key
            self.events.log(now_s, KEY_CHANGE, E.KC_ROOT)
        return None, self._send_queue() + self._send_events()

    def _backoff(self):
        d = self.cfg.join_backoff_ms << min(self._join_failures, 16)
        d = min(d, self.cfg.join_backoff_max_ms)
        return self._uniform(d // 2, d)

    # ---- readings and commands ---------------------------------------------------------

    def _schedule_reading(self, now_ms):
        period = self.cfg.interval_s * 1000
        self._wake["reading"] = (now_ms // period + 1) * period

    def _on_reading(self):
        now_s = self._now // 1000
        previous = self.energy
        energy = self._metrology.energy_wh(now_s)
        if self.relay.limit_w and previous:
            # Demand is the interval's average power, as a meter's demand register keeps it.
            self._on_demand(now_s, (energy - previous) * 3600 // self.cfg.interval_s)
        try:
            self.queue.append(now_s, energy)  # in flash when it returns, with the energy
        except OverflowError:
            # The reading sequence space is used up: keep running, count and log it.
            self._count("counter_exhausted")
            self.events.log_reason(now_s, "counter_exhausted")
        for _ in range(self.queue.overflow):
            self._count("queue_overflow")
        self._schedule_reading(self._now)
        return self._send_queue() + self._send_events()

    def _on_retry(self):
        return self._send_queue()

    def _send_queue(self):
        """Send the oldest unacknowledged readings; retry later until they are acknowledged."""
        if not len(self.queue) or self.state != ACTIVE:
            return []
        self._wake["retry"] = self._now + self.cfg.retry_ms + self._uniform(0, self.cfg.retry_ms)
        return self._send(messages.encode_readings(self.queue.pending(_MAX_BATCH)))

    def _dispatch(self, mtype, fields):
        if mtype == messages.ACK:
            acked = fields[0]
            # Not persisted here: the next reading's write drops them from flash. A power cut
            # before that only resends acknowledged readings, which the head end drops.
            self.queue.ack(acked)
            if not len(self.queue):
                self._wake.pop("retry", None)
            return []
        if mtype == messages.GET:
            req_id, reg = fields
            status, value = self._read_register(reg)
            return self._send(messages.encode_response(req_id, status, reg, value))
        if mtype == messages.SET:
            req_id, reg, value = fields
            status = self._write_register(reg, value)
            return self._send(messages.encode_response(req_id, status, reg, value))
        if mtype == messages.EVENTS_ACK:
            self.events.ack(fields[0])
            if not self.events.pending_count:
                self._wake.pop("events", None)
            return []
        if mtype == messages.GROUP_KEY:
            group_id, key_gen, wrapped, next_fcnt, last_counter = fields
            reason = self.groups.install(self._session.k_down, group_id, key_gen, wrapped,
                                         floor=next_fcnt - 1 if next_fcnt else None)
            if reason:
                self._count(reason)
                self.events.log_reason(self._now // 1000, reason)
            else:
                # Start the group's command counter at the head end's last broadcast, so
                # an envelope sent before this member joined never acts here.
                self.commands.verifier.set_groups(
                    [(g, last_counter) if g == group_id and last_counter else g
                     for g in self.groups.ids()])
            return []
        if mtype == messages.SESSION_START:
            return []  # a repeated rekey confirmation, already acted on
        self._count("unexpected")
        return []

    # ---- commands, relay, events -------------------------------------------------------

    def _on_command(self, envelope, group=None):
        """(refusal reason or None, frames): a refused command is a rejection too, but its
        COMMAND_RESULT still goes upstream, unless it came in a group frame (group: its id)
        and failed its checks: then nothing is sent, so one holder of a group key cannot
        make every member transmit."""
        now_s = self._now // 1000
        if self.keys.expire(now_s):  # a retired signer's grace ended
            self.commands.verifier.set_anchors(self.keys.signers(now_s))
        self._after = None
        reason, result = self.commands.handle(envelope, now_s, group)
        if reason:
            self._count(reason)
        if result is None:
            return reason, []
        out = self._send(result) + self._send_events()
        after, self._after = self._after, None
        if after is not None:
            out += after()  # acts that must follow the answer (it goes under the old keys)
        return reason, out

    def _on_group_frame(self, fr):
        """A group frame: readable with the group key, but only a signed COMMAND acts."""
        if self.groups.current(fr.dst) is None:
            return self._reject("not_for_me")
        if fr.key_id != frame.KEY_GROUP or fr.src != self.keys.he_eui:
            return self._reject("unknown_key")
        key = self.groups.key(fr.dst, fr.key_gen, self._now // 1000)
        if key is None:
            return self._reject("key_generation")
        out = open_data(fr, key, self.groups.window(fr.dst, fr.key_gen), True)
        if isinstance(out, Rejected):
            return self._reject(out.reason)
        if out.mtype != messages.COMMAND:
            return self._reject("unexpected")
        if self.state != ACTIVE:
            return self._reject("unknown_key")  # no session to answer on: act on it later
        return self._on_command(out.fields[0], fr.dst)

    def event_counts(self):
        """Events held in the security log, counted by kind name."""
        from ami.events import kind_name

        counts = {}
        if self.events is not None:
            for ev in self.events.events():
                name = kind_name(ev[2])
                counts[name] = counts.get(name, 0) + 1
        return counts

    def press_button(self, now_ms):
        """The local restore button was pressed: handled at the next tick (now)."""
        if self.state != UNPROVISIONED:
            self._wake["button"] = now_ms

    def _on_button(self):
        now_s = self._now // 1000
        self._relay_event(now_s, self.relay.button(now_s))
        return self._send_events()

    def _send_status(self, floor):
        """STATUS after a reboot: the head end moves its downlink counter above the floor
        (no floor, nothing received yet, lets it keep its counter: 0)."""
        self._status_at = self._now
        return self._send(messages.encode_status(_STATUS_REBOOT, floor or 0))

    def _on_demand(self, now_s, watts):
        self._relay_event(now_s, self.relay.demand(now_s, watts))

    def _relay_event(self, now_s, outcome):
        """Log a relay outcome the meter caused itself (button, load limit, boot). One that
        moved the relay is logged as an alarm, so it goes upstream until acknowledged: the
        head end learns of every operation (a command's is confirmed by COMMAND_RESULT)."""
        if outcome.event:
            kind = kind_for(outcome.event)
            if kind is not None:
                self.events.log(now_s, kind, 0, ALARM if outcome.op else None)

    def _send_events(self):
        """Send pending alarms upstream; resend until the head end acknowledges them."""
        alarms = self.events.pending_alarms()
        if not alarms or self.state != ACTIVE:
            return []
        self._wake["events"] = self._now + self.cfg.retry_ms + self._uniform(0, self.cfg.retry_ms)
        return self._send(messages.encode_events(alarms))

    def _on_events(self):
        return self._send_events()

    def _read_register(self, reg):
        if reg == messages.REG_ENERGY:
            return messages.ST_OK, self.energy & 0xFFFFFFFF
        if reg == messages.REG_INTERVAL:
            return messages.ST_OK, self.cfg.interval_s
        if reg == messages.REG_FIRMWARE:
            return messages.ST_OK, FIRMWARE_VERSION
        if reg == messages.REG_QUEUED:
            return messages.ST_OK, len(self.queue)
        return messages.ST_UNKNOWN_REGISTER, 0

    def _write_register(self, reg, value):
        if reg == messages.REG_INTERVAL:
            if not _MIN_INTERVAL <= value <= _MAX_INTERVAL:
                return messages.ST_BAD_VALUE
            self.cfg.interval_s = value
            self._records.write(_CONFIG, value.to_bytes(4, "big"))
            self._schedule_reading(self._now)
            return messages.ST_OK
        if reg in (messages.REG_ENERGY, messages.REG_FIRMWARE, messages.REG_QUEUED):
            return messages.ST_READ_ONLY
        return messages.ST_UNKNOWN_REGISTER

    def _send(self, plaintext):
        """Seal one uplink DATA frame under the session; counter exhaustion forces a rejoin."""
        s = self._session
        try:
            fcnt = s.tx.next()
        except CounterExhausted:
            self.drop_session("counter_exhausted")
            return []
        ks = self.keys
        return [
            frame.seal(
                s.k_up, frame.DATA, ks.eui, ks.he_eui, frame.KEY_SESSION, s.key_gen, fcnt,
                plaintext,
            )
        ]

    # ---- key lifecycle (docs/protocol.md section 13) -----------------------------------

    def _lifecycle(self, env, now_s):
        """Act on a verified, committed KEY_CHANGE, REJOIN or DECOMMISSION: an Outcome."""
        c = env.command
        state = self.relay.state
        if c == E.DECOMMISSION:
            self._after = self._decommission
            return R.Outcome(R.EXECUTED, "ok", state, env.counter)
        if c == E.REJOIN:
            compromise = env.args[0] & E.REJOIN_COMPROMISE
            self._after = self._compromised if compromise else self._order_rejoin
            return R.Outcome(R.EXECUTED, "ok", state, env.counter)
        kind, key_id, gen, grace_s, material = env.args
        if not self.keys.signer_active(env.key_id):
            # A signer in its rotation grace (perhaps retired because it leaked) still signs
            # ordinary commands, but authorises no key change.
            self._count("retiring_signer")
            return R.Outcome(R.REFUSED, "policy", state, env.counter, "retiring_signer")
        reason = None
        if kind == E.KC_SIGNER:
            if key_id == env.key_id:
                reason = "bad_param"  # a signer cannot replace itself with itself
            else:
                try:
                    public = p256.encode_point(*p256.decode_point(material))
                except ValueError:
                    public = None
                    reason = "bad_param"
                if public is not None:
                    self.keys.install_signer(key_id, public, env.key_id, grace_s, now_s)
                    self.commands.verifier.set_anchors(self.keys.signers(now_s))
        elif kind == E.KC_ROOT:
            reason = self.keys.install_root(gen, material)
            if reason is None:
                self._after = self._order_rejoin  # confirm the new root by a join under it
        elif self._session is None:
            reason = "no_session"
        elif kind == E.KC_GROUP:
            if gen > 255:
                reason = "bad_param"
            else:
                reason = self.groups.install(
                    self._session.k_down, material[:8], gen, material[8:], now_s, grace_s
                )
                if reason is None:
                    self.commands.verifier.set_groups(self.groups.ids())
        else:  # KC_SESSION
            reason = self._install_rekey(gen, material, now_s + grace_s)
        if reason is not None:
            return R.Outcome(R.REFUSED, "bad_param" if reason == "malformed" else reason,
                             state, env.counter, reason)
        if kind != E.KC_SESSION:  # a rekey is logged when it is confirmed
            self.events.log(now_s, KEY_CHANGE, kind)
        return R.Outcome(R.EXECUTED, "ok", state, env.counter)

    def _install_rekey(self, epoch, wrapped, deadline_s):
        """Keep delivered session keys pending (persisted) until SESSION_START under them."""
        s = self._session
        if epoch <= (self.last_join_nonce or 0) or epoch & 0xFF == s.key_gen:
            return "key_generation"
        kek = rekey_kek(s.k_down)
        try:
            keys = aes_key_unwrap(kek, wrapped)
        except (AuthError, ValueError):
            return "unwrap_failed"
        deadline_s = min(deadline_s, 0xFFFFFFFF)
        self._records.write(_REKEY, epoch.to_bytes(4, "big") + keys
                            + deadline_s.to_bytes(4, "big"))
        self._pending = Pending(epoch, keys[:16], keys[16:32], deadline_s)
        self._wake["rekey"] = deadline_s * 1000
        return None

    def _restore_rekey(self):
        """At boot: delivered session keys still waiting for their confirmation."""
        try:
            r = self._records.read(_REKEY)
        except RecordCorrupt:
            self._count("record_corrupt")
            return
        if r and len(r) == 40:
            epoch = int.from_bytes(r[0:4], "big")
            if epoch > (self.last_join_nonce or 0):
                self._pending = Pending(epoch, r[4:20], r[20:36], int.from_bytes(r[36:40], "big"))

    def _drop_rekey(self):
        p = self._pending
        self._pending = None
        if p is not None and p.deadline_s is not None:
            self._wake.pop("rekey", None)
            self._records.wipe(_REKEY)

    def _on_rekey(self):
        """The delivered session keys were never confirmed: give them up and rejoin."""
        p = self._pending
        if p is None or p.deadline_s is None:
            return []
        self._drop_rekey()
        self.events.log(self._now // 1000, KEY_FALLBACK, E.KC_SESSION)
        return self._order_rejoin()

    def _order_rejoin(self):
        """Join again while the current session keeps working until the new one starts."""
        self._rejoin = True
        self._join_failures = 0
        self.events.log(self._now // 1000, REJOIN, 0)
        self._wake["join"] = self._now + _REJOIN_DELAY_MS
        return []

    def _compromised(self):
        """Keys may be known to an attacker: erase session, pending and group keys, then
        join afresh (a new ECDH: nothing recorded under the old keys helps)."""
        self._drop_rekey()
        self._forget_session_keys()
        self.groups.clear()
        self.commands.verifier.set_groups(())
        self.events.log(self._now // 1000, REJOIN, 1, CRITICAL)
        self.drop_session("compromise")
        self._wake["join"] = self._now + _REJOIN_DELAY_MS
        return []

    def _decommission(self):
        self._zeroize(_ZERO_COMMAND)
        return []

    def tamper(self, now_ms):
        """The tamper input fired: erase every secret at once (no network needed). Also when
        the meter already refuses to run: a rolled-back or damaged key store, and the
        session, pending and group keys, may still be in flash (erased records cost no write)."""
        self._now = now_ms
        self._zeroize(_ZERO_TAMPER)

    def _zeroize(self, cause):
        """Erase every secret but keep the event log, then refuse to operate until the
        device is provisioned again. The log entry comes first, naming the key store
        generation it erases: a boot after a cut finds it pending with that generation
        still in place (_zeroizing) and finishes; a key store provisioned again since has
        a newer generation."""
        self.events.log(self._now // 1000, ZEROIZED, cause << 14 | self._keystore_gen(),
                        CRITICAL)
        self._wipe_secrets()
        self._session = self._pending = self.keys = None
        self._wake = {}
        self.state = UNPROVISIONED
        self._fault = "zeroized"
        self._count("zeroized")

    def _keystore_gen(self):
        try:
            return self._records.generation(KEYSTORE_RECORD) & _GEN_MASK
        except RecordCorrupt:
            return 0

    def _zeroizing(self):
        """True if a pending ZEROIZED alarm names the key store generation now in flash
        (the key store is scanned only if such an alarm is pending)."""
        details = self.events.pending_details(ZEROIZED)
        if not details:
            return False
        gen = self._keystore_gen()
        for detail in details:
            if detail & _GEN_MASK == gen:
                return True
        return False

    def _wipe_secrets(self):
        """Key store first (it marks the device zeroized, so a boot after a cut finishes
        the rest), then the session, pending and group keys."""
        for name in _SECRETS:
            self._records.wipe(name)

    # ---- helpers -----------------------------------------------------------------------

    def _uniform(self, lo, hi):
        if hi <= lo:
            return lo
        r = int.from_bytes(self._entropy.random_bytes(4), "big")
        return lo + r % (hi - lo + 1)

    def _count(self, reason):
        self.stats[reason] = self.stats.get(reason, 0) + 1

    def _reject(self, reason):
        self._count(reason)
        if self.state != UNPROVISIONED:
            self.events.log_reason(self._now // 1000, reason)
        return reason, []


def session_keys(record):
    """(join nonce, k_up, k_down) of a session record; the keys are None once erased."""
    nonce = int.from_bytes(record[0:4], "big")
    if len(record) != 36:
        return nonce, None, None
    return nonce, record[4:20], record[20:36]

