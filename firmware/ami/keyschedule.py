"""Every key derived from another, with its label, for both ends of the link
(docs/protocol.md sections 3, 5 and 13): the storage key, the join's mic key and session
keys, and the key-encryption keys that wrap delivered session, group and root keys."""

from ami import crypto

STORAGE_KEY_INFO = b"AMI storage key"
MIC_INFO = b"AMI-JOIN-1 mic"
KEYS_INFO = b"AMI-1 keys"
REKEY_KEK_INFO = b"AMI rekey kek"
GROUP_KEK_INFO = b"AMI group kek"
ROOT_KEK_INFO = b"AMI root kek"


def derive_storage_key(device_secret):
    """The 16-byte storage key: HKDF-SHA-256(device secret, no salt, "AMI storage key")."""
    if not isinstance(device_secret, (bytes, bytearray)) or not device_secret:
        raise ValueError("device secret must be non-empty bytes")
    return crypto.hkdf_sha256(bytes(device_secret), b"", STORAGE_KEY_INFO, 16)


def mic_key(root_key):
    """K_jr, the key of the JOIN_REQUEST mic, from a device's root key."""
    return crypto.hkdf_sha256(root_key, b"", MIC_INFO, 16)


def session_keys(derive, z, th3):
    """(K_up, K_down, K_c) of a join: derive(ikm, info, length) is HKDF-SHA-256 salted with
    the join's root key (the device's key store keeps its root inside)."""
    okm = derive(z, KEYS_INFO + th3, 48)
    return okm[:16], okm[16:32], okm[32:48]


def rekey_kek(k_down):
    """The key that wraps session keys delivered by a KEY_CHANGE (section 13.1)."""
    return crypto.hkdf_sha256(k_down, b"", REKEY_KEK_INFO, 16)


def group_kek(k_down):
    """The key that wraps group keys for one session."""
    return crypto.hkdf_sha256(k_down, b"", GROUP_KEK_INFO, 16)


def root_kek(root_key):
    """The key that wraps a new root key under the active one."""
    return crypto.hkdf_sha256(root_key, b"", ROOT_KEK_INFO, 16)
