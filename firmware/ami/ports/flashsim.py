"""Simulated flash whose writes are not atomic, with a power cut that can be armed at any byte.

Torn-write model. A write replaces a blob in place, first byte to last, in a region sized
for the new data (its length is committed before any byte, as a length field or a fixed slot
size would be). A cut after K bytes leaves a blob of the NEW length holding:

    data[:K] + old[K:len(data)] + 0xFF up to len(data)

that is, the new prefix, then the old content where there was some (an in-place rewrite of
EEPROM-like or byte-programmable storage), then erased bytes. This is the harsher realistic
outcome for a reader: the length looks right, so only authentication can reject the blob, and
the old tail is genuine-looking data (e.g. the old record's valid tag) rather than plain 0xFF.
`erase_first=True` models NOR flash instead (erase the region, then program): the tail is all
0xFF. A blob that did not exist appears at K = 0 already (erased, of the new length).

K may be 0 (nothing programmed) up to len(data) (everything programmed, but the power failed
before the writer learnt it succeeded); a larger K acts as len(data). After a cut every
access raises PowerCut until `reboot()`, as a dead device does nothing.
"""

from ami.ports.storage import MemoryStorage

_ERASED = b"\xff"


class PowerCut(Exception):
    """The simulated supply failed: the device stops until reboot()."""


class FlashSim(MemoryStorage):
    """MemoryStorage with torn writes, an armed power cut and a log of every write."""

    def __init__(self, initial=None, erase_first=False):
        MemoryStorage.__init__(self, initial)
        self.erase_first = erase_first
        self.write_log = []  # (name, length) of every write attempted, torn ones included
        self.cuts = 0  # power cuts so far
        self.dead = False
        self._countdown = 0  # writes until the armed cut, 0 when none is armed
        self._at_byte = 0

    def arm_cut(self, after_writes=1, at_byte=0):
        """Tear the after_writes-th write from now (1: the next one) after at_byte bytes."""
        if not isinstance(after_writes, int) or after_writes < 1:
            raise ValueError("after_writes must be an int >= 1")
        if not isinstance(at_byte, int) or at_byte < 0:
            raise ValueError("at_byte must be an int >= 0")
        self._countdown = after_writes
        self._at_byte = at_byte

    @property
    def armed(self):
        """True while a cut is armed and has not fired."""
        return self._countdown > 0

    def reboot(self):
        """Power back on: contents kept as the cut left them, any armed cut cleared."""
        self.dead = False
        self._countdown = 0

    def clear_log(self):
        """Forget the write log, e.g. after setting up the state a campaign starts from."""
        self.write_log = []

    def cut_points(self, step=1):
        """Yield (after_writes, at_byte) for every logged write and every step-th byte.

        The last byte (the write complete but unacknowledged) is always included. Replaying
        the logged run from the same start with arm_cut(*point) tears exactly that write.
        """
        if not isinstance(step, int) or step < 1:
            raise ValueError("step must be an int >= 1")
        for i in range(len(self.write_log)):
            size = self.write_log[i][1]
            for k in range(0, size, step):
                yield (i + 1, k)
            yield (i + 1, size)

    def _alive(self):
        if self.dead:
            raise PowerCut("device is off: reboot() first")

    def write(self, name, data):
        """As Storage.write; a dead device neither writes nor wears the flash."""
        self._alive()
        MemoryStorage.write(self, name, data)

    def _load(self, name):
        self._alive()
        return MemoryStorage._load(self, name)

    def _store(self, name, data):
        self.write_log.append((name, len(data)))
        if self._countdown:
            self._countdown -= 1
            if not self._countdown:
                self._tear(name, data)
        MemoryStorage._store(self, name, data)

    def _tear(self, name, data):
        n = len(data)
        k = min(self._at_byte, n)
        old = b"" if self.erase_first else (self._blobs.get(name) or b"")
        tail = old[k:n]
        self._blobs[name] = data[:k] + tail + _ERASED * (n - k - len(tail))
        self.dead = True
        self.cuts += 1
        raise PowerCut("power cut at byte %d of %d writing %s" % (k, n, name))

    def _remove(self, name):
        self._alive()
        return MemoryStorage._remove(self, name)

    def _list(self):
        self._alive()
        return MemoryStorage._list(self)
