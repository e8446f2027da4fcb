"""The store scenarios of the power-loss campaign (amitools.ondevice.faultcampaign): one function
per persistent store of the firmware, each a workload, a model of what was acknowledged and
the invariants checked after every reboot. Firmware dialect (MicroPython and CPython)."""

from ami import crypto
from ami import events as E
from ami import keystore as K
from ami import relay as R
from ami.commands import envelope as C
from ami.commands.verify import CommandVerifier
from ami.keyschedule import root_kek
from ami.link import frame, messages
from ami.link.join import DeviceJoin
from ami.ports.entropy import DeterministicEntropy
from ami.ports.gpio import SimRelay
from ami.ports.storage import MemoryStorage
from ami.store.counters import RxFloor, TxCounter

try:
    from amitools.ondevice import faultengine as F
except ImportError:  # MicroPython: the script's directory is on the path
    import faultengine as F


def scenario_keystore(t, step):
    """The key store record: rewritten whole (re-provisioning), then rotated through the
    Keystore API (a delivered root key, its confirmation by a join, a signer rotation and
    the end of the old signer's grace), loaded as a boot does.

    After a cut the key store must load (no corrupt or rolled-back record) and hold what the
    last acknowledged operation left, or what the one in flight writes: never an older
    version, never none. The one field that may differ is a pending root's count of joins
    begun (a join retried after a cut begins again), which may only grow. To extend: add
    operations to `ops` and `_keystore_op`; the reference run derives the expected record
    after each of them."""
    signer1 = crypto.p256_public_key(F.scalar(b"signer 1"))
    signer2 = crypto.p256_public_key(F.scalar(b"signer 2"))
    versions = [F.keystore_payload(v, signers=((1, signer1),)) for v in range(3)]
    kek = root_kek(F.root_key(2))
    ops = (
        ("write", versions[1]),
        ("write", versions[2]),
        ("install_root", 2, crypto.aes_key_wrap(kek, F.root_key(3))),
        ("confirm",),
        ("install_signer", 2, signer2, 1, 600, F.T0),
        ("expire", F.T0 + 601),
    )
    image = F.fresh(lambda records: records.write(K.RECORD, versions[0]))
    # The reference run: the record after each operation (states[i]: after the first i).
    records = F.records_for(MemoryStorage(dict(image)), F.Model())
    ks = K.Keystore.load(records)
    states = [records.read(K.RECORD)]
    for op in ops:
        ks = _keystore_op(records, ks, op)
        states.append(records.read(K.RECORD))

    def new_model():
        m = F.Model()
        m.acked = states[0]  # the record as the last operation that returned left it
        return m

    def boot(flash, m):
        records = F.records_for(flash, m)
        return [records, K.Keystore.load(records)]

    def do(st, op, m):
        st[1] = _keystore_op(st[0], st[1], op)
        m.acked = st[0].read(K.RECORD)

    def check(st, m):
        records, ks = st
        data = _uncounted(records.read(K.RECORD))
        acked = _uncounted(m.acked)
        now, then = data[2], acked[2]
        if now and then and now[0] == then[0] and now[1] < then[1]:
            t.bad("pending root %d: %d joins begun, %d acknowledged" % (now[0], now[1], then[1]))
            return
        if data[:2] == acked[:2]:
            return
        if m.inflight is not None and data[:2] == _uncounted(states[m.pos + 1])[:2]:
            return
        for i in range(len(states)):
            if data[:2] == _uncounted(states[i])[:2]:
                t.bad("key store as after %d operations, %d were acknowledged" % (i, m.pos))
                return
        t.bad("key store holds a record no operation wrote")

    F.sweep(t, step, image, ops, new_model, boot, do, check)


def _uncounted(data):
    """(identity, keys with a pending root's join count zeroed, (generation, count) of the
    pending root or None) of a key store record."""
    ident, keys, other = K.decode(data)
    view = []
    pending = None
    for k in keys:
        if k[0] == K.ROOT and k[3] == K.PENDING:
            pending = (k[4], k[5])
            k = k[:5] + [0] + k[6:]
        view.append(k)
    out = [(tag, ident[tag]) for tag in sorted(ident)]
    return out, view + other, pending


def _keystore_op(records, ks, op):
    """One key store operation; the Keystore to use next."""
    kind = op[0]
    if kind == "write":  # re-provisioned: a whole new record
        records.write(K.RECORD, op[1])
        return K.Keystore.load(records)
    if kind == "install_root":
        reason = ks.install_root(op[1], op[2])
        if reason:
            raise F.Stuck("install_root refused: %s" % reason)
    elif kind == "confirm":  # a join under the delivered root key completed
        ks.begin_join()
        ks.join_confirmed()
    elif kind == "install_signer":
        ks.install_signer(op[1], op[2], op[3], op[4], op[5])
    elif kind == "expire":
        ks.expire(op[1])
    return ks


