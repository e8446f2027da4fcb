"""Property tests: both crypto backends against independent implementations.

References: pycryptodome (AES-CCM, CMAC), `cryptography` (ECDSA, ECDH, HKDF, key wrap),
hashlib/hmac, and a bitwise CRC-16/KERMIT written here. Plus tampering properties: any single
bit flip of a CCM ciphertext or tag, a wrapped key, a signature or a signed message must be
caught.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
from types import ModuleType

import pytest
from Crypto.Cipher import AES
from Crypto.Hash import CMAC
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
CURVE = ec.SECP256R1()

BACKENDS = {name: importlib.import_module("ami.crypto." + name) for name in ("portable", "native")}
backends = pytest.mark.parametrize("backend", list(BACKENDS.values()), ids=list(BACKENDS))

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

aes_keys = st.sampled_from((16, 32)).flatmap(lambda n: st.binary(min_size=n, max_size=n))
nonces = st.integers(7, 13).flatmap(lambda n: st.binary(min_size=n, max_size=n))
tag_lens = st.sampled_from((4, 6, 8, 10, 12, 14, 16))
# Private scalars: uniform, plus the extremes and keys related to the generator.
scalars = st.one_of(
    st.sampled_from((1, 2, 3, N - 1, N - 2, N // 2, (N + 1) // 2, 2**128, 2**255)),
    st.integers(1, N - 1),
)
messages = st.binary(max_size=200)


def b32(value: int) -> bytes:
    return value.to_bytes(32, "big")


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def crc16_reference(data: bytes) -> int:
    """CRC-16/KERMIT bit by bit: poly 0x1021 reflected, init 0, no final xor."""
    crc = 0
    for byte in data:
        for i in range(8):
            bit = (byte >> i) & 1
            top = crc & 1
            crc >>= 1
            if top ^ bit:
                crc ^= 0x8408
    return crc


def public_bytes(key: ec.EllipticCurvePrivateKey, compressed: bool = False) -> bytes:
    fmt = (
        serialization.PublicFormat.CompressedPoint
        if compressed
        else serialization.PublicFormat.UncompressedPoint
    )
    return key.public_key().public_bytes(serialization.Encoding.X962, fmt)


def to_rs(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return b32(r) + b32(s)


def to_der(sig: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))


# ------------------------------------------------------------------------------- symmetric


@backends
@FAST
@given(key=aes_keys, nonce=nonces, tag_len=tag_lens, pt=messages, aad=st.binary(max_size=80))
def test_ccm_matches_pycryptodome(backend: ModuleType, key, nonce, tag_len, pt, aad) -> None:
    ref = AES.new(key, AES.MODE_CCM, nonce=nonce, mac_len=tag_len)
    ref.update(aad)
    body, tag = ref.encrypt_and_digest(pt)
    ct = bytes(backend.aes_ccm_encrypt(key, nonce, pt, aad=aad, tag_len=tag_len))
    assert ct == body + tag
    assert bytes(backend.aes_ccm_decrypt(key, nonce, ct, aad=aad, tag_len=tag_len)) == pt


@backends
@FAST
@given(key=aes_keys, nonce=nonces, tag_len=tag_lens, pt=messages, data=st.data())
def test_ccm_any_bit_flip_fails(backend: ModuleType, key, nonce, tag_len, pt, data) -> None:
    aad = b"hdr"
    ct = bytes(backend.aes_ccm_encrypt(key, nonce, pt, aad=aad, tag_len=tag_len))
    bit = data.draw(st.integers(0, 8 * len(ct) - 1), label="bit")
    with pytest.raises(backend.AuthError):
        backend.aes_ccm_decrypt(key, nonce, flip(ct, bit), aad=aad, tag_len=tag_len)
    aad_bit = data.draw(st.integers(0, 8 * len(aad) - 1), label="aad bit")
    with pytest.raises(backend.AuthError):
        backend.aes_ccm_decrypt(key, nonce, ct, aad=flip(aad, aad_bit), tag_len=tag_len)


@backends
@FAST
@given(key=aes_keys, msg=messages)
def test_cmac_matches_pycryptodome(backend: ModuleType, key, msg) -> None:
    assert bytes(backend.aes_cmac(key, msg)) == CMAC.new(key, msg, ciphermod=AES).digest()


@backends
@FAST
@given(msg=st.binary(max_size=300))
def test_sha256_matches_hashlib(backend: ModuleType, msg) -> None:
    assert bytes(backend.sha256(msg)) == hashlib.sha256(msg).digest()


@backends
@FAST
@given(key=st.binary(max_size=150), msg=messages)
def test_hmac_matches_stdlib(backend: ModuleType, key, msg) -> None:
    assert bytes(backend.hmac_sha256(key, msg)) == hmac.new(key, msg, "sha256").digest()


@backends
@FAST
@given(
    ikm=st.binary(max_size=80),
    salt=st.binary(max_size=80),
    info=st.binary(max_size=80),
    length=st.integers(1, 255 * 32),
)
def test_hkdf_matches_cryptography(backend: ModuleType, ikm, salt, info, length) -> None:
    want = HKDF(hashes.SHA256(), length, salt or None, info).derive(ikm)
    assert bytes(backend.hkdf_sha256(ikm, salt, info, length)) == want


@backends
@FAST
@given(kek=aes_keys, blocks=st.integers(2, 8), data=st.data())
def test_keywrap_matches_cryptography(backend: ModuleType, kek, blocks, data) -> None:
    key = data.draw(st.binary(min_size=8 * blocks, max_size=8 * blocks), label="key")
    wrapped = bytes(backend.aes_key_wrap(kek, key))
    assert wrapped == keywrap.aes_key_wrap(kek, key)
    assert bytes(backend.aes_key_unwrap(kek, wrapped)) == key
    bit = data.draw(st.integers(0, 8 * len(wrapped) - 1), label="bit")
    with pytest.raises(backend.AuthError):
        backend.aes_key_unwrap(kek, flip(wrapped, bit))


@backends
@FAST
@given(data=st.binary(max_size=300))
def test_crc16_matches_bitwise_reference(backend: ModuleType, data) -> None:
    assert backend.crc16(data) == crc16_reference(data)


@backends
@FAST
@given(a=st.binary(max_size=40), b=st.binary(max_size=40))
def test_constant_time_eq_is_equality(backend: ModuleType, a, b) -> None:
    assert backend.constant_time_eq(a, b) is (a == b)
    assert backend.constant_time_eq(a, a) is True


def test_crc16_reference_check_value() -> None:
    assert crc16_reference(b"123456789") == 0x2189


# -------------------------------------------------------------------------------------- P-256


@backends
@SLOW
@given(d=scalars)
def test_public_key_matches_cryptography(backend: ModuleType, d) -> None:
    key = ec.derive_private_key(d, CURVE)
    assert bytes(backend.p256_public_key(b32(d))) == public_bytes(key)


@backends
@SLOW
@given(d=scalars, msg=messages)
def test_signatures_interoperate(backend: ModuleType, d, msg) -> None:
    key = ec.derive_private_key(d, CURVE)
    pub = public_bytes(key)
    ours = bytes(backend.ecdsa_sign(b32(d), msg))
    # Same RFC 6979 nonce as cryptography's deterministic signing, and it verifies there.
    det = key.sign(msg, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    assert ours == to_rs(det)
    key.public_key().verify(to_der(ours), msg, ec.ECDSA(hashes.SHA256()))
    # cryptography's randomised signature verifies here, with either key encoding.
    theirs = to_rs(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    assert backend.ecdsa_verify(pub, msg, theirs) is True
    assert backend.ecdsa_verify(public_bytes(key, compressed=True), msg, theirs) is True


@backends
@SLOW
@given(d=scalars, msg=st.binary(min_size=1, max_size=100), data=st.data())
def test_any_bit_flip_breaks_verification(backend: ModuleType, d, msg, data) -> None:
    key = ec.derive_private_key(d, CURVE)
    pub = public_bytes(key)
    sig = to_rs(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    sig_bit = data.draw(st.integers(0, 511), label="sig bit")
    assert backend.ecdsa_verify(pub, msg, flip(sig, sig_bit)) is False
    msg_bit = data.draw(st.integers(0, 8 * len(msg) - 1), label="msg bit")
    assert backend.ecdsa_verify(pub, flip(msg, msg_bit), sig) is False
    # A flipped key bit gives another valid key or an invalid one; never a valid verification.
    pub_bit = data.draw(st.integers(8, 8 * len(pub) - 1), label="key bit")
    assert backend.ecdsa_verify(flip(pub, pub_bit), msg, sig) is False


@backends
@SLOW
@given(a=scalars, b=scalars)
def test_ecdh_matches_cryptography(backend: ModuleType, a, b) -> None:
    ka, kb = ec.derive_private_key(a, CURVE), ec.derive_private_key(b, CURVE)
    want = ka.exchange(ec.ECDH(), kb.public_key())
    assert bytes(backend.ecdh(b32(a), public_bytes(kb))) == want
    assert bytes(backend.ecdh(b32(b), backend.p256_public_key(b32(a)))) == want


@backends
@SLOW
@given(d=scalars, x=st.integers(0, 2**256 - 1), y=st.integers(0, 2**256 - 1))
def test_ecdh_rejects_random_points(backend: ModuleType, d, x, y) -> None:
    # A random (x, y) is on the curve with negligible probability.
    point = b"\x04" + b32(x) + b32(y)
    with pytest.raises(backend.InvalidKey):
        backend.ecdh(b32(d), point)
    assert backend.ecdsa_verify(point, b"m", bytes(64)) is False


@SLOW
@given(d=scalars, msg=messages)
def test_backends_agree(d, msg) -> None:
    portable, native = BACKENDS["portable"], BACKENDS["native"]
    assert bytes(portable.p256_public_key(b32(d))) == bytes(native.p256_public_key(b32(d)))
    assert bytes(portable.ecdsa_sign(b32(d), msg)) == bytes(native.ecdsa_sign(b32(d), msg))


def test_signature_verify_rejects_cryptography_signature_on_other_key() -> None:
    k1, k2 = ec.derive_private_key(12345, CURVE), ec.derive_private_key(67890, CURVE)
    sig = to_rs(k1.sign(b"m", ec.ECDSA(hashes.SHA256())))
    for backend in BACKENDS.values():
        assert backend.ecdsa_verify(public_bytes(k1), b"m", sig) is True
        assert backend.ecdsa_verify(public_bytes(k2), b"m", sig) is False
    with pytest.raises(InvalidSignature):
        k2.public_key().verify(to_der(sig), b"m", ec.ECDSA(hashes.SHA256()))
