"""SHA-256, HMAC-SHA-256 (RFC 2104) and HKDF-SHA-256 (RFC 5869).

MicroPython has hashlib.sha256 but no hmac module, so HMAC is built here from the hash;
a hashlib object may be finalised once only, so each call makes fresh ones.
"""

import hashlib

_IPAD = bytes(0x36 for _ in range(64))
_OPAD = bytes(0x5C for _ in range(64))


def sha256(msg):
    """SHA-256 digest of msg."""
    return hashlib.sha256(msg).digest()


def _pad_key(key):
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    return bytes(key) + bytes(64 - len(key))


def _xor_pad(key, pad):
    return (int.from_bytes(key, "big") ^ int.from_bytes(pad, "big")).to_bytes(64, "big")


def hmac_sha256(key, msg):
    """HMAC-SHA-256 of msg under key."""
    k = _pad_key(key)
    inner = hashlib.sha256(_xor_pad(k, _IPAD))
    inner.update(msg)
    outer = hashlib.sha256(_xor_pad(k, _OPAD))
    outer.update(inner.digest())
    return outer.digest()


def hkdf_sha256(ikm, salt, info, length, mac=hmac_sha256):
    """HKDF-SHA-256 extract-then-expand; ValueError if length is past 255 * 32 bytes.

    mac is the HMAC-SHA-256 to build on (the native backend passes a faster one)."""
    if length < 0 or length > 255 * 32:
        raise ValueError("HKDF length out of range")
    prk = mac(salt if salt else bytes(32), ikm)
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = mac(prk, block + info + bytes((counter,)))
        out += block
        counter += 1
    return out[:length]