# -- counters ---------------------------------------------------------------------------------


def scenario_counters(t, step):
    """TxCounter: every value handed out, across all reboots, is unique. RxFloor: the floor
    after a reboot is at or above every counter whose note() returned."""
    reserve = 4

    def prepare(records):
        TxCounter(records, "txctr", reserve=reserve, start=0)
        RxFloor(records, "rxfloor", reserve=reserve, fresh=True)

    image = F.fresh(prepare)
    ops = []
    for i in range(18):
        ops.append(("tx",))
        if i % 2:
            ops.append(("rx", i * 3))

    def new_model():
        m = F.Model()
        m.given = []  # every TxCounter value handed out, in every life
        m.noted = None  # highest counter whose note() returned
        return m

    def boot(flash, m):
        records = F.records_for(flash, m)
        return TxCounter(records, "txctr", reserve=reserve), RxFloor(records, "rxfloor", reserve)

    def do(st, op, m):
        if op[0] == "tx":
            v = st[0].next()
            if v in m.given:
                t.bad("transmit counter %d handed out twice" % v)
            m.given.append(v)
        else:
            st[1].note(op[1])
            if m.noted is None or op[1] > m.noted:
                m.noted = op[1]

    def check(st, m):
        tx, rx = st
        if m.given and tx.value <= max(m.given):
            t.bad("transmit counter resumes at %d, %d was handed out" % (tx.value, max(m.given)))
        if m.noted is not None and (rx.floor is None or rx.floor < m.noted):
            t.bad("receive floor %s after reboot, counter %d was noted" % (rx.floor, m.noted))

    F.sweep(t, step, image, ops, new_model, boot, do, check)


# -- join nonces ------------------------------------------------------------------------------


def scenario_join_nonces(t, step):
    """DeviceJoin.request across cuts: the DevNonces that go on air strictly increase."""
    image = F.fresh(lambda records: records.write(K.RECORD, F.keystore_payload(0)))
    ops = ("request", "request", "request", "request")

    def new_model():
        m = F.Model()
        m.last = None  # highest DevNonce on air
        return m

    def boot(flash, m):
        records = F.records_for(flash, m)
        entropy = DeterministicEntropy(b"join%d" % m.boots)
        return DeviceJoin(K.Keystore.load(records), records, entropy)

    def do(dj, op, m):
        fr = frame.decode(dj.request())
        dev_nonce = messages.decode_join_request(fr.payload)[0]
        if m.last is not None and dev_nonce <= m.last:
            t.bad("DevNonce %d on air after %d" % (dev_nonce, m.last))
        m.last = dev_nonce

    def check(dj, m):
        pass  # the next request (the workload carries on) shows what the record holds

    F.sweep(t, step, image, ops, new_model, boot, do, check)


# -- relay ------------------------------------------------------------------------------------

_RELAY_OPS = (
    ("disconnect", 100, 1),
    ("arm", 200, 2),
    ("button", 300),
    ("limit", 400, 3, 1000, 0, R.RESTORE_MANUAL),
    ("demand", 500, 5000),  # over the limit: trips
    ("arm", 600, 4),
    ("button", 700),
    ("limit", 800, 5, 0, 0, R.RESTORE_MANUAL),  # lifted
    ("disconnect", 900, 6),
    ("reconnect", 1000, 7),
    ("disconnect", 1100, 8),
)


def _relay_op(c, op):
    kind = op[0]
    now = F.T0 + op[1]
    if kind == "disconnect":
        return c.disconnect(now, op[2])
    if kind == "arm":
        return c.arm(now, op[2])
    if kind == "button":
        return c.button(now)
    if kind == "limit":
        return c.set_load_limit(now, op[2], op[3], op[4], op[5])
    if kind == "demand":
        return c.demand(now, op[2])
    return c.reconnect(now, op[2])


