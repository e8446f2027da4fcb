"""Group membership and group keys (docs/protocol.md sections 10.4 and 13.2).

A group key arrives wrapped (RFC 3394) under a key derived from the session's downlink key,
so only the addressed device can unwrap it: in GROUP_KEY (joining a group) or in a signed
KEY_CHANGE (rotating its key). A group key only makes a group frame readable: what proves a
group command's origin is the envelope's signature, since every member holds the key.

Rotation is make-before-break: the new key is accepted at once, and the previous one until
`until` (seconds), so the head end can move the group to the new key once every member has
confirmed it, while frames under the old key still arrive. Replay of group frames is stopped
by a window per group and key generation in RAM, and after a reboot by the envelope's command
counter, persisted before any command acts.

Record "groups": n x (group id (8) | key gen (1) | key (16) | previous gen (1) |
previous until (4) | previous key (16)); until 0: no previous key.
"""

import struct

from ami import crypto
from ami.keyschedule import group_kek
from ami.link.replay import ReplayWindow

RECORD = "groups"
_ENTRY = 46
_FMT = ">8sB16sBI16s"
MAX_GROUPS = 8
_NO_KEY = bytes(16)


class Groups:
    """The groups this device belongs to, with their keys (sealed record) and windows (RAM)."""

    def __init__(self, records):
        self._records = records
        self._keys = {}  # group id -> [gen, key, previous gen, previous until, previous key]
        self._windows = {}
        data = records.read(RECORD) or b""
        for i in range(0, len(data) - _ENTRY + 1, _ENTRY):
            e = struct.unpack(_FMT, data[i : i + _ENTRY])
            self._keys[e[0]] = list(e[1:])

    def ids(self):
        """Group ids, sorted (a stable order on every runtime)."""
        out = list(self._keys)
        out.sort()
        return out

    def key(self, group_id, key_gen, now_s):
        """The key of a group for frames of key_gen (the current one, or the previous one
        until its grace ends), or None."""
        e = self._keys.get(bytes(group_id))
        if e is None:
            return None
        if key_gen == e[0]:
            return e[1]
        if e[3] and key_gen == e[2] and now_s <= e[3]:
            return e[4]
        return None

    def current(self, group_id):
        """(key generation, key) of a group's current key, or None."""
        e = self._keys.get(bytes(group_id))
        return None if e is None else (e[0], e[1])

    def window(self, group_id, key_gen):
        """The replay window of a group's frames under one key generation."""
        k = bytes(group_id) + bytes((key_gen,))
        w = self._windows.get(k)
        if w is None:
            w = self._windows[k] = ReplayWindow(64)
        return w

    def install(self, k_down, group_id, key_gen, wrapped, now_s=0, grace_s=0, floor=None):
        """Join a group, or rotate its key (the old key stays valid grace_s more seconds);
        returns None or a refusal reason. A new key starts its generation's replay window
        afresh, above floor (None: none): a generation re-used with another key (a head end
        restarted, the generation wrapped) is not refused by the old key's window, and a
        new member refuses what was broadcast before it joined."""
        try:
            key = crypto.aes_key_unwrap(group_kek(k_down), wrapped)
        except (crypto.AuthError, ValueError):
            return "unwrap_failed"
        if len(key) != 16 or not 0 <= key_gen <= 255:
            return "malformed"
        gid = bytes(group_id)
        old = self._keys.get(gid)
        if old is None and len(self._keys) >= MAX_GROUPS:
            return "malformed"
        if old is None or old[0] == key_gen:
            entry = [key_gen, key, 0, 0, _NO_KEY]
        else:
            entry = [key_gen, key, old[0], min(now_s + grace_s, 0xFFFFFFFF), old[1]]
        keys = dict(self._keys)
        keys[gid] = entry
        self._save(keys)
        if old is None or old[0] != key_gen or old[1] != key:
            self._windows[gid + bytes((key_gen,))] = ReplayWindow(64, floor)
        return None

    def clear(self):
        """Leave every group and erase the group keys (the record is wiped)."""
        self._records.wipe(RECORD)
        self._keys = {}
        self._windows = {}

    def _save(self, keys):
        out = []
        for gid in sorted(keys):
            e = keys[gid]
            out.append(struct.pack(_FMT, gid, e[0], e[1], e[2], e[3], e[4]))
        self._records.write(RECORD, b"".join(out))
        self._keys = keys
