"""Sealed A/B records (docs/protocol.md section 5): state that survives a write torn at any byte.

A record `name` lives in two storage slots, `name.a` and `name.b`, each

    magic "AR" (2) | version 1 (1) | generation (4) | nonce (13) | AES-CCM ciphertext | tag (16)

sealed under the storage key with associated data `name | magic | version | generation`, so a
slot copied to another record's name or given another generation fails its tag. A write goes
to the slot not holding the newest valid copy, with that copy's generation plus one; a read
takes the valid copy with the highest generation. A torn write therefore only ever damages
the older copy: a read returns the newest complete write or the one before it.

Rollback. An attacker who can rewrite the flash can put back an old genuine pair of slots;
one who can only swap or edit slots can at most make the older of the two copies win, as a
torn write could. For the records named `anchored`, the store keeps the generation of every
write in an anchor port outside this storage (ami.ports.anchor), advanced once the slot is
written: a newest valid copy below its anchor, or no copy at all where the anchor says one
was written, raises RecordRollback. A cut between the slot write and the advance leaves the
record one generation above its anchor, which is allowed; the next write catches up.

A torn first write. The one write with no copy before it is a record's first, so a cut in
it leaves a lone slot that is not valid. For an anchored record whose anchor was never
advanced no write ever completed, so nothing in it can have been acted on: the record reads
as never written instead of RecordCorrupt (a record that did complete a write has an anchor
above zero, so a lone bad slot of it stays RecordCorrupt). Unanchored records keep
RecordCorrupt: nothing tells their torn first write from a damaged copy that was the only
one.

Erasure. `wipe(name)` writes an empty payload twice, so both slots hold tombstones and the
previous contents are overwritten in place (a read then returns b""). The generation keeps
counting, so a put-back copy of the erased contents is a rollback, not a restore.
"""

import struct

from ami.crypto import AuthError, aes_ccm_decrypt, aes_ccm_encrypt
from ami.ports.storage import MAX_NAME, check_name
from ami.runtime import const

MAGIC = b"AR"
VERSION = const(1)
HEADER_LEN = const(20)  # magic, version, generation, nonce
NONCE_LEN = const(13)
TAG_LEN = const(16)
OVERHEAD = const(36)  # header and tag: a slot is this much longer than its payload
MAX_GENERATION = const(0xFFFFFFFF)
MAX_RECORD_NAME = MAX_NAME - 2  # room for the ".a" / ".b" slot suffix
SLOTS = (".a", ".b")


class RecordCorrupt(Exception):
    """Slots exist but none holds a valid copy: the state is lost and must not be guessed."""

    reason = "record_corrupt"

    def __init__(self, name, detail="no valid slot"):
        super().__init__("%s: %s: %s" % (self.reason, name, detail))
        self.name = name


class RecordRollback(RecordCorrupt):
    """An anchored record is older than its anchor (or gone): an old copy was put back."""

    reason = "record_rollback"


def check_record_name(name):
    """Return name if it can name a record (a storage name that leaves room for a slot suffix)."""
    check_name(name)
    if len(name) > MAX_RECORD_NAME:
        raise ValueError("record name must be at most %d characters" % MAX_RECORD_NAME)
    return name


