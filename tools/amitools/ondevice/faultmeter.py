"""The whole-meter scenario of the power-loss campaign (amitools.ondevice.faultcampaign): a Meter
on simulated flash, joined through the head end's half of the link (kept here, in the
firmware dialect), then readings, acknowledgements and a signed command, cut at every
write. Kept apart from the store scenarios, so that a MicroPython process running it holds
no code it does not need."""

from ami import crypto
from ami import events as E
from ami import keystore as K
from ami import relay as R
from ami.commands import envelope as C
from ami.keyschedule import derive_storage_key, mic_key
from ami.link import frame, messages
from ami.link.headend_join import HeadEndJoin, open_request
from ami.outcomes import Rejected
from ami.ports.entropy import DeterministicEntropy
from ami.ports.gpio import SimRelay
from ami.ports.metrology import SimMetrology
from ami.ports.storage import FileStorage, MemoryStorage
from ami.store.records import RecordStore

try:
    from amitools.ondevice import faultengine as F
except ImportError:  # MicroPython: the script's directory is on the path
    import faultengine as F


class Node:
    """A provisioned device: flash image, device secret, root key (the head end's copy),
    head end private key, command signer (key id, private key)."""

    def __init__(self, image, secret, root_key, he_private, signer_id, signer_private):
        self.image = image
        self.secret = secret
        self.root_key = root_key
        self.he_private = he_private
        self.signer_id = signer_id
        self.signer_private = signer_private
        records = RecordStore(MemoryStorage(dict(image)), derive_storage_key(secret),
                              DeterministicEntropy(b"read"))
        ks = K.Keystore.load(records)
        self.eui = ks.eui
        self.he_eui = ks.he_eui
        self.he_public = ks.he_public


def load_node(node_dir):
    """A node as amitools.sim.nodedir.provisioned_node writes it: flash/, secret.bin, he.key,
    root.key and signer.key (key id (1) | private key (32))."""

    read = FileStorage(node_dir).read
    signer = read("signer.key")
    return Node(FileStorage(node_dir + "/flash").snapshot(), read("secret.bin"),
                read("root.key"), read("he.key"), signer[0], signer[1:])


def own_node():
    """A node provisioned with firmware code alone (when no NODE_DIR is given)."""
    he_private = F.scalar(b"campaign head end")
    signer = F.scalar(b"campaign signer")
    payload = F.keystore_payload(0, crypto.p256_public_key(he_private),
                                 ((F.SIGNER_ID, crypto.p256_public_key(signer)),))
    secret = crypto.sha256(b"campaign device secret")
    flash = MemoryStorage()
    RecordStore(flash, derive_storage_key(secret), DeterministicEntropy(b"prov")).write(
        K.RECORD, payload)
    return Node(flash.snapshot(), secret, F.root_key(0), he_private, F.SIGNER_ID, signer)


