"""Device checks of signed commands (docs/protocol.md section 10.3) and their state.

``check(envelope_bytes, now_s)`` runs the checks in order and changes nothing persistent:
malformed, unknown_signer, bad_signature, wrong_target, not_yet_valid / expired,
counter_reused, window_violation (and record_corrupt if the state record is unreadable:
fail closed). ``commit(envelope)`` then persists the counter, and must return None before
the device acts. A verified NOTIFY is stored by its commit; an action whose command is in
``notice_required`` needs a stored announcement of SHA-256(whole envelope) with
``now <= deadline`` (no skew at the deadline). An action's commit consumes its announcement.

State: one sealed record ``cmdstate`` (one write per commit, so a counter and an
announcement change together or not at all across a power cut):

    nc (1) | nn (1) | nc x (kind (1) | target (8) | last counter (4))
                    | nn x (action_hash (32) | deadline (4))

Counter entries (this device and groups, current or former) are kept least recently
accepted first, at most MAX_COUNTERS; a full table drops the least recent entry that is
neither this device nor a current group. Announcements: at most MAX_NOTICES; a full list
drops the earliest deadline (expired ones first). No entry means nothing accepted yet.

A device that joins a group accepts any unexpired command of that group it has no counter
for; ``set_groups`` takes ``(group_id, last_counter)`` pairs to start a group above a floor.
"""

import struct

from ami.commands.envelope import (
    DOMAIN,
    NOTIFY,
    TARGET_DEVICE,
    TARGET_GROUP,
    CommandError,
    decode,
)
from ami.crypto import ecdsa_verify
from ami.runtime import const
from ami.store.records import RecordCorrupt

RECORD = "cmdstate"
MAX_GROUPS = const(8)
MAX_COUNTERS = const(16)
MAX_NOTICES = const(4)
DEFAULT_SKEW = const(300)
_CTR = ">B8sI"
_CTR_LEN = const(13)
_NOTICE = ">32sI"
_NOTICE_LEN = const(36)


def encode_state(counters, notices):
    """Record payload of counter entries (kind, target, last) and notices (hash, deadline)."""
    out = [bytes((len(counters), len(notices)))]
    for kind, target, last in counters:
        out.append(struct.pack(_CTR, kind, target, last))
    for h, deadline in notices:
        out.append(struct.pack(_NOTICE, h, deadline))
    return b"".join(out)


def decode_state(data):
    """(counters, notices) lists of a record payload; raises RecordCorrupt if it is not one."""
    if len(data) < 2:
        raise RecordCorrupt(RECORD, "short state")
    nc = data[0]
    nn = data[1]
    if nc > MAX_COUNTERS or nn > MAX_NOTICES or len(data) != 2 + nc * _CTR_LEN + nn * _NOTICE_LEN:
        raise RecordCorrupt(RECORD, "state length")
    counters = []
    pos = 2
    for _ in range(nc):
        entry = struct.unpack(_CTR, data[pos : pos + _CTR_LEN])
        if entry[0] != TARGET_DEVICE and entry[0] != TARGET_GROUP:
            raise RecordCorrupt(RECORD, "target kind")
        counters.append(entry)
        pos += _CTR_LEN
    notices = []
    for _ in range(nn):
        notices.append(struct.unpack(_NOTICE, data[pos : pos + _NOTICE_LEN]))
        pos += _NOTICE_LEN
    return counters, notices


def _find(counters, kind, target):
    for i in range(len(counters)):
        if counters[i][0] == kind and counters[i][1] == target:
            return i
    return -1


def _find_notice(notices, h):
    for i in range(len(notices)):
        if notices[i][0] == h:
            return i
    return -1


def _check_gid(gid):
    if not isinstance(gid, (bytes, bytearray)) or len(gid) != 8:
        raise ValueError("group id must be 8 bytes")
    return bytes(gid)


