"""Group membership and group keys (docs/protocol.md section 10.4, GROUP_KEY).

A group key arrives wrapped (RFC 3394) under a key derived from the session's downlink key,
so only the addressed device can unwrap it. A group key only makes a group frame readable:
what proves a group command's origin is the envelope's signature, since every member holds
the key. Replay of group frames is stopped by a window per group in RAM, and after a reboot
by the envelope's command counter, persisted before any command acts.
"""

from ami import crypto
from ami.link.replay import ReplayWindow

RECORD = "groups"
KEK_INFO = b"AMI group kek"
_ENTRY = 25  # group id (8) || key generation (1) || key (16)
MAX_GROUPS = 8


def group_kek(k_down):
    """The key that wraps group keys for one session."""
    return crypto.hkdf_sha256(k_down, b"", KEK_INFO, 16)


class Groups:
    """The groups this device belongs to, with their keys (sealed record) and windows (RAM)."""

    def __init__(self, records):
        self._records = records
        self._keys = {}
        self.windows = {}
        data = records.read(RECORD) or b""
        for i in range(0, len(data) - _ENTRY + 1, _ENTRY):
            gid = data[i : i + 8]
            self._keys[gid] = (data[i + 8], data[i + 9 : i + _ENTRY])
            self.windows[gid] = ReplayWindow(64)

    def ids(self):
        """Group ids, sorted (a stable order on every runtime)."""
        out = list(self._keys)
        out.sort()
        return out

    def key(self, group_id):
        """(key generation, key) of a group, or None."""
        return self._keys.get(bytes(group_id))

    def install(self, k_down, group_id, key_gen, wrapped):
        """Join a group (or rotate its key); returns None or a refusal reason."""
        try:
            key = crypto.aes_key_unwrap(group_kek(k_down), wrapped)
        except (crypto.AuthError, ValueError):
            return "auth"
        if len(key) != 16:
            return "malformed"
        gid = bytes(group_id)
        if gid not in self._keys and len(self._keys) >= MAX_GROUPS:
            return "malformed"
        self._keys[gid] = (key_gen, key)
        self._records.write(RECORD, b"".join(
            [g + bytes((kg,)) + k for g, (kg, k) in sorted(self._keys.items())]
        ))
        self.windows[gid] = ReplayWindow(64)
        return None
