"""The portable backend: the project's own code, exactly what a board runs."""

from ami.crypto.ccm import aes_ccm_decrypt, aes_ccm_encrypt
from ami.crypto.cmac import aes_cmac
from ami.crypto.crc import crc16
from ami.crypto.ct import constant_time_eq
from ami.crypto.ecdsa import ecdh, ecdsa_sign, ecdsa_verify, p256_public_key
from ami.crypto.errors import AuthError, InvalidKey
from ami.crypto.kdf import hkdf_sha256, hmac_sha256, sha256
from ami.crypto.keywrap import aes_key_unwrap, aes_key_wrap

BACKEND = "portable"

__all__ = [
    "BACKEND", "AuthError", "InvalidKey", "aes_ccm_decrypt", "aes_ccm_encrypt", "aes_cmac",
    "aes_key_unwrap", "aes_key_wrap", "constant_time_eq", "crc16", "ecdh", "ecdsa_sign",
    "ecdsa_verify", "hkdf_sha256", "hmac_sha256", "p256_public_key", "sha256",
]
