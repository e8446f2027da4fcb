"""AES key wrap (RFC 3394, NIST SP 800-38F KW) for delivering keys under a key-encryption key."""

from ami.crypto.aes import check_key, decryptor, encryptor
from ami.crypto.ct import constant_time_eq
from ami.crypto.errors import AuthError

_IV = b"\xa6" * 8


def _check(kek, data, minimum):
    check_key(kek)
    if len(data) < minimum or len(data) % 8:
        raise ValueError("key wrap input must be a multiple of 8 bytes, at least %d" % minimum)


def aes_key_wrap(kek, key):
    """Wrap key (16 bytes or more, a multiple of 8) under kek; 8 bytes longer than key."""
    _check(kek, key, 16)
    enc = encryptor(kek)
    n = len(key) // 8
    r = [key[8 * i : 8 * i + 8] for i in range(n)]
    a = int.from_bytes(_IV, "big")
    for j in range(6):
        for i in range(n):
            b = enc(a.to_bytes(8, "big") + r[i])
            a = int.from_bytes(b[:8], "big") ^ (n * j + i + 1)
            r[i] = b[8:]
    return a.to_bytes(8, "big") + b"".join(r)


def aes_key_unwrap(kek, wrapped):
    """Unwrap and check integrity; raises AuthError if wrapped was not made under kek."""
    _check(kek, wrapped, 24)
    dec = decryptor(kek)
    n = len(wrapped) // 8 - 1
    a = int.from_bytes(wrapped[:8], "big")
    r = [wrapped[8 * i + 8 : 8 * i + 16] for i in range(n)]
    for j in range(5, -1, -1):
        for i in range(n - 1, -1, -1):
            b = dec((a ^ (n * j + i + 1)).to_bytes(8, "big") + r[i])
            a = int.from_bytes(b[:8], "big")
            r[i] = b[8:]
    if not constant_time_eq(a.to_bytes(8, "big"), _IV):
        raise AuthError("key unwrap integrity check failed")
    return b"".join(r)
