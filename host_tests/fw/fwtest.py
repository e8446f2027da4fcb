"""Helpers for firmware tests that run unchanged under pytest (CPython) and mprun (MicroPython)."""

import json
import os

from ami.runtime import getenv


def raises(exc_type, func, *args, **kwargs):
    """Call func and return the exception of exc_type it raised; fail if it raised nothing."""
    try:
        func(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError("%s not raised by %r" % (exc_type.__name__, func))


def vector_dir():
    """Directory of the compact vector subsets written by `python -m amitools.reference.vectors`."""
    return getenv("AMI_VECTORS") or "build/vectors"


def vectors(name):
    """Load one vector suite (a JSON list of dicts, hex strings for byte values)."""
    with open(vector_dir() + "/" + name + ".json") as f:
        return json.load(f)


def unhex(s):
    """Hex string to bytes (MicroPython's bytes.fromhex rejects spaces; inputs have none)."""
    return bytes.fromhex(s)


class Fifo:
    """A non-blocking in-memory byte pipe: read(n) gives what is there, None when empty."""

    def __init__(self):
        self.chunks = []

    def pending(self):
        return sum([len(c) for c in self.chunks])

    def write(self, data):
        self.chunks.append(bytes(data))
        return len(data)

    def read(self, n):
        if not self.chunks:
            return None
        out = b""
        while self.chunks and len(out) < n:
            chunk = self.chunks.pop(0)
            room = n - len(out)
            if len(chunk) > room:
                self.chunks.insert(0, chunk[room:])
                chunk = chunk[:room]
            out += chunk
        return out


def temp_dir():
    """A fresh directory under $AMI_TMP (default build/tmp); remove it with remove_tree."""
    base = getenv("AMI_TMP") or "build/tmp"
    parts = base.split("/")
    for i in range(1, len(parts) + 1):
        if parts[i - 1]:  # "/flash/tmp" makes /flash, then /flash/tmp
            try:
                os.mkdir("/".join(parts[:i]))
            except OSError:  # exists already
                pass
    # Imported here: every test module loads fwtest, and a 256K unix-port heap is tight.
    from ami.ports.clock import SystemClock
    from ami.ports.entropy import SystemEntropy

    try:
        tag = SystemEntropy().random_bytes(6).hex()
    except OSError:  # a board without an RNG runs one test process on its own disk
        _made[0] += 1
        tag = "%d-%d" % (SystemClock().ticks_ms(), _made[0])
    return base + "/ports-" + tag


_made = [0]


def remove_tree(path):
    """Delete path and everything below it; missing is fine."""
    try:
        entries = os.listdir(path)
    except OSError:
        return
    for entry in entries:
        child = path + "/" + entry
        try:
            os.remove(child)
        except OSError:
            remove_tree(child)
    os.rmdir(path)
