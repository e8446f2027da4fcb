"""Standard cryptography for the firmware, one API on MicroPython and CPython.

Two backends export the same names: ``portable`` (the project's own code; the AES block
from cryptolib or pycryptodome) runs everywhere and is the reference; ``native`` (CPython
only: pycryptodome and cryptography) is the default on CPython. ``AMI_CRYPTO=portable``
forces the board's code, ``AMI_CRYPTO=native`` insists on the native one.
"""

from ami.runtime import getenv

_choice = getenv("AMI_CRYPTO") or "auto"
if _choice not in ("auto", "native", "portable"):
    raise ImportError("AMI_CRYPTO must be auto, native or portable")
_backend = None
if _choice != "portable":
    try:
        import Crypto  # noqa: F401  pycryptodome: checked first so boards never load native

        from ami.crypto import native as _backend
    except ImportError:
        if _choice == "native":
            raise
if _backend is None:
    from ami.crypto import portable as _backend

BACKEND = _backend.BACKEND
AuthError = _backend.AuthError
InvalidKey = _backend.InvalidKey
aes_ccm_encrypt = _backend.aes_ccm_encrypt
aes_ccm_decrypt = _backend.aes_ccm_decrypt
aes_cmac = _backend.aes_cmac
sha256 = _backend.sha256
hmac_sha256 = _backend.hmac_sha256
hkdf_sha256 = _backend.hkdf_sha256
aes_key_wrap = _backend.aes_key_wrap
aes_key_unwrap = _backend.aes_key_unwrap
p256_public_key = _backend.p256_public_key
ecdsa_sign = _backend.ecdsa_sign
ecdsa_verify = _backend.ecdsa_verify
ecdh = _backend.ecdh
crc16 = _backend.crc16
constant_time_eq = _backend.constant_time_eq