class RecordStore:
    """Sealed A/B records on a storage port.

    It keeps no copy of any record between calls: every read scans and authenticates both
    slots. It remembers only which slot holds the newest copy and its generation, as its
    last write or scan found them, so a write need not decrypt both slots first. Every scan
    refreshes that (a slot gone bad is seen at the next read) and a failed write forgets it.
    """

    def __init__(self, storage, storage_key16, entropy, anchor=None, anchored=()):
        if not isinstance(storage_key16, (bytes, bytearray)) or len(storage_key16) != 16:
            raise ValueError("storage key must be 16 bytes")
        self._storage = storage
        self._key = bytes(storage_key16)
        self._entropy = entropy
        self._anchor = anchor
        self._anchored = tuple(anchored) if anchor is not None else ()
        self._last = {}  # name -> (newest slot index, generation) per the last write or scan

    def read(self, name):
        """The newest valid payload, or None if neither slot exists; RecordCorrupt (or
        RecordRollback) otherwise."""
        found, _, gen, payload, other = self._scan(check_record_name(name))
        self._check_anchor(name, gen if found else 0)
        if not found:
            return None
        if gen is None:
            raise RecordCorrupt(name)
        if other is not None and other != payload:
            # Two genuine copies with one generation never come from write(): a splice.
            raise RecordCorrupt(name, "conflicting copies of generation %d" % gen)
        return payload

    def generation(self, name):
        """Generation of the newest valid copy, 0 if never written; RecordCorrupt as read."""
        found, _, gen, _, _ = self._scan(check_record_name(name))
        self._check_anchor(name, gen if found else 0)
        if not found:
            return 0
        if gen is None:
            raise RecordCorrupt(name)
        return gen

    def overwrite(self, name, payload):
        """Write payload into both slots, so no slot keeps the previous contents (erased
        keys), skipping the slots that already hold it: repeating an overwrite a power cut
        interrupted (a cut between the two writes leaves the older copy) costs only what is
        left, and nothing once it is done."""
        for _ in SLOTS:
            if self._holds_only(name, payload):
                return
            self.write(name, payload)

    def wipe(self, name):
        """Overwrite both slots with empty payloads (see Erasure in the module note)."""
        self.overwrite(name, b"")

    def _holds_only(self, name, payload):
        """True if every slot is absent or a valid copy of payload (a torn or foreign slot
        may still hold old ciphertext, readable with the storage key)."""
        for suffix in SLOTS:
            blob = self._storage.read(name + suffix)
            if blob is None:
                continue
            opened = self._open(name, blob)
            if opened is None or opened[1] != payload:
                return False
        return True

    def _check_anchor(self, name, gen):
        if gen is not None and name in self._anchored:
            floor = self._anchor.get(name)
            if gen < floor:
                raise RecordRollback(name, "generation %d below anchor %d" % (gen, floor))

    def write(self, name, payload):
        """Seal payload (bytes) into the slot not holding the newest valid copy.

        Works whatever the slots hold (a corrupt record is replaced), so a caller that has
        decided to start over (e.g. after a rejoin) can. Returns the new generation.
        """
        check_record_name(name)
        if not isinstance(payload, (bytes, bytearray)):
            raise TypeError("record payload must be bytes")
        last = self._last.pop(name, None)
        if last is None:
            _, newest, gen, _, _ = self._scan(name)
        else:
            newest, gen = last
        if gen is None:  # nothing valid: any generation is newer than garbage
            newest, gen = 1, 0
        anchored = name in self._anchored
        if anchored:
            gen = max(gen, self._anchor.get(name))
        if gen >= MAX_GENERATION:
            raise OverflowError("record generation exhausted")
        gen += 1
        head = MAGIC + struct.pack(">BI", VERSION, gen)
        nonce = self._entropy.random_bytes(NONCE_LEN)
        if len(nonce) != NONCE_LEN:
            raise ValueError("entropy port returned a short nonce")
        sealed = aes_ccm_encrypt(self._key, nonce, bytes(payload), _aad(name, head), TAG_LEN)
        self._storage.write(name + SLOTS[1 - newest], head + nonce + sealed)
        if anchored:
            self._anchor.advance(name, gen)
        self._last[name] = (1 - newest, gen)  # not reached if a write raised
        return gen

    def _scan(self, name):
        """(slots that count: 0 if none exists or the only one is an anchored record's torn
        first write, newest slot index, its generation, its payload, payload of a second
        valid copy with the same generation or None); generation None if none valid.
        Refreshes the remembered newest slot."""
        found = 0
        best = None
        gen = None
        payload = None
        other = None
        for i in (0, 1):
            blob = self._storage.read(name + SLOTS[i])
            if blob is None:
                continue
            found += 1
            opened = self._open(name, blob)
            if opened is None:
                continue
            g, data = opened
            if gen is None or g > gen:
                best, gen, payload, other = i, g, data, None
            elif g == gen:
                other = data
        if gen is None or other is not None:
            self._last.pop(name, None)
        else:
            self._last[name] = (best, gen)
        if gen is None and found == 1 and name in self._anchored and not self._anchor.get(name):
            found = 0  # a torn first write: never written (module note)
        return found, best, gen, payload, other

    def _open(self, name, blob):
        """(generation, payload) of a valid slot, or None."""
        if len(blob) < OVERHEAD or blob[:2] != MAGIC or blob[2] != VERSION:
            return None
        head = blob[:7]
        try:
            data = aes_ccm_decrypt(
                self._key, blob[7:HEADER_LEN], blob[HEADER_LEN:], _aad(name, head), TAG_LEN
            )
        except AuthError:
            return None
        return struct.unpack(">I", head[3:7])[0], data


def read_valid(records, name, valid, corrupt):
    """The payload of record name if valid(payload) holds, None if it is absent; one that is
    corrupt or fails valid() reads as None and its name is appended to the list corrupt, for
    owners that recover from a lost record by skipping ahead (event and reading pages)."""
    try:
        data = records.read(name)
    except RecordCorrupt:
        data = False
    if data is None:
        return None
    if data is not False and valid(data):
        return bytes(data)
    corrupt.append(name)
    return None


def _aad(name, head):
    # Record names are lower case and the magic is upper case, so name | head is unambiguous.
    return name.encode() + head
