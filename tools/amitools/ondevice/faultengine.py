"""The engine of the power-loss campaign (amitools.ondevice.faultcampaign), in the firmware dialect.

A scenario hands `sweep` a start image, a list of operations and three functions: boot
(open the store, or the whole node, from flash as a power-on does), do (one operation,
recorded in the model once it returned: acknowledged) and check (a rebooted store against
the model). `sweep` runs the operations once to log their writes, then once per cut point
with the power cut armed there; `life` is one such run: on the cut it reboots the flash,
boots, checks, and carries on from the operation in flight (retried, as a device or its
head end would) to the end, then power-cycles once more and checks again.

The model is a Model: `pos` (the next operation), `inflight` (the operation the cut
interrupted, None otherwise), `cut` (the same, kept after the retry), `boots`, `anchor`
(the rollback anchor, which outlives reboots as a secure element's counters do) and what the
scenario keeps of what was acknowledged. Only the first violation of a run is counted.
"""

import gc

from ami import crypto
from ami import keystore as K
from ami.keyschedule import derive_storage_key
from ami.ports.entropy import DeterministicEntropy
from ami.ports.flashsim import FlashSim, PowerCut
from ami.ports.storage import MemoryStorage
from ami.store.records import RecordStore

try:  # the rollback anchor (a secure element's monotonic counters), where the port exists
    from ami.ports.anchor import MemoryAnchor
except ImportError:
    MemoryAnchor = None

# Records anchored in the store scenarios: those of them the meter anchors (ami.meter.ANCHORED;
# not imported from there, which would load the whole meter in every scenario).
ANCHORED = ("keystore", "devnonce", "txctr", "rxfloor", "cmdstate", "relay")
MAX_LISTED = 20  # violation messages kept per store by default (all are counted)
SECRET = b"\x5a" * 32
T0 = 1767225600  # 2026-01-01, seconds
EUI = b"\x02AMI\x00\x00\x00\x01"
HE_EUI = b"\x02AMI\xff\xff\x00\x01"
SIGNER_ID = 1

_keys = {}  # device secret -> storage key: HKDF once per secret, not per boot


class Stuck(Exception):
    """The workload cannot go on (reported as a violation, the life ends)."""


class Model:
    """What was acknowledged so far; scenarios add their own attributes."""

    def __init__(self):
        self.pos = 0
        self.inflight = None
        self.cut = None
        self.boots = 0
        # The rollback anchor outlives reboots, as a secure element's counters do.
        self.anchor = MemoryAnchor() if MemoryAnchor is not None else None


class Tally:
    """Figures and violations of one store scenario."""

    def __init__(self, name, max_listed=MAX_LISTED):
        self.name = name
        self.max_listed = max_listed
        self.cut_points = 0
        self.torn_writes = 0
        self.reboots = 0
        self.writes = 0
        self.violations = 0  # runs (cut points, the clean run) with a violation
        self.messages = []
        self._kinds = {}  # violation text -> runs it was seen in
        self.start_run("the clean run")

    def start_run(self, where):
        self.where = where
        self._flagged = False

    def bad(self, what):
        """A violation; only the first of a run counts (what follows it is its echo). At
        most max_listed are listed, and at most 3 of one kind (the same words elsewhere)."""
        if self._flagged:
            return
        self._flagged = True
        self.violations += 1
        seen = self._kinds.get(what, 0)
        self._kinds[what] = seen + 1
        if seen < 3 and len(self.messages) < self.max_listed:
            self.messages.append("%s: %s at %s" % (self.name, what, self.where))

    def report(self, ms):
        return {
            "cut_points": self.cut_points,
            "torn_writes": self.torn_writes,
            "reboots": self.reboots,
            "writes": self.writes,
            "violations": self.violations,
            "kinds": len(self._kinds),  # distinct violation texts
            "seconds": ms / 1000,
        }


def records_for(flash, m, secret=SECRET, tag=b"rec"):
    """A RecordStore on flash as a boot opens it (a fresh nonce stream per boot), its
    anchored records checked against the model's anchor."""
    key = _keys.get(secret)
    if key is None:
        key = derive_storage_key(secret)
        _keys[secret] = key
    entropy = DeterministicEntropy(tag + b"%d" % m.boots)
    if m.anchor is None:
        return RecordStore(flash, key, entropy)
    return RecordStore(flash, key, entropy, m.anchor, ANCHORED)