def scenario_relay(t, step):
    """RelayController from its first boot, then commands, the button and the load limit:
    after a reboot and boot() the state is the one after the last acknowledged operation or
    after the one in flight, and the relay (read back in the opposite position at power-on)
    is driven to match."""
    policy = R.RelayPolicy(remote_reconnect=True)
    image = {}  # a new meter: its first boot writes the fresh state
    ref = R.RelayController(F.records_for(MemoryStorage(), F.Model()), SimRelay(), policy)
    ref.boot(F.T0 + 50)
    states = [ref.state]  # states[i]: after the first i operations
    for op in _RELAY_OPS:
        states.append(_relay_op(ref, op).state)

    def new_model():
        return F.Model()

    def boot(flash, m):
        # The contacts read back opposite to the state last acknowledged: boot must drive them.
        relay = SimRelay(closed=states[m.pos] != R.CONNECTED)
        c = R.RelayController(F.records_for(flash, m), relay, policy)
        out = c.boot(F.T0 + 50 if m.pos == 0 else F.T0 + _RELAY_OPS[m.pos - 1][1] + 1)
        return c, relay, out.reason

    def do(st, op, m):
        out = _relay_op(st[0], op)
        if out.state != states[m.pos + 1]:
            t.bad("%s gave %s, expected %s" % (op[0], R.STATE_NAMES[out.state],
                                               R.STATE_NAMES[states[m.pos + 1]]))

    def check(st, m):
        c, relay, reason = st
        allowed = (states[m.pos],) if m.inflight is None else (states[m.pos], states[m.pos + 1])
        if c.state not in allowed:
            t.bad("relay %s after reboot (boot: %s), acknowledged %s" % (
                R.STATE_NAMES[c.state], reason, R.STATE_NAMES[states[m.pos]]))
        if relay.is_closed() != (c.state == R.CONNECTED):
            t.bad("relay contacts %s in state %s" % (
                "closed" if relay.is_closed() else "open", R.STATE_NAMES[c.state]))

    F.sweep(t, step, image, _RELAY_OPS, new_model, boot, do, check)


# -- events -----------------------------------------------------------------------------------

_EVENT_OPS = (
    ("log", 10, E.BAD_SIGNATURE),  # alarm
    ("log", 11, E.CRC),  # info
    ("log", 12, E.REPLAY),  # warning
    ("log", 13, E.TAMPER),  # critical
    ("ack",),
    ("log", 20, E.COUNTER_REUSED),
    ("log", 21, E.COUNTER_REUSED),
    ("log", 22, E.COUNTER_REUSED),  # over the burst: counted only
    ("log", 23, E.AUTH),
    ("log", 24, E.CRC),
    ("log", 25, E.CRC),
    ("tick", 70),  # the window ends: the flood aggregate (an alarm) is logged
    ("log", 71, E.BAD_SIGNATURE),
    ("log", 72, E.UNKNOWN_SIGNER),
    ("ack",),
    ("log", 130, E.TAMPER),
    ("log", 131, E.MALFORMED),
    ("flush",),
    ("log", 190, E.CRC),
    ("log", 191, E.WINDOW_VIOLATION),
    ("log", 192, E.AUTH),
    ("ack",),
    ("log", 250, E.BAD_SIGNATURE),
    ("log", 251, E.REPLAY),
)


def scenario_events(t, step):
    """EventLog: every alarm whose log() returned stays pending until acknowledged, an ack
    that returned is never undone, and seqs are never reused."""
    image = {}

    def new_model():
        m = F.Model()
        m.last = 0  # highest seq handed out (seen in the log after a call returned)
        m.alarms = []  # alarm seqs handed out and not acknowledged
        m.acked = 0  # highest seq an ack() that returned covered
        m.acking = 0  # the ack in flight
        return m

    def boot(flash, m):
        return E.EventLog(F.records_for(flash, m), capacity=16, window_s=60, burst=2,
                          window_cap=8)

    def do(log, op, m):
        kind = op[0]
        if kind == "log":
            log.log(F.T0 + op[1], op[2])
        elif kind == "tick":
            log.tick(F.T0 + op[1])
        elif kind == "flush":
            log.flush()
        elif m.alarms:  # the head end acknowledges every alarm it has had (again on a retry)
            m.acking = max(m.alarms)
            log.ack(m.acking)
            m.acked = max(m.acked, m.acking)
            m.alarms = []
        for ev in log.events(m.last):  # handed out by the call that just returned
            if ev[0] <= m.last:
                t.bad("event seq %d handed out again" % ev[0])
            m.last = ev[0]
            if E.is_alarm(ev[3]):
                m.alarms.append(ev[0])

    def check(log, m):
        if log.acked < m.acked:
            t.bad("acknowledged up to %d, %d after reboot" % (m.acked, log.acked))
        if log.next_seq <= m.last:
            t.bad("next seq %d after reboot, %d was handed out" % (log.next_seq, m.last))
        if log.pending_count > E.MAX_EVENTS:
            t.bad("more pending alarms than the workload keeps")
        pending = [ev[0] for ev in log.pending_alarms(E.MAX_EVENTS)]
        acking = m.acking if m.inflight is not None and m.inflight[0] == "ack" else 0
        for s in m.alarms:
            if s not in pending and s > acking:
                t.bad("alarm %d lost before it was acknowledged" % s)
        for s in pending:
            if s <= m.acked:
                t.bad("alarm %d pending again after its ack" % s)

    F.sweep(t, step, image, _EVENT_OPS, new_model, boot, do, check)


# -- commands ---------------------------------------------------------------------------------


