"""The AES block cipher: the one runtime adapter of the crypto layer.

MicroPython supplies it through ``cryptolib`` (ECB, mode 1), CPython through pycryptodome.
Every mode (CCM, CMAC, key wrap) is the project's own code on top of these two functions.
Both take whole blocks: passing several blocks at once encrypts each one independently
(ECB), which lets CTR keystreams be produced in one call.
"""

try:
    from cryptolib import aes as _aes

    def encryptor(key):
        """Return a function encrypting a multiple of 16 bytes with AES-ECB under key."""
        return _aes(key, 1).encrypt

    def decryptor(key):
        """Return a function decrypting a multiple of 16 bytes with AES-ECB under key."""
        # cryptolib objects cannot both encrypt and decrypt: one object per direction.
        return _aes(key, 1).decrypt

except ImportError:  # CPython
    from Crypto.Cipher import AES as _AES

    def encryptor(key):
        """Return a function encrypting a multiple of 16 bytes with AES-ECB under key."""
        return _AES.new(key, _AES.MODE_ECB).encrypt

    def decryptor(key):
        """Return a function decrypting a multiple of 16 bytes with AES-ECB under key."""
        return _AES.new(key, _AES.MODE_ECB).decrypt


def check_key(key):
    """Raise ValueError unless key is an AES-128 or AES-256 key (cryptolib has no AES-192)."""
    if not isinstance(key, (bytes, bytearray)) or len(key) not in (16, 32):
        raise ValueError("AES key must be 16 or 32 bytes")


def xor(a, b):
    """XOR two byte strings of equal length (one bigint operation, fast on both runtimes)."""
    n = len(a)
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(n, "big")