class HeadEnd:
    """The head end's half of the link, kept in the model (it does not lose power): answers
    joins, holds the sessions, and checks every frame that went on air."""

    def __init__(self, t, node):
        self.t = t
        self.node = node
        self.entropy = DeterministicEntropy(b"head end")
        self.dev_nonce = None  # the highest DevNonce on air
        self.join_nonce = 0
        self.pending = None
        self.sessions = {}  # key_gen -> (k_up, k_down, fcnts seen on air)
        self.key_gen = None  # of the session last confirmed
        self.down_next = 0
        self.readings = {}  # seq -> (time, wh)
        self.alarms = []  # alarm seqs seen in EVENTS, not yet acknowledged
        self.event_max = 0
        self.results = []
        self.status = None  # (key generation, receive floor) of the last STATUS

    def uplinks(self, frames):
        """Take the frames a call returned (they went on air); the downlinks they answer."""
        out = []
        for data in frames:
            fr = frame.decode(data)
            if fr.ftype == frame.JOIN_REQUEST:
                out.append(self._join_request(fr))
            elif fr.ftype == frame.JOIN_CONFIRM:
                out.append(self._join_confirm(fr))
            else:
                self._data(fr)
        return out

    def _join_request(self, fr):
        req = open_request(fr, (mic_key(self.node.root_key),))
        if isinstance(req, Rejected):
            raise F.Stuck("JOIN_REQUEST " + req.reason)
        if self.dev_nonce is not None and req.dev_nonce <= self.dev_nonce:
            self.t.bad("DevNonce %d on air after %d" % (req.dev_nonce, self.dev_nonce))
        self.dev_nonce = req.dev_nonce
        self.join_nonce += 1
        self.pending = HeadEndJoin(self.node.he_eui, self.node.he_private, self.entropy)
        response = self.pending.respond(fr, req, self.node.root_key, self.join_nonce)
        if isinstance(response, Rejected):
            raise F.Stuck("JOIN_REQUEST " + response.reason)
        return response

    def _join_confirm(self, fr):
        # The stand-in certificate proves nothing here: the key confirmation does.
        joined = self.pending.confirm(fr, None)
        if isinstance(joined, Rejected):
            raise F.Stuck("JOIN_CONFIRM " + joined.reason)
        join_nonce, k_up, k_down = joined.join_nonce, joined.k_up, joined.k_down
        key_gen = join_nonce & 0xFF
        self.sessions[key_gen] = (k_up, k_down, [])
        self.key_gen = key_gen
        self.down_next = 0
        self.pending = None
        return self.seal(messages.encode_session_start(join_nonce))

    def seal(self, plaintext):
        """A downlink under the session last confirmed."""
        fcnt = self.down_next
        self.down_next += 1
        k_down = self.sessions[self.key_gen][1]
        return frame.seal(k_down, frame.DATA, self.node.he_eui, self.node.eui,
                          frame.KEY_SESSION, self.key_gen, fcnt, plaintext, True)

    def _data(self, fr):
        s = self.sessions.get(fr.key_gen)
        if s is None:
            raise F.Stuck("uplink under unknown key generation %d" % fr.key_gen)
        if fr.fcnt in s[2]:
            self.t.bad("uplink fcnt %d reused under key generation %d" % (fr.fcnt, fr.key_gen))
        s[2].append(fr.fcnt)
        mtype, fields = messages.decode(frame.open_frame(s[0], fr), down=False)
        if mtype == messages.READINGS:
            for seq, when, wh in fields[0]:
                seen = self.readings.get(seq)
                if seen is not None and seen != (when, wh):
                    self.t.bad("reading seq %d reused for another reading" % seq)
                self.readings[seq] = (when, wh)
        elif mtype == messages.STATUS:
            self.status = (fr.key_gen, fields[1])
            if fr.key_gen == self.key_gen and self.down_next <= fields[1]:
                self.down_next = fields[1] + 1
        elif mtype == messages.EVENTS:
            for ev in fields[0]:
                if E.is_alarm(ev[3]) and ev[0] > self.event_max and ev[0] not in self.alarms:
                    self.alarms.append(ev[0])
        elif mtype == messages.COMMAND_RESULT:
            self.results.append(fields)


def _warm(node):
    """Build the comb tables of the keys the meter verifies at every join and command (the
    head end's and the signer's) now, as a device would at boot: they live for good, and
    built mid-campaign they would split a small heap (as ami.crypto.p256.warm says)."""
    from ami.crypto import p256

    for public in (node.he_public, crypto.p256_public_key(node.signer_private)):
        x, y = p256.decode_point(public)
        p256.key_table(x, y)  # seen once
        p256.key_table(x, y)  # seen again: the table is built


