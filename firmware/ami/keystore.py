"""The device key store: provisioned identity and keys behind a secure-element-style API.

The key material lives in the sealed record "keystore" (see ami.link.records): encrypted and
authenticated under the storage key, which comes from the device-unique secret, so a copied
file without that secret reveals nothing. Private and root keys never leave this object:
callers ask it to sign, to agree a key, or to derive session keys.
"""

from ami import crypto

RECORD = "keystore"

# TLV tags of the keystore record (tag, 2-byte length, value): unknown tags are kept, so a
# later firmware can add fields without breaking an older image.
T_EUI = 1
T_ROOT_KEY = 2
T_DEVICE_KEY = 3
T_CERT = 4
T_CA_PUBLIC = 5
T_HE_EUI = 6
T_HE_PUBLIC = 7
T_SIGNER = 8  # optional, repeatable by key id: key id (1) || public key (65) of a command signer

_REQUIRED = (T_EUI, T_ROOT_KEY, T_DEVICE_KEY, T_CERT, T_CA_PUBLIC, T_HE_EUI, T_HE_PUBLIC)
_SIZES = {T_EUI: 8, T_ROOT_KEY: 16, T_DEVICE_KEY: 32, T_HE_EUI: 8}


class KeystoreError(Exception):
    """The key store is missing or unusable: the device must be (re-)provisioned."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def encode(fields):
    """Serialise a list of (tag, value) pairs in the given order."""
    out = b""
    for tag, value in fields:
        if not 0 < tag < 256 or len(value) > 0xFFFF:
            raise ValueError("bad keystore field")
        out += bytes((tag,)) + len(value).to_bytes(2, "big") + bytes(value)
    return out


def decode(data):
    """Parse keystore TLVs into a dict tag -> value (signers: a list of values under
    T_SIGNER); KeystoreError if malformed or incomplete."""
    fields = {T_SIGNER: []}
    i = 0
    n = len(data)
    while i < n:
        if i + 3 > n:
            raise KeystoreError("keystore_malformed")
        tag = data[i]
        length = int.from_bytes(data[i + 1 : i + 3], "big")
        value = bytes(data[i + 3 : i + 3 + length])
        if i + 3 + length > n or (tag in fields and tag != T_SIGNER):
            raise KeystoreError("keystore_malformed")
        if tag == T_SIGNER:
            if length != 66:
                raise KeystoreError("keystore_malformed")
            fields[T_SIGNER].append(value)
        else:
            fields[tag] = value
        i += 3 + length
    for tag in _REQUIRED:
        if tag not in fields or len(fields[tag]) != _SIZES.get(tag, len(fields[tag])):
            raise KeystoreError("keystore_malformed")
    return fields


class Keystore:
    """Provisioned identity: EUI, certificate, trust anchors; private keys stay inside."""

    def __init__(self, fields):
        self._f = fields
        self.eui = fields[T_EUI]
        self.cert = fields[T_CERT]
        self.ca_public = fields[T_CA_PUBLIC]
        self.he_eui = fields[T_HE_EUI]
        self.he_public = fields[T_HE_PUBLIC]
        # Trust anchors of signed commands: signer key id -> public key.
        self.signers = {v[0]: v[1:] for v in fields.get(T_SIGNER, ())}

    @classmethod
    def load(cls, records):
        """Open the key store record; KeystoreError if absent or corrupt (never defaults)."""
        from ami.link.records import RecordCorrupt

        try:
            data = records.read(RECORD)
        except RecordCorrupt:
            raise KeystoreError("keystore_corrupt") from None
        if data is None:
            raise KeystoreError("unprovisioned")
        return cls(decode(data))

    def sign(self, msg):
        """ECDSA signature of msg with the device's certified key."""
        return crypto.ecdsa_sign(self._f[T_DEVICE_KEY], msg)

    def derive(self, ikm, info, length):
        """HKDF-SHA-256 of ikm salted with the root key: binds derived keys to the root key."""
        return crypto.hkdf_sha256(ikm, self._f[T_ROOT_KEY], info, length)

    def join_mic(self, covered):
        """The JOIN_REQUEST mic under the key derived from the root key."""
        from ami.link.join import mic_key, request_mic

        return request_mic(mic_key(self._f[T_ROOT_KEY]), covered)

    def agree(self, private32, peer_public):
        """ECDH with an ephemeral private key (InvalidKey for a bad peer point)."""
        return crypto.ecdh(private32, peer_public)
