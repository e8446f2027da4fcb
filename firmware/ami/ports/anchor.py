"""Anchor port: monotonic counters kept apart from the record storage, to detect rollback.

A sealed record proves that the device wrote it, not that it is the latest one: whoever
can rewrite the flash can put back an older genuine copy (an old key store, a transmit
counter from before a thousand frames, a command state before the last disconnect). The
anchor holds, per record name, the highest generation ever written; a record older than
its anchor is a rollback (see ami.store.records).

Interface: `get(name)` -> int (0 if never advanced), `advance(name, value)` raising the
counter to value (never lowering it). An advance is atomic: a secure element's or a TPM's
monotonic counter, a one-time-programmable counter or an RPMB block are; so are the
implementations here (a dict in RAM; a blob written with the storage port's atomic
replace).

Where the anchor lives decides what it proves:
- MemoryAnchor: host simulations, where it stands for a secure element's counters (it
  outlives a simulated reboot, as the simulated flash does).
- StorageAnchor: on a board without a secure element, a blob on ANOTHER storage (another
  flash partition, a file system the record storage cannot reach, battery-backed RAM). It
  defeats restoring a copy of the record storage, not imaging the whole device.
"""

import struct

_NAME = "anchors"


def _check(name, value):
    if not isinstance(name, str) or not 0 < len(name) <= 32:
        raise ValueError("anchor name must be a str of 1..32 characters")
    if not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
        raise ValueError("anchor value must be an int in 0..2^32-1")


class MemoryAnchor:
    """Counters in RAM, standing for a secure element's monotonic counters."""

    def __init__(self):
        self._values = {}
        self.advances = 0  # writes, for wear figures

    def get(self, name):
        """The counter of name (0 if never advanced)."""
        return self._values.get(name, 0)

    def advance(self, name, value):
        """Raise the counter of name to value; lower values are ignored."""
        _check(name, value)
        if value > self._values.get(name, 0):
            self._values[name] = value
            self.advances += 1


class StorageAnchor(MemoryAnchor):
    """Counters in one blob on a storage port with atomic writes (not the record storage).

    Blob: n x (name length (1) | name | value (4)). A blob that does not parse raises
    ValueError at construction: the device must not guess its anchors.
    """

    def __init__(self, storage):
        MemoryAnchor.__init__(self)
        self._storage = storage
        data = storage.read(_NAME) or b""
        i = 0
        while i < len(data):
            n = data[i]
            if n == 0 or i + 1 + n + 4 > len(data):
                raise ValueError("anchor blob malformed")
            name = bytes(data[i + 1 : i + 1 + n]).decode()
            self._values[name] = struct.unpack(">I", data[i + 1 + n : i + 5 + n])[0]
            i += 5 + n

    def advance(self, name, value):
        """Raise the counter of name to value, persisted before returning."""
        _check(name, value)
        if value <= self._values.get(name, 0):
            return
        values = dict(self._values)
        values[name] = value
        names = sorted(values)
        self._storage.write(_NAME, b"".join(
            [bytes((len(k),)) + k.encode() + struct.pack(">I", values[k]) for k in names]
        ))
        self._values = values
        self.advances += 1
