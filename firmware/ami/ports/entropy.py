"""Entropy port: `random_bytes(n)` is the only way the core gets randomness."""

import hashlib

try:
    from os import urandom as _urandom
except ImportError:  # a port without a hardware RNG binding
    _urandom = None


def _check_count(n):
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError("byte count must be an int")
    if n < 0:
        raise ValueError("byte count must be >= 0")
    return n


class SystemEntropy:
    """The platform's CSPRNG (os.urandom). Refuses to exist without one: no weak fallback."""

    def __init__(self):
        if _urandom is None:
            raise OSError("no os.urandom on this platform")

    def random_bytes(self, n):
        """n bytes from the platform CSPRNG."""
        return _urandom(n) if _check_count(n) else b""


class DeterministicEntropy:
    """A repeatable stream: SHA-256(seed || counter), counter 8 bytes big-endian from 0.

    The same seed gives the same stream on every runtime, however the reads are split.
    For tests and simulated fleets only: anyone who knows the seed knows every byte.
    """

    def __init__(self, seed):
        if not isinstance(seed, (bytes, bytearray)):
            raise TypeError("seed must be bytes")
        self._seed = bytes(seed)
        self._counter = 0
        self._pool = b""

    def random_bytes(self, n):
        """The next n bytes of the stream."""
        _check_count(n)
        out = self._pool
        while len(out) < n:
            block = self._seed + self._counter.to_bytes(8, "big")
            self._counter += 1
            out += hashlib.sha256(block).digest()
        self._pool = out[n:]
        return out[:n]


def seeded_entropy(storage, seed):
    """For a board without a hardware RNG (the emulated boards) or a repeatable bench: a
    DeterministicEntropy over the provisioned seed and this boot's number. The boot counter
    (blob "boots" of storage, which must replace atomically) is advanced and stored BEFORE
    any byte is drawn, so no two boots, whatever a power cut interrupts, share a stream.
    NOT a true RNG: whoever reads the seed from the flash knows every nonce and key this
    device will make."""
    data = storage.read("boots")
    boot = int.from_bytes(data, "big") if data else 0
    storage.write("boots", (boot + 1).to_bytes(4, "big"))
    return DeterministicEntropy(bytes(seed) + b"/boot" + str(boot).encode())
