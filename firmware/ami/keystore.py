"""The device key store: identity and keys behind a secure-element-style API.

Everything lives in the sealed record "keystore" (ami.store.records): encrypted and
authenticated under the storage key, which comes from the device-unique secret, so a copied
file without that secret reveals nothing; the record is anchored, so putting back an older
copy is detected. Private and root keys never leave this object: callers ask it to sign,
agree, derive, make a join mic or unwrap a delivered key (docs/protocol.md section 13).

Record payload: TLVs `tag (1) | length (2) | value`. Identity tags: EUI, certificate, CA
public key, head-end EUI and public key. Each key is a T_KEY entry

    class (1) | id (1) | usage (1) | state (1) | generation (4) | expires (4) | value

class ROOT (16-byte AES root key), DEVICE (32-byte P-256 private key) or SIGNER (65-byte
public key of a command signer, id = its key id); usage flags say what the API may do with
it; state ACTIVE, PENDING (delivered, waiting for confirmation) or RETIRING (still accepted
until `expires`, in seconds). A PENDING root's `expires` counts the joins begun with it,
persisted before each one, so reboots never give it more than ROOT_ATTEMPTS tries. Unknown
tags are kept, so a later image can add fields.
"""

import struct

from ami import crypto
from ami.keyschedule import mic_key, root_kek
from ami.store.records import RecordCorrupt, RecordRollback

RECORD = "keystore"

T_EUI = 1
T_CERT = 4
T_CA_PUBLIC = 5
T_HE_EUI = 6
T_HE_PUBLIC = 7
T_KEY = 9

ROOT = 1
DEVICE = 2
SIGNER = 3

U_DERIVE = 1  # HKDF salt of session keys, join mic
U_SIGN = 2
U_VERIFY = 4
U_UNWRAP = 8  # key-encryption key of a delivered root key

ACTIVE = 1
PENDING = 2
RETIRING = 3

ROOT_ATTEMPTS = 3  # joins begun with a pending root before falling back to the active one

_SIZES = {T_EUI: 8, T_HE_EUI: 8, T_CA_PUBLIC: 65, T_HE_PUBLIC: 65}
_REQUIRED = (T_EUI, T_CERT, T_CA_PUBLIC, T_HE_EUI, T_HE_PUBLIC)
_KEY_HDR = ">BBBBII"
_KEY_HDR_LEN = 12
_VALUE_LEN = {ROOT: 16, DEVICE: 32, SIGNER: 65}
_USAGE = {ROOT: U_DERIVE | U_UNWRAP, DEVICE: U_SIGN, SIGNER: U_VERIFY}