class CommandVerifier:
    """Checks and commits signed commands for one device (see the module docstring).

    trust_anchors maps a signer key id (0..255) to its 65-byte public key. ``counts`` maps
    each rejection reason, and "accepted", to how often it happened.
    """

    def __init__(
        self, records, trust_anchors, eui, groups=(), skew_s=DEFAULT_SKEW, notice_required=()
    ):
        if not isinstance(eui, (bytes, bytearray)) or len(eui) != 8:
            raise ValueError("eui must be 8 bytes")
        if not isinstance(skew_s, int) or skew_s < 0:
            raise ValueError("skew must be a non-negative int")
        notice_required = tuple(notice_required)
        if NOTIFY in notice_required:
            raise ValueError("NOTIFY cannot itself need notice")
        self._records = records
        self.set_anchors(trust_anchors)
        self._eui = bytes(eui)
        self._skew = skew_s
        self._notice = notice_required
        self._state = None  # (counters, notices) once read; this object is the only writer
        self._groups = ()
        self.counts = {}
        self.set_groups(groups)

    def set_anchors(self, trust_anchors):
        """Replace the trust anchors (a signer rotation, a retired key's grace ended)."""
        anchors = {}
        for key_id in trust_anchors:
            pub = trust_anchors[key_id]
            if not isinstance(key_id, int) or not 0 <= key_id <= 255:
                raise ValueError("signer key id must be 0..255")
            if not isinstance(pub, (bytes, bytearray)) or len(pub) != 65:
                raise ValueError("trust anchor must be a 65-byte public key")
            anchors[key_id] = bytes(pub)
        self._anchors = anchors

    @property
    def groups(self):
        return self._groups

    def set_groups(self, groups):
        """Replace the group membership: ids (8 bytes) or (id, last_counter) pairs; a pair
        raises that group's counter to at least last_counter (persisted at once)."""
        ids = []
        floors = []
        for g in groups:
            if isinstance(g, tuple):
                if len(g) != 2 or not isinstance(g[1], int) or not 0 <= g[1] <= 0xFFFFFFFF:
                    raise ValueError("group floor must be (id, counter)")
                floors.append((_check_gid(g[0]), g[1]))
                g = g[0]
            gid = _check_gid(g)
            if gid not in ids:
                ids.append(gid)
        if len(ids) > MAX_GROUPS:
            raise ValueError("at most %d groups" % MAX_GROUPS)
        if floors:
            counters, notices = self._load()
            counters = list(counters)
            changed = False
            for gid, floor in floors:
                i = _find(counters, TARGET_GROUP, gid)
                if i < 0 or counters[i][2] < floor:
                    if i >= 0:
                        counters.pop(i)
                    counters.append((TARGET_GROUP, gid, floor))
                    changed = True
            if changed:
                self._groups = tuple(ids)
                self._save(self._trim(counters), notices)
        self._groups = tuple(ids)

    def check(self, data, now_s, group=None):
        """(reason or None, envelope): the checks of section 10.3 in order, no state change.

        envelope is None only when malformed; commit() it before acting on it. group: the
        id of the group frame it came in: only a command for that group may act, checked
        before the signature (device_command_in_group, wrong_target).
        """
        try:
            env = decode(data)
        except CommandError:
            return self._reject("malformed", None)
        if group is not None:
            if env.target_kind != TARGET_GROUP:
                return self._reject("device_command_in_group", env)
            if env.target != bytes(group):
                return self._reject("wrong_target", env)
        anchor = self._anchors.get(env.key_id)
        if anchor is None:
            return self._reject("unknown_signer", env)
        if not ecdsa_verify(anchor, DOMAIN + env.signed_part, env.signature):
            return self._reject("bad_signature", env)
        if env.target_kind == TARGET_DEVICE:
            mine = env.target == self._eui
        else:
            mine = env.target in self._groups
        if not mine:
            return self._reject("wrong_target", env)
        if now_s < env.not_before - self._skew:
            return self._reject("not_yet_valid", env)
        if now_s > env.not_after + self._skew:
            return self._reject("expired", env)
        try:
            state = self._load()
        except RecordCorrupt:
            return self._reject("record_corrupt", env)
        reason = self._stateful(env, state, now_s)
        if reason:
            return self._reject(reason, env)
        env.checked_by = self
        return None, env

    def commit(self, env):
        """Persist the counter (and store or consume an announcement) before acting.

        Returns None, or the reason if the state moved since check() (another command with
        the same or a higher counter committed first): then the device must not act.
        """
        if not hasattr(env, "checked_by") or env.checked_by is not self:
            raise ValueError("commit takes an envelope this verifier's check() accepted")
        env.checked_by = None  # one commit per check
        counters, notices = self._load()
        reason = self._stateful(env, (counters, notices), None)
        if reason:
            return self._reject(reason, env)[0]
        counters = list(counters)
        i = _find(counters, env.target_kind, env.target)
        if i >= 0:
            counters.pop(i)
        counters.append((env.target_kind, env.target, env.counter))
        notices = list(notices)
        if notices:
            i = _find_notice(notices, env.digest())
            if i >= 0:
                notices.pop(i)
        if env.command == NOTIFY:
            h, deadline = env.args
            i = _find_notice(notices, h)
            if i >= 0:
                notices.pop(i)
            notices.append((h, deadline))
            if len(notices) > MAX_NOTICES:
                first = 0
                for j in range(1, len(notices)):
                    if notices[j][1] < notices[first][1]:
                        first = j
                notices.pop(first)
        self._save(self._trim(counters), notices)
        self.counts["accepted"] = self.counts.get("accepted", 0) + 1
        return None

    def notices(self):
        """The stored announcements as (action_hash, deadline) pairs (RecordCorrupt if lost)."""
        return list(self._load()[1])

    def last_counter(self, kind, target):
        """Last accepted counter for a target, or None (RecordCorrupt if lost)."""
        counters = self._load()[0]
        i = _find(counters, kind, bytes(target))
        return None if i < 0 else counters[i][2]

    def _reject(self, reason, env):
        self.counts[reason] = self.counts.get(reason, 0) + 1
        return reason, env

    def _stateful(self, env, state, now_s):
        """counter_reused or window_violation against state; now_s None: skip expiry."""
        counters, notices = state
        i = _find(counters, env.target_kind, env.target)
        if i >= 0 and env.counter <= counters[i][2]:
            return "counter_reused"
        if env.command in self._notice:
            j = _find_notice(notices, env.digest())
            if j < 0 or (now_s is not None and now_s > notices[j][1]):
                return "window_violation"
        return None

    def _trim(self, counters):
        """Drop least recent entries that are neither this device nor a current group."""
        i = 0
        while len(counters) > MAX_COUNTERS and i < len(counters):
            kind, target, _ = counters[i]
            if (kind == TARGET_DEVICE and target == self._eui) or (
                kind == TARGET_GROUP and target in self._groups
            ):
                i += 1
            else:
                counters.pop(i)
        return counters

    def _load(self):
        if self._state is None:
            data = self._records.read(RECORD)
            self._state = ([], []) if data is None else decode_state(data)
        return self._state

    def _save(self, counters, notices):
        try:
            self._records.write(RECORD, encode_state(counters, notices))
        except Exception:
            self._state = None  # the write may or may not have landed: read it back next time
            raise
        self._state = (counters, notices)
