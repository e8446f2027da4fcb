"""AES-CMAC (NIST SP 800-38B, RFC 4493)."""

from ami.crypto.aes import check_key, encryptor

_MASK128 = (1 << 128) - 1


def _dbl(x):
    """Doubling in GF(2^128) with the CMAC polynomial (Rb = 0x87)."""
    x <<= 1
    return (x & _MASK128) ^ 0x87 if x >> 128 else x


def aes_cmac(key, msg):
    """16-byte AES-CMAC of msg under a 16- or 32-byte key."""
    check_key(key)
    enc = encryptor(key)
    k1 = _dbl(int.from_bytes(enc(bytes(16)), "big"))
    n = len(msg)
    if n and n % 16 == 0:
        last = int.from_bytes(msg[n - 16 :], "big") ^ k1
        head = n - 16
    else:
        head = n - n % 16
        tail = msg[head:] + b"\x80" + bytes(15 - n % 16)
        last = int.from_bytes(tail, "big") ^ _dbl(k1)
    x = 0
    for i in range(0, head, 16):
        x ^= int.from_bytes(msg[i : i + 16], "big")
        x = int.from_bytes(enc(x.to_bytes(16, "big")), "big")
    return enc((x ^ last).to_bytes(16, "big"))