class KeystoreError(Exception):
    """The key store is missing or unusable: the device must be (re-)provisioned."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def encode_key(cls, key_id, state, generation, expires, value):
    """One T_KEY value (usage flags by class)."""
    if _VALUE_LEN.get(cls) != len(value):
        raise ValueError("bad key value for class %d" % cls)
    head = struct.pack(_KEY_HDR, cls, key_id, _USAGE[cls], state, generation, expires)
    return head + bytes(value)


def encode(fields):
    """Serialise (tag, value) pairs in the given order."""
    out = []
    for tag, value in fields:
        if not 0 < tag < 256 or len(value) > 0xFFFF:
            raise ValueError("bad keystore field")
        out.append(bytes((tag,)) + len(value).to_bytes(2, "big") + bytes(value))
    return b"".join(out)


def image(eui, cert, ca_public, he_eui, he_public, root_key, device_key, signers):
    """A provisioning payload: identity, root key, device key, signers [(key id, public)]."""
    fields = [
        (T_EUI, eui), (T_CERT, cert), (T_CA_PUBLIC, ca_public), (T_HE_EUI, he_eui),
        (T_HE_PUBLIC, he_public),
        (T_KEY, encode_key(ROOT, 0, ACTIVE, 1, 0, root_key)),
        (T_KEY, encode_key(DEVICE, 0, ACTIVE, 1, 0, device_key)),
    ]
    for key_id, public in signers:
        fields.append((T_KEY, encode_key(SIGNER, key_id, ACTIVE, 1, 0, public)))
    return encode(fields)


def decode(data):
    """(identity dict tag -> value, keys list of [class, id, usage, state, gen, expires,
    value], other TLVs); KeystoreError if malformed or incomplete."""
    ident = {}
    keys = []
    other = []
    i = 0
    n = len(data)
    while i < n:
        if i + 3 > n:
            raise KeystoreError("keystore_malformed")
        tag = data[i]
        length = int.from_bytes(data[i + 1 : i + 3], "big")
        value = bytes(data[i + 3 : i + 3 + length])
        if tag == 0 or i + 3 + length > n:
            raise KeystoreError("keystore_malformed")
        i += 3 + length
        if tag == T_KEY:
            if length < _KEY_HDR_LEN:
                raise KeystoreError("keystore_malformed")
            k = list(struct.unpack(_KEY_HDR, value[:_KEY_HDR_LEN]))
            k.append(value[_KEY_HDR_LEN:])
            if _VALUE_LEN.get(k[0]) != len(k[6]) or not ACTIVE <= k[3] <= RETIRING:
                raise KeystoreError("keystore_malformed")
            keys.append(k)
        elif tag in _REQUIRED:
            if tag in ident:
                raise KeystoreError("keystore_malformed")
            ident[tag] = value
        else:
            other.append((tag, value))
    for tag in _REQUIRED:
        if tag not in ident or len(ident[tag]) != _SIZES.get(tag, len(ident[tag])):
            raise KeystoreError("keystore_malformed")
    return ident, keys, other


class Keystore:
    """Provisioned identity and keys; key values never leave through this API."""

    def __init__(self, records, ident, keys, other=()):
        self._records = records
        self._ident = ident
        self._keys = keys
        self._other = list(other)
        self.eui = ident[T_EUI]
        self.cert = ident[T_CERT]
        self.ca_public = ident[T_CA_PUBLIC]
        self.he_eui = ident[T_HE_EUI]
        self.he_public = ident[T_HE_PUBLIC]
        if self._find(ROOT, ACTIVE) is None or self._find(DEVICE, ACTIVE) is None:
            raise KeystoreError("keystore_malformed")
        self._join_root = self._find(ROOT, ACTIVE)

    @classmethod
    def load(cls, records):
        """Open the key store; KeystoreError if absent, erased, rolled back or corrupt:
        never defaults."""
        try:
            data = records.read(RECORD)
        except RecordRollback:
            raise KeystoreError("keystore_rollback") from None
        except RecordCorrupt:
            raise KeystoreError("keystore_corrupt") from None
        if data is None:
            raise KeystoreError("unprovisioned")
        if not data:
            raise KeystoreError("zeroized")
        ident, keys, other = decode(data)
        return cls(records, ident, keys, other)

    # ---- queries -----------------------------------------------------------------------

    def _find(self, cls, state, key_id=None):
        for k in self._keys:
            if k[0] == cls and k[3] == state and (key_id is None or k[1] == key_id):
                return k
        return None

    def _value(self, k, usage):
        if k is None or not k[2] & usage:
            raise KeystoreError("key_usage")
        return k[6]

    def signers(self, now_s):
        """Trust anchors of signed commands usable now: key id -> public key."""
        out = {}
        for k in self._keys:
            if k[0] == SIGNER and (k[3] == ACTIVE or (k[3] == RETIRING and now_s <= k[5])):
                out[k[1]] = k[6]
        return out

    def signer_active(self, key_id):
        """True if key_id is an active command signer (not one in its rotation grace)."""
        return self._find(SIGNER, ACTIVE, key_id) is not None

    def generation(self, cls):
        """Generation of the active key of a class."""
        return self._find(cls, ACTIVE)[4]

    def pending_root(self):
        """Generation of the delivered root key awaiting confirmation, or None."""
        k = self._find(ROOT, PENDING)
        return None if k is None else k[4]

    # ---- operations (keys stay inside) -------------------------------------------------

    def sign(self, msg):
        """ECDSA signature of msg with the device's certified key."""
        return crypto.ecdsa_sign(self._value(self._find(DEVICE, ACTIVE), U_SIGN), msg)

    def agree(self, private32, peer_public):
        """ECDH with an ephemeral private key (InvalidKey for a bad peer point)."""
        return crypto.ecdh(private32, peer_public)

    def begin_join(self):
        """Choose the root key of the next join: a pending root (to confirm it) while it
        has attempts left, its count persisted first; else the active one, and a pending
        root that used up its attempts is dropped (the head end never took it). Returns
        (generation chosen, True if a pending root was dropped)."""
        pending = self._find(ROOT, PENDING)
        self._join_root = self._find(ROOT, ACTIVE)
        if pending is None:
            return self._join_root[4], False
        if pending[5] >= ROOT_ATTEMPTS:
            self._save([e for e in self._keys if e is not pending])
            return self._join_root[4], True
        tried = pending[:5] + [pending[5] + 1, pending[6]]
        self._save([tried if e is pending else e for e in self._keys])
        self._join_root = tried
        return tried[4], False

    def join_mic(self, covered):
        """The JOIN_REQUEST mic under the key derived from the join's root key."""
        from ami.link.join import request_mic

        return request_mic(mic_key(self._value(self._join_root, U_DERIVE)), covered)

    def derive(self, ikm, info, length):
        """HKDF-SHA-256 of ikm salted with the join's root key."""
        return crypto.hkdf_sha256(ikm, self._value(self._join_root, U_DERIVE), info, length)

    def join_confirmed(self):
        """The head end completed a join: a pending root it used becomes the active one
        (the old root is destroyed). Returns True if the root changed."""
        k = self._join_root
        if k[3] != PENDING:
            return False
        keys = [e for e in self._keys if e[0] != ROOT]
        keys.append([ROOT, k[1], k[2], ACTIVE, k[4], 0, k[6]])
        self._save(keys, erase=True)
        self._join_root = keys[-1]
        return True

    def install_root(self, generation, wrapped):
        """A new root key wrapped (RFC 3394) under the active root's KEK, stored PENDING
        until a join confirms it. Returns None or a refusal reason."""
        active = self._find(ROOT, ACTIVE)
        if generation <= active[4]:
            return "key_generation"
        kek = root_kek(self._value(active, U_UNWRAP))
        try:
            root = crypto.aes_key_unwrap(kek, wrapped)
        except (crypto.AuthError, ValueError):
            return "unwrap_failed"
        if len(root) != 16:
            return "unwrap_failed"
        keys = [e for e in self._keys if not (e[0] == ROOT and e[3] == PENDING)]
        keys.append([ROOT, 0, _USAGE[ROOT], PENDING, generation, 0, root])
        self._save(keys)
        return None

    def install_signer(self, key_id, public, old_id, grace_s, now_s):
        """A new command signer key, delivered in a command signed by the old one: the new
        key is active at once, the old stays accepted for grace_s more seconds."""
        keys = []
        for e in self._keys:
            if e[0] == SIGNER and e[1] == key_id:
                continue  # replaced
            if e[0] == SIGNER and e[1] == old_id and e[3] == ACTIVE:
                e = [SIGNER, e[1], e[2], RETIRING, e[4], min(now_s + grace_s, 0xFFFFFFFF), e[6]]
            keys.append(e)
        gen = 1
        for e in self._keys:
            if e[0] == SIGNER and e[4] >= gen:
                gen = e[4] + 1
        keys.append([SIGNER, key_id, _USAGE[SIGNER], ACTIVE, gen, 0, bytes(public)])
        self._save(keys)

    def expire(self, now_s):
        """Drop retiring keys whose grace ended; True if any was dropped (persisted).
        Called before every command: nothing is allocated unless a key expired."""
        for e in self._keys:
            if e[3] == RETIRING and now_s > e[5]:
                self._save([k for k in self._keys if not (k[3] == RETIRING and now_s > k[5])])
                return True
        return False

    def _save(self, keys, erase=False):
        """Persist the key list; RAM follows only once the write returned. erase: write it
        twice, so the other slot no longer holds the previous list (a destroyed key)."""
        fields = [(t, self._ident[t]) for t in _REQUIRED]
        for k in keys:
            fields.append((T_KEY, struct.pack(_KEY_HDR, *k[:6]) + k[6]))
        data = encode(fields + self._other)
        if erase:
            self._records.overwrite(RECORD, data)
        else:
            self._records.write(RECORD, data)
        self._keys = keys