def sweep(t, step, image, ops, new_model, boot, do, check):
    """The campaign of one scenario: the clean run, then one run per cut point.

    boot(flash, model) opens the store from flash (also the first time); do(state, op, model)
    runs one operation and records it in the model once it returned; check(state, model)
    compares a rebooted store with the model."""
    dry = FlashSim(dict(image))
    t.writes = life(t, dry, ops, new_model(), boot, do, check)
    # The cut points of the writes before the final power cycle (never cut, see life), kept
    # in a FlashSim of their own, allocated after the clean run's garbage is gone.
    log = dry.write_log[: t.writes]
    dry = None
    gc.collect()
    points = FlashSim()
    points.write_log = [(name, size) for name, size in log]
    log = points.write_log
    for after, at in points.cut_points(step):
        name, size = log[after - 1]
        t.start_run("write %d (%s) byte %d/%d" % (after, name, at, size))
        t.cut_points += 1
        if 0 < at < size:
            t.torn_writes += 1
        flash = FlashSim(dict(image))
        flash.arm_cut(after, at)
        life(t, flash, ops, new_model(), boot, do, check)
        if not flash.cuts:
            t.bad("the armed cut never fired: the replay differs from the logged run")
        flash = None
        gc.collect()
    t.start_run("the end")


def life(t, flash, ops, m, boot, do, check):
    """Boot and run the operations; after a power cut reboot, check, and carry on from the
    operation in flight; at the end power-cycle once more and check. Returns the number of
    writes before that last power cycle (a cut armed beyond them never fires)."""
    doing = "boot"
    st = None
    for attempt in (0, 1):
        try:
            doing = "boot" if attempt == 0 else "the boot after the cut"
            st = None  # the node that lost power is gone: never two in RAM (a small heap)
            st = boot(flash, m)
            if attempt:
                doing = "the check after the cut"
                check(st, m)
            while m.pos < len(ops):
                m.inflight = ops[m.pos]
                doing = _op_name(m.inflight)
                do(st, ops[m.pos], m)
                m.pos += 1
                m.inflight = None
        except PowerCut:
            if attempt:
                t.bad("a power cut with none armed")
                return len(flash.write_log)
            flash.reboot()
            t.reboots += 1
            m.boots += 1
            m.cut = m.inflight  # the operation the cut interrupted (None: the boot)
            continue
        except MemoryError:
            raise  # the harness does not fit the heap: not a finding about the firmware
        except Exception as exc:  # noqa: BLE001 - any other failure after a cut is a finding
            t.bad("%s raised %s %s" % (doing, type(exc).__name__, exc))
            return len(flash.write_log)
        break
    st = None
    writes = len(flash.write_log)
    flash.reboot()  # a clean power cycle: everything acknowledged must come back
    t.reboots += 1
    m.boots += 1
    try:
        check(boot(flash, m), m)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001
        t.bad("the final boot raised %s %s" % (type(exc).__name__, exc))
    return writes


def _op_name(op):
    if op is None:
        return "boot"
    if isinstance(op, tuple):
        return "operation %s" % (op[0],)
    return "operation %s" % (op,)


def fresh(prepare):
    """The start image: a flash prepared by prepare(records) (not part of the campaign)."""
    flash = MemoryStorage()
    m = Model()
    prepare(records_for(flash, m, tag=b"setup"))
    return flash.snapshot()


def root_key(version):
    """The root key of key store version `version` (the head end's copy)."""
    return crypto.sha256(b"root%d" % version)[:16]


def keystore_payload(version, he_public=None, signers=()):
    """A key store record payload; each version has its own root key, device key and
    certificate (stand-ins: these scenarios check storage, not the PKI)."""
    v = bytes((version,))
    if he_public is None:
        he_public = b"\x04" + crypto.sha256(b"he" + v) + crypto.sha256(b"he y" + v)
    ca_public = b"\x04" + crypto.sha256(b"ca") + crypto.sha256(b"ca y")
    cert = crypto.sha256(b"cert" + v) * 3 + bytes(20)  # 116 bytes
    return K.image(EUI, cert, ca_public, HE_EUI, he_public, root_key(version),
                   scalar(b"device" + v), signers)


def scalar(seed):
    """A valid P-256 private key from a seed."""
    from ami.crypto import p256

    d = crypto.sha256(seed)
    while not 0 < int.from_bytes(d, "big") < p256.N:
        d = crypto.sha256(d)
    return d


def note_taken(t, queue, m):
    """Readings in the queue after a call returned are in flash: acknowledged as taken."""
    for r in queue:
        seen = m.taken.get(r[0])
        if seen is None:
            m.taken[r[0]] = (r[1], r[2])
        elif seen != (r[1], r[2]):
            t.bad("reading seq %d reused for another reading" % r[0])


def check_queue(t, queue, next_seq, m):
    """After a reboot: every reading taken (m.taken) and not acknowledged (m.acked) is still
    queued, unchanged, and the next seq is above every seq taken."""
    held = {}
    for r in queue:
        held[r[0]] = (r[1], r[2])
    for seq in m.taken:
        if seq in m.acked:
            continue
        got = held.get(seq)
        if got is None:
            t.bad("reading %d lost before it was acknowledged" % seq)
        elif got != m.taken[seq]:
            t.bad("reading %d changed after a reboot" % seq)
    if m.taken and next_seq <= max(m.taken):
        t.bad("next reading seq %d after reboot, %d was taken" % (next_seq, max(m.taken)))