def scenario_meter(t, step, node=None):
    """A whole Meter on a FlashSim: provisioned, joined through the head end's half, then
    readings, acknowledgements, a signed disconnect and an events acknowledgement. After a
    reboot: no uplink fcnt reused under a session key, DevNonces increasing, a confirmed
    session kept, no reading lost before its acknowledgement, the relay as the last
    acknowledged command left it (and driven so), no acknowledged alarm lost."""
    from ami.meter import ACTIVE, Config, Meter

    if node is None:
        node = own_node()
    _warm(node)
    image = node.image
    interval = 900
    envelopes = [C.sign(C.encode(C.DISCONNECT, C.TARGET_DEVICE, node.eui, n, F.T0 - 3600,
                                 F.T0 + 86400, node.signer_id), node.signer_private)
                 for n in (1, 2)]
    ops = ("join", "reading", "reading", "ack", "command", "reading", "events_ack", "reading")

    def new_model():
        m = F.Model()
        m.he = HeadEnd(t, node)
        m.now = F.T0 * 1000
        m.session = None  # key generation of the session whose SESSION_START was accepted
        m.down = {}  # key generation -> highest downlink counter the meter accepted
        m.relay = R.CONNECTED  # after the last acknowledged command
        m.taken = {}
        m.acked = []
        m.ev_acked = 0
        m.ev_acking = 0
        return m

    def boot(flash, m):
        relay = SimRelay(closed=m.relay != R.CONNECTED)  # read back opposite: boot drives it
        meter = Meter(flash, node.secret, DeterministicEntropy(b"meter%d" % m.boots),
                      SimMetrology(b"meter"), Config(reserve=8, interval_s=interval), relay,
                      m.anchor)
        m.now += 1000
        m.he.status = None
        m.he.uplinks(meter.start(m.now))
        return meter, relay

    def deliver(meter, m, data):
        """A downlink to the meter; its answers go on air. The meter's verdict."""
        reason, frames = meter.receive(data, m.now)
        m.he.uplinks(frames)
        fr = frame.decode(data)
        if reason is None and fr.ftype == frame.DATA:
            m.down[fr.key_gen] = max(m.down.get(fr.key_gen, -1), fr.fcnt)
        return reason

    def joined(meter, m):
        for _ in range(8):
            if meter.state == ACTIVE:
                return
            m.now = max(m.now, meter.next_wakeup() or m.now)
            for data in m.he.uplinks(meter.tick(m.now)):  # the join request's response
                m.now += 50
                reason, frames = meter.receive(data, m.now)
                if reason:
                    raise F.Stuck("JOIN_RESPONSE refused: %s" % reason)
                for ss in m.he.uplinks(frames):  # the confirm's SESSION_START
                    m.now += 50
                    if deliver(meter, m, ss) is not None:
                        raise F.Stuck("SESSION_START refused")
                    m.session = m.he.key_gen
        raise F.Stuck("no session after 8 join attempts")

    def do(st, op, m):
        meter = st[0]
        joined(meter, m)
        if op == "reading":
            m.now = (m.now // (interval * 1000) + 1) * interval * 1000
            m.he.uplinks(meter.tick(m.now))
        elif op == "ack":
            seqs = sorted(m.he.readings)[: messages.MAX_ITEMS]
            m.now += 1000
            reason = deliver(meter, m, m.he.seal(messages.encode_ack(seqs)))
            if reason:
                raise F.Stuck("ACK refused: %s" % reason)
            m.acked += seqs
        elif op == "command":
            # The same envelope again after a cut; refused as counter_reused with the relay
            # not moved (committed, cut before acting: never acted on twice), the head end
            # issues a new one.
            for env in envelopes:
                m.now += 1000
                reason = deliver(meter, m, m.he.seal(messages.encode_command(env)))
                if reason is None or meter.relay.state == R.DISCONNECTED:
                    break
                if reason != "counter_reused":
                    raise F.Stuck("disconnect refused: %s" % reason)
            if meter.relay.state != R.DISCONNECTED:
                raise F.Stuck("disconnect refused: %s" % reason)
            m.relay = R.DISCONNECTED
        elif op == "events_ack":
            if m.he.alarms:
                m.ev_acking = max(m.he.alarms)
                m.now += 1000
                reason = deliver(meter, m, m.he.seal(messages.encode_events_ack(m.ev_acking)))
                if reason:
                    raise F.Stuck("EVENTS_ACK refused: %s" % reason)
                m.ev_acked = max(m.ev_acked, m.ev_acking)
                m.he.event_max = m.ev_acked
                m.he.alarms = [s for s in m.he.alarms if s > m.ev_acked]
        F.note_taken(t, meter.queue.pending(), m)

    def check(st, m):
        meter, relay = st
        F.check_queue(t, meter.queue.pending(), meter.queue.next_seq, m)
        if m.session is not None:
            status = m.he.status  # the STATUS of this boot: an active session's floor
            if meter.state != ACTIVE or status is None or status[0] != m.session:
                t.bad("confirmed session (key generation %d) lost" % m.session)
            else:
                top = m.down.get(m.session)
                if top is not None and status[1] < top:
                    t.bad("receive floor %d after reboot, downlink %d accepted" % (
                        status[1], top))
        allowed = (m.relay,)
        if m.inflight == "command":
            allowed = (m.relay, R.DISCONNECTED)
        if meter.relay.state not in allowed:
            t.bad("relay %s after reboot, acknowledged %s" % (
                R.STATE_NAMES[meter.relay.state], R.STATE_NAMES[m.relay]))
        if relay.is_closed() != (meter.relay.state == R.CONNECTED):
            t.bad("relay contacts do not match state %s" % R.STATE_NAMES[meter.relay.state])
        ev = meter.events
        if ev.acked < m.ev_acked:
            t.bad("events acknowledged up to %d, %d after reboot" % (m.ev_acked, ev.acked))
        pending = [e[0] for e in ev.pending_alarms(E.MAX_EVENTS)]
        acking = m.ev_acking if m.inflight == "events_ack" else 0
        for s in m.he.alarms:
            if s not in pending and s > acking:
                t.bad("alarm %d lost before it was acknowledged" % s)

    F.sweep(t, step, image, ops, new_model, boot, do, check)


SCENARIOS = {"meter": scenario_meter}
