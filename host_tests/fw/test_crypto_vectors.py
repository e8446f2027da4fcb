"""Known-answer vector suites through ami.crypto (whichever backend is active).

Runs unchanged under pytest (CPython) and the MicroPython runner. The suites are the compact
subsets written by amitools.reference.vectors.build (see its docstring for sources); the full
suites run in host_tests/cpython/test_crypto_full_vectors.py.
"""

import ami.crypto as crypto
from fwtest import unhex, vectors


def _run(suite, check):
    """Run check(v) over every vector of suite; a non-empty return or an exception fails."""
    vs = vectors(suite)
    if not vs:
        raise AssertionError("suite %s is empty" % suite)
    total = len(vs)
    for i in range(total):
        v = vs[i]
        try:
            problem = check(v)
        except AssertionError:
            raise
        except Exception as exc:
            problem = "raised %s: %s" % (type(exc).__name__, exc)
        if problem:
            raise AssertionError(
                "%s vector %d of %d (%s, %s backend): %s"
                % (suite, i, total, v["src"], crypto.BACKEND, problem)
            )
    return total


def _expect_raise(exc_type, func, *args, **kwargs):
    """'' when func raises exc_type, else a description of what happened."""
    try:
        result = func(*args, **kwargs)
    except exc_type:
        return ""
    except Exception as exc:
        return "expected %s, got %s: %s" % (exc_type.__name__, type(exc).__name__, exc)
    return "expected %s, got result %r" % (exc_type.__name__, result)


def _differs(name, got, want):
    if got == want:
        return ""
    return "%s mismatch: got %r, want %r" % (name, got, want)


def test_backend_named():
    if crypto.BACKEND not in ("portable", "native"):
        raise AssertionError("BACKEND is %r" % (crypto.BACKEND,))


def test_ccm_vectors():
    def check(v):
        key, nonce, aad, ct = unhex(v["key"]), unhex(v["nonce"]), unhex(v["aad"]), unhex(v["ct"])
        tag_len = v["tag_len"]
        if not v["ok"]:
            return _expect_raise(
                crypto.AuthError, crypto.aes_ccm_decrypt, key, nonce, ct, aad=aad, tag_len=tag_len
            )
        pt = unhex(v["pt"])
        got = crypto.aes_ccm_encrypt(key, nonce, pt, aad=aad, tag_len=tag_len)
        problem = _differs("encrypt", bytes(got), ct)
        if problem:
            return problem
        got = crypto.aes_ccm_decrypt(key, nonce, ct, aad=aad, tag_len=tag_len)
        return _differs("decrypt", bytes(got), pt)

    _run("ccm", check)


def test_cmac_vectors():
    def check(v):
        got = crypto.aes_cmac(unhex(v["key"]), unhex(v["msg"]))
        return _differs("mac", bytes(got), unhex(v["mac"]))

    _run("cmac", check)


def test_sha256_vectors():
    def check(v):
        return _differs("digest", bytes(crypto.sha256(unhex(v["msg"]))), unhex(v["md"]))

    _run("sha256", check)


def test_hmac_sha256_vectors():
    def check(v):
        got = crypto.hmac_sha256(unhex(v["key"]), unhex(v["msg"]))
        return _differs("mac", bytes(got), unhex(v["mac"]))

    _run("hmac_sha256", check)


def test_hkdf_sha256_vectors():
    def check(v):
        got = crypto.hkdf_sha256(unhex(v["ikm"]), unhex(v["salt"]), unhex(v["info"]), v["length"])
        return _differs("okm", bytes(got), unhex(v["okm"]))

    _run("hkdf_sha256", check)


def test_keywrap_vectors():
    def check(v):
        kek, wrapped = unhex(v["kek"]), unhex(v["wrapped"])
        if not v["ok"]:
            return _expect_raise(crypto.AuthError, crypto.aes_key_unwrap, kek, wrapped)
        key = unhex(v["key"])
        problem = _differs("wrap", bytes(crypto.aes_key_wrap(kek, key)), wrapped)
        if problem:
            return problem
        return _differs("unwrap", bytes(crypto.aes_key_unwrap(kek, wrapped)), key)

    _run("keywrap", check)


def test_ecdsa_verify_vectors():
    def check(v):
        got = crypto.ecdsa_verify(unhex(v["pub"]), unhex(v["msg"]), unhex(v["sig"]))
        if not isinstance(got, bool):
            return "verify returned %r, not a bool" % (got,)
        return _differs("verify", got, v["ok"])

    _run("ecdsa_verify", check)


def test_ecdsa_sign_vectors():
    def check(v):
        d, msg = unhex(v["d"]), unhex(v["msg"])
        sig = bytes(crypto.ecdsa_sign(d, msg))
        problem = _differs("signature", sig, unhex(v["sig"]))
        if problem:
            return problem
        if crypto.ecdsa_verify(crypto.p256_public_key(d), msg, sig) is not True:
            return "own signature does not verify"
        return ""

    _run("ecdsa_sign", check)


def test_p256_keypair_vectors():
    def check(v):
        got = crypto.p256_public_key(unhex(v["d"]))
        return _differs("public key", bytes(got), unhex(v["pub"]))

    _run("p256_keypair", check)


def test_ecdh_vectors():
    def check(v):
        d, peer = unhex(v["d"]), unhex(v["peer"])
        if not v["ok"]:
            return _expect_raise(crypto.InvalidKey, crypto.ecdh, d, peer)
        return _differs("shared secret", bytes(crypto.ecdh(d, peer)), unhex(v["shared"]))

    _run("ecdh", check)


def test_crc16_vectors():
    _run("crc16", lambda v: _differs("crc", crypto.crc16(unhex(v["msg"])), v["crc"]))
