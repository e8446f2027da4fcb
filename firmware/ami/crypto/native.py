"""The native backend (CPython only): the same API on cryptography and pycryptodome.

Selected by default on CPython for speed (the head end, the signer and large fleets);
``AMI_CRYPTO=portable`` replaces it with the board's code. Input checks that decide what is
accepted are shared with the portable code, so both backends accept and reject the same
inputs; only the arithmetic differs, and tests cross-check the two.
"""

import binascii
import hashlib
import hmac

from Crypto.Cipher import AES
from Crypto.Hash import CMAC
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from ami.crypto import ccm as _ccm
from ami.crypto import ecdsa as _ecdsa
from ami.crypto import kdf as _kdf
from ami.crypto import keywrap as _kw
from ami.crypto import p256
from ami.crypto.aes import check_key
from ami.crypto.ct import constant_time_eq
from ami.crypto.errors import AuthError, InvalidKey

BACKEND = "native"

_CURVE = ec.SECP256R1()
_ECDSA_DET = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
_ECDSA = ec.ECDSA(hashes.SHA256())


def aes_ccm_encrypt(key, nonce, plaintext, aad=b"", tag_len=8):
    """Encrypt and authenticate: returns ciphertext || tag (tag_len bytes)."""
    _ccm._check(key, nonce, tag_len, len(plaintext))
    return AESCCM(bytes(key), tag_len).encrypt(bytes(nonce), bytes(plaintext), bytes(aad))


def aes_ccm_decrypt(key, nonce, data, aad=b"", tag_len=8):
    """Check and decrypt ciphertext || tag; raises AuthError on a bad tag."""
    _ccm._check(key, nonce, tag_len, max(len(data) - tag_len, 0))
    if len(data) < tag_len:
        raise AuthError("CCM input shorter than its tag")
    try:
        return AESCCM(bytes(key), tag_len).decrypt(bytes(nonce), bytes(data), bytes(aad))
    except InvalidTag:
        raise AuthError("CCM tag mismatch") from None


def aes_cmac(key, msg):
    """16-byte AES-CMAC of msg under a 16- or 32-byte key."""
    check_key(key)
    return CMAC.new(key, msg=msg, ciphermod=AES).digest()


def sha256(msg):
    """SHA-256 digest of msg."""
    return hashlib.sha256(msg).digest()


def hmac_sha256(key, msg):
    """HMAC-SHA-256 of msg under key."""
    return hmac.digest(key, msg, "sha256")


def hkdf_sha256(ikm, salt, info, length):
    """HKDF-SHA-256 extract-then-expand; ValueError if length is past 255 * 32 bytes."""
    return _kdf.hkdf_sha256(ikm, salt, info, length, hmac_sha256)


def aes_key_wrap(kek, key):
    """Wrap key (16 bytes or more, a multiple of 8) under kek (RFC 3394)."""
    _kw._check(kek, key, 16)
    return keywrap.aes_key_wrap(kek, key)


def aes_key_unwrap(kek, wrapped):
    """Unwrap and check integrity; raises AuthError if wrapped was not made under kek."""
    _kw._check(kek, wrapped, 24)
    try:
        return keywrap.aes_key_unwrap(kek, wrapped)
    except keywrap.InvalidUnwrap:
        raise AuthError("key unwrap integrity check failed") from None


# CRC-16/KERMIT is CRC-CCITT with reflected input and output: bit-reverse each byte, run
# binascii's CCITT (C speed), bit-reverse the 16-bit result.
_REV8 = bytes(int("{:08b}".format(i)[::-1], 2) for i in range(256))


def _rev16(v):
    return _REV8[v & 0xFF] << 8 | _REV8[v >> 8]


def crc16(data, crc=0):
    """CRC-16/KERMIT of data, continuing from a previous result crc."""
    return _rev16(binascii.crc_hqx(bytes(data).translate(_REV8), _rev16(crc)))


def _private(private32):
    return ec.derive_private_key(_ecdsa._scalar(private32), _CURVE)


def p256_public_key(private32):
    """65-byte uncompressed public point of a 32-byte private scalar."""
    pub = _private(private32).public_key().public_numbers()
    return p256.encode_point(pub.x, pub.y)


def ecdsa_sign(private32, msg):
    """64-byte r || s signature of SHA-256(msg); deterministic (RFC 6979)."""
    r, s = decode_dss_signature(_private(private32).sign(msg, _ECDSA_DET))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _public(public):
    x, y = p256.decode_point(public)  # the portable checks decide what is a valid point
    return ec.EllipticCurvePublicNumbers(x, y, _CURVE).public_key()


def ecdsa_verify(public, msg, sig):
    """True if sig (64-byte r || s) is a valid signature of SHA-256(msg) under public."""
    try:
        key = _public(public)
        if len(sig) != 64:
            return False
        r = int.from_bytes(sig[:32], "big")
        s = int.from_bytes(sig[32:], "big")
        if not (0 < r < p256.N and 0 < s < p256.N):
            return False
        key.verify(encode_dss_signature(r, s), msg, _ECDSA)
        return True
    except (TypeError, ValueError, InvalidSignature):
        return False


def ecdh(private32, peer_public):
    """32-byte shared x coordinate; InvalidKey for a bad peer point."""
    priv = _private(private32)
    return priv.exchange(ec.ECDH(), _public(peer_public))


__all__ = [
    "BACKEND", "AuthError", "InvalidKey", "aes_ccm_decrypt", "aes_ccm_encrypt", "aes_cmac",
    "aes_key_unwrap", "aes_key_wrap", "constant_time_eq", "crc16", "ecdh", "ecdsa_sign",
    "ecdsa_verify", "hkdf_sha256", "hmac_sha256", "p256_public_key", "sha256",
]