def scenario_commands(t, step):
    """CommandVerifier: a counter whose commit returned is never accepted again, and an
    announcement whose NOTIFY was committed stays until its action consumes it."""
    signer = F.scalar(b"campaign signer")
    anchors = {F.SIGNER_ID: crypto.p256_public_key(signer)}
    gid = b"\x47\x52\x50\x00\x00\x00\x00\x01"
    nb, na = F.T0 - 3600, F.T0 + 86400

    def signed(command, kind, target, counter, params=()):
        body = C.encode(command, kind, target, counter, nb, na, F.SIGNER_ID, params)
        return C.sign(body, signer)

    action = signed(C.DISCONNECT, C.TARGET_DEVICE, F.EUI, 3)
    envs = (
        signed(C.LOAD_LIMIT, C.TARGET_DEVICE, F.EUI, 1, (5000, 60, C.RESTORE_AUTO)),
        signed(C.NOTIFY, C.TARGET_DEVICE, F.EUI, 2, (crypto.sha256(action), F.T0 + 7200)),
        action,
        signed(C.LOAD_LIMIT, C.TARGET_GROUP, gid, 9, (0, 0, C.RESTORE_MANUAL)),
        signed(C.RECONNECT, C.TARGET_DEVICE, F.EUI, 5),
        signed(C.ARM_RECONNECT, C.TARGET_DEVICE, F.EUI, 8),
    )
    notify = 1  # the index of the NOTIFY in envs, announcing envs[2]
    ops = tuple(range(len(envs)))

    def new_model():
        m = F.Model()
        m.committed = []  # indexes of envs whose commit returned
        return m

    def boot(flash, m):
        return CommandVerifier(F.records_for(flash, m), anchors, F.EUI, (gid,),
                               notice_required=(C.DISCONNECT,))

    def do(v, i, m):
        reason, env = v.check(envs[i], F.T0)
        if reason is None:
            if i in m.committed:
                t.bad("command %d accepted again after its commit" % i)
            reason = v.commit(env)
        if reason == "counter_reused" and m.cut == i and i not in m.committed:
            reason = None  # the commit in flight at the cut had landed: not acted on twice
        if reason is not None:
            t.bad("command %d refused: %s" % (i, reason))
        else:
            m.committed.append(i)

    def check(v, m):
        for i in m.committed:
            env = C.decode(envs[i])
            last = v.last_counter(env.target_kind, env.target)
            if last is None or last < env.counter:
                t.bad("committed counter %d of command %d is acceptable again (last %s)"
                      % (env.counter, i, last))
        if notify in m.committed and notify + 1 not in m.committed and m.inflight != notify + 1:
            if crypto.sha256(action) not in [n[0] for n in v.notices()]:
                t.bad("committed announcement lost")
        if m.committed:
            reason = v.check(envs[m.committed[-1]], F.T0)[0]  # the full path, once
            if reason is None:
                t.bad("command %d accepted again" % m.committed[-1])

    F.sweep(t, step, {}, ops, new_model, boot, do, check)


# -- queue ------------------------------------------------------------------------------------


def scenario_queue(t, step):
    """The store-and-forward queue of readings (ami.readings.ReadingQueue, small pages so
    the ring turns): every reading whose append() returned and that was not acknowledged
    survives a reboot, unchanged; seqs are never reused."""
    from ami.readings import ReadingQueue

    ops = []
    for i in range(14):
        ops.append(("append", 60 * i, 1000 + 7 * i * i))
        if i % 4 == 3:
            ops.append(("ack", 3))

    def new_model():
        m = F.Model()
        m.taken = {}  # seq -> (time, wh) of readings whose append() returned
        m.acked = []  # seqs whose ack() returned (or dropped by an overflow append reported)
        return m

    def boot(flash, m):
        return ReadingQueue(F.records_for(flash, m), slots=3, max_queue=8)

    def do(q, op, m):
        if op[0] == "append":
            seq = q.append(F.T0 + op[1], op[2])
            if seq in m.taken:
                t.bad("reading seq %d handed out twice" % seq)
            m.taken[seq] = (F.T0 + op[1], op[2])
            if q.overflow:  # dropped by the queue's own rule, reported: not lost silently
                held = [r[0] for r in q.pending()]
                m.acked += [s for s in m.taken if s not in held]
        else:
            seqs = [r[0] for r in q.pending(op[1])]
            q.ack(seqs)
            m.acked += seqs

    def check(q, m):
        F.check_queue(t, q.pending(), q.next_seq, m)

    F.sweep(t, step, {}, ops, new_model, boot, do, check)


SCENARIOS = {
    "keystore": scenario_keystore,
    "counters": scenario_counters,
    "join_nonces": scenario_join_nonces,
    "relay": scenario_relay,
    "events": scenario_events,
    "commands": scenario_commands,
    "queue": scenario_queue,
}
