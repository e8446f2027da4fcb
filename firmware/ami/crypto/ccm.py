"""AES-CCM authenticated encryption (NIST SP 800-38C, RFC 3610), built on the AES block."""

from ami.crypto.aes import check_key, encryptor, xor
from ami.crypto.ct import constant_time_eq
from ami.crypto.errors import AuthError


def _check(key, nonce, tag_len, msg_len):
    """Raise ValueError for a size CCM does not allow (shared with the native backend)."""
    check_key(key)
    if not 7 <= len(nonce) <= 13:
        raise ValueError("CCM nonce must be 7 to 13 bytes")
    if tag_len < 4 or tag_len > 16 or tag_len & 1:
        raise ValueError("CCM tag must be 4 to 16 bytes, even")
    if msg_len >> (8 * (15 - len(nonce))):
        raise ValueError("CCM message too long for this nonce size")


def _mac(enc, nonce, msg, aad, tag_len):
    """CBC-MAC over B0, the encoded associated data and the message (SP 800-38C A.2)."""
    q = 15 - len(nonce)
    flags = (0x40 if aad else 0) | ((tag_len - 2) // 2) << 3 | (q - 1)
    blocks = bytes((flags,)) + nonce + len(msg).to_bytes(q, "big")
    if aad:
        a = len(aad)
        if a < 0xFF00:
            head = a.to_bytes(2, "big")
        elif a >> 32 == 0:
            head = b"\xff\xfe" + a.to_bytes(4, "big")
        else:
            head = b"\xff\xff" + a.to_bytes(8, "big")
        blocks += _pad16(head + aad)
    blocks += _pad16(msg)
    x = 0
    for i in range(0, len(blocks), 16):
        x ^= int.from_bytes(blocks[i : i + 16], "big")
        x = int.from_bytes(enc(x.to_bytes(16, "big")), "big")
    return x.to_bytes(16, "big")[:tag_len]


def _pad16(data):
    rem = len(data) % 16
    return data + bytes(16 - rem) if rem else data


def _keystream(enc, nonce, length):
    """S0 || S1 || ... for CTR mode, produced by one multi-block ECB call."""
    q = 15 - len(nonce)
    prefix = bytes((q - 1,)) + nonce
    count = (length + 15) // 16 + 1
    return enc(b"".join([prefix + i.to_bytes(q, "big") for i in range(count)]))


def aes_ccm_encrypt(key, nonce, plaintext, aad=b"", tag_len=8):
    """Encrypt and authenticate: returns ciphertext || tag (tag_len bytes)."""
    _check(key, nonce, tag_len, len(plaintext))
    enc = encryptor(key)
    tag = _mac(enc, nonce, plaintext, aad, tag_len)
    s = _keystream(enc, nonce, len(plaintext))
    n = len(plaintext)
    body = xor(plaintext, s[16 : 16 + n]) if n else b""
    return body + xor(tag, s[:tag_len])


def aes_ccm_decrypt(key, nonce, data, aad=b"", tag_len=8):
    """Check and decrypt ciphertext || tag; raises AuthError (and reveals nothing) on a bad tag."""
    n = len(data) - tag_len
    _check(key, nonce, tag_len, max(n, 0))
    if n < 0:
        raise AuthError("CCM input shorter than its tag")
    enc = encryptor(key)
    s = _keystream(enc, nonce, n)
    plaintext = xor(data[:n], s[16 : 16 + n]) if n else b""
    expected = xor(_mac(enc, nonce, plaintext, aad, tag_len), s[:tag_len])
    if not constant_time_eq(expected, data[n:]):
        raise AuthError("CCM tag mismatch")
    return plaintext
