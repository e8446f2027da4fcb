"""Entropy port: the deterministic stream is fixed by its definition; the system one works."""

import hashlib

from ami.ports.entropy import DeterministicEntropy, SystemEntropy
from fwtest import raises


def _block(seed, i):
    return hashlib.sha256(seed + i.to_bytes(8, "big")).digest()


def test_known_stream():
    seed = b"fleet-seed"
    expected = _block(seed, 0) + _block(seed, 1) + _block(seed, 2)
    assert DeterministicEntropy(seed).random_bytes(80) == expected[:80]


def test_stream_independent_of_read_sizes():
    whole = DeterministicEntropy(b"s").random_bytes(100)
    e = DeterministicEntropy(bytearray(b"s"))
    parts = b""
    for n in (1, 0, 31, 32, 3, 33):
        parts += e.random_bytes(n)
    assert parts == whole


def test_same_seed_same_stream_other_seed_other_stream():
    a = DeterministicEntropy(b"seed-a").random_bytes(64)
    assert DeterministicEntropy(b"seed-a").random_bytes(64) == a
    assert DeterministicEntropy(b"seed-b").random_bytes(64) != a
    assert DeterministicEntropy(b"").random_bytes(64) != a


def test_bad_arguments():
    raises(TypeError, DeterministicEntropy, "seed")
    e = DeterministicEntropy(b"x")
    raises(ValueError, e.random_bytes, -1)
    raises(TypeError, e.random_bytes, 1.0)
    raises(TypeError, e.random_bytes, True)
    assert e.random_bytes(0) == b""


def test_system_entropy():
    try:
        from os import urandom  # noqa: F401
    except ImportError:  # no RNG (emulated boards): refused, never a weak stand-in
        raises(OSError, SystemEntropy)
        return
    e = SystemEntropy()
    a = e.random_bytes(32)
    assert isinstance(a, bytes)
    assert len(a) == 32
    assert e.random_bytes(32) != a
    assert e.random_bytes(0) == b""
    raises(ValueError, e.random_bytes, -1)
    raises(TypeError, e.random_bytes, None)
    raises(TypeError, e.random_bytes, 0.0)
