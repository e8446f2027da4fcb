"""Every vector of every suite in amitools.reference.vectors against both crypto backends.

The compact subsets run on both runtimes from host_tests/fw; this file runs the full files
(about 4,000 vectors) on CPython, once with ami.crypto.portable (the code boards run) and
once with ami.crypto.native.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from amitools.reference.vectors import SUITES, iter_suite
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

BACKENDS = ("portable", "native")
Vector = dict[str, Any]


@pytest.fixture(params=BACKENDS, scope="module")
def backend(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module("ami.crypto." + request.param)


@functools.cache
def suite(name: str) -> tuple[Vector, ...]:
    return tuple(iter_suite(name))


def h(value: str) -> bytes:
    return bytes.fromhex(value)


def run(name: str, backend: ModuleType, check: Callable[[Vector], str | None]) -> int:
    """Apply check to every vector; fail listing (up to 10 of) the vectors that failed."""
    vectors = suite(name)
    assert vectors, f"suite {name} is empty"
    failures = []
    for index, vector in enumerate(vectors):
        try:
            problem = check(vector)
        except Exception as exc:  # any exception is a failure to report
            problem = f"raised {type(exc).__name__}: {exc}"
        if problem:
            failures.append(f"#{index} {vector['src']}: {problem}")
    listing = "\n".join(failures[:10])
    assert not failures, (
        f"{backend.BACKEND} backend, {name}: {len(failures)} of {len(vectors)} vectors failed:\n"
        + listing
    )
    return len(vectors)


def expect_raise(
    exc_type: type[BaseException], func: Callable[..., Any], *args: Any, **kwargs: Any
) -> str | None:
    try:
        result = func(*args, **kwargs)
    except exc_type:
        return None
    except Exception as exc:
        return f"expected {exc_type.__name__}, got {type(exc).__name__}: {exc}"
    return f"expected {exc_type.__name__}, got {result!r}"


def differs(what: str, got: Any, want: Any) -> str | None:
    if isinstance(got, (bytes, bytearray, memoryview)):
        got = bytes(got)
    return None if got == want else f"{what}: got {got!r}, want {want!r}"


def test_every_suite_is_covered() -> None:
    tested = {name[len("test_") :] for name in globals() if name.startswith("test_")}
    assert set(SUITES) <= tested, sorted(set(SUITES) - tested)


def test_backend_is_named(backend: ModuleType) -> None:
    assert backend.BACKEND in BACKENDS


def test_ccm(backend: ModuleType) -> None:
    def check(v: Vector) -> str | None:
        key, nonce, aad, ct = h(v["key"]), h(v["nonce"]), h(v["aad"]), h(v["ct"])
        size = {"aad": aad, "tag_len": v["tag_len"]}
        if not v["ok"]:
            return expect_raise(backend.AuthError, backend.aes_ccm_decrypt, key, nonce, ct, **size)
        pt = h(v["pt"])
        return differs("encrypt", backend.aes_ccm_encrypt(key, nonce, pt, **size), ct) or differs(
            "decrypt", backend.aes_ccm_decrypt(key, nonce, ct, **size), pt
        )

    assert run("ccm", backend, check) == 1920


def test_cmac(backend: ModuleType) -> None:
    def check(v: Vector) -> str | None:
        return differs("mac", backend.aes_cmac(h(v["key"]), h(v["msg"])), h(v["mac"]))

    run("cmac", backend, check)


def test_sha256(backend: ModuleType) -> None:
    run("sha256", backend, lambda v: differs("digest", backend.sha256(h(v["msg"])), h(v["md"])))


def test_hmac_sha256(backend: ModuleType) -> None:
    def check(v: Vector) -> str | None:
        return differs("mac", backend.hmac_sha256(h(v["key"]), h(v["msg"])), h(v["mac"]))

    run("hmac_sha256", backend, check)


def test_hkdf_sha256(backend: ModuleType) -> None:
    def check(v: Vector) -> str | None:
        okm = backend.hkdf_sha256(h(v["ikm"]), h(v["salt"]), h(v["info"]), v["length"])
        return differs("okm", okm, h(v["okm"]))

    run("hkdf_sha256", backend, check)


def test_keywrap(backend: ModuleType) -> None:
    def check(v: Vector) -> str | None:
        kek, wrapped = h(v["kek"]), h(v["wrapped"])
        if not v["ok"]:
            return expect_raise(backend.AuthError, backend.aes_key_unwrap, kek, wrapped)
        key = h(v["key"])
        return differs("wrap", backend.aes_key_wrap(kek, key), wrapped) or differs(
            "unwrap", backend.aes_key_unwrap(kek, wrapped), key
        )

    assert run("keywrap", backend, check) == 2000


def test_ecdsa_verify(backend: ModuleType) -> None:
    def check(v: Vector) -> str | None:
        got = backend.ecdsa_verify(h(v["pub"]), h(v["msg"]), h(v["sig"]))
        if not isinstance(got, bool):
            return f"returned {got!r}, not a bool"
        return differs("verify", got, v["ok"])

    run("ecdsa_verify", backend, check)


def test_ecdsa_sign(backend: ModuleType) -> None:
    def check(v: Vector) -> str | None:
        d, msg = h(v["d"]), h(v["msg"])
        sig = bytes(backend.ecdsa_sign(d, msg))
        if backend.ecdsa_verify(backend.p256_public_key(d), msg, sig) is not True:
            return "own signature does not verify"
        return differs("signature", sig, h(v["sig"]))

    run("ecdsa_sign", backend, check)


def test_p256_keypair(backend: ModuleType) -> None:
    def check(v: Vector) -> str | None:
        return differs("public key", backend.p256_public_key(h(v["d"])), h(v["pub"]))

    run("p256_keypair", backend, check)


def test_ecdh(backend: ModuleType) -> None:
    def check(v: Vector) -> str | None:
        d, peer = h(v["d"]), h(v["peer"])
        if not v["ok"]:
            return expect_raise(backend.InvalidKey, backend.ecdh, d, peer)
        return differs("shared", backend.ecdh(d, peer), h(v["shared"]))

    run("ecdh", backend, check)


def test_crc16(backend: ModuleType) -> None:
    run("crc16", backend, lambda v: differs("crc", backend.crc16(h(v["msg"])), v["crc"]))


def test_ccm_message_length_limit(backend: ModuleType) -> None:
    """RFC 3610: with a 13-byte nonce (L = 2) a message must be shorter than 2**16 bytes."""
    key, nonce = bytes(16), bytes(13)
    ct = backend.aes_ccm_encrypt(key, nonce, bytes(65535), tag_len=4)
    assert len(ct) == 65539
    with pytest.raises(ValueError):
        backend.aes_ccm_encrypt(key, nonce, bytes(65536), tag_len=4)
    with pytest.raises((ValueError, backend.AuthError)):
        backend.aes_ccm_decrypt(key, nonce, bytes(65536 + 4), tag_len=4)
    # A 12-byte nonce (L = 3) takes it.
    assert len(backend.aes_ccm_encrypt(key, bytes(12), bytes(65536), tag_len=4)) == 65540


def test_edge_constants_are_right() -> None:
    """The computed constants of host_tests/fw/test_crypto_edges.py, checked with cryptography."""
    import test_crypto_edges as t

    curve = ec.SECP256R1()

    def verifies(pub: bytes, msg: bytes, r: int, s: int) -> bool:
        key = ec.EllipticCurvePublicKey.from_encoded_point(curve, pub)
        try:
            key.verify(encode_dss_signature(r, s), msg, ec.ECDSA(hashes.SHA256()))
        except Exception:
            return False
        return True

    assert verifies(t.SMALL_PUB, t.EDGE_MSG, t.SMALL_R, t.SMALL_S)
    assert t.SMALL_R + t.N < 2**256 and t.SMALL_S + t.N < 2**256
    assert verifies(t.BIGX_PUB, t.EDGE_MSG, t.BIGX_R, t.BIGX_S)
    assert verifies(t.RFC6979_PUB, b"sample", t.SAMPLE_R, t.SAMPLE_S)
    e = int.from_bytes(hashlib.sha256(t.EDGE_MSG).digest(), "big")
    assert (e + t.R_INF) % t.N == 0
    d = ec.derive_private_key(int.from_bytes(t.RFC5903_I, "big"), curve)
    for peer, shared in ((t.point(0, t.X0_Y), t.X0_SHARED), (t.point(t.Y5_X, 5), t.Y5_SHARED)):
        public = ec.EllipticCurvePublicKey.from_encoded_point(curve, peer)
        assert d.exchange(ec.ECDH(), public) == shared
    # The non-canonical encodings x = 0 + p and y = 5 + p still fit 32-byte coordinates.
    assert t.point(t.P, t.X0_Y) and t.point(t.Y5_X, 5 + t.P)
    two = ec.derive_private_key(2, curve).public_key()
    assert ec.EllipticCurvePublicKey.from_encoded_point(curve, t.TWO_G) == two
    assert ec.derive_private_key(int.from_bytes(t.RFC6979_D, "big"), curve).public_key() == (
        ec.EllipticCurvePublicKey.from_encoded_point(curve, t.RFC6979_PUB)
    )
