"""Helpers for firmware tests that run unchanged under pytest (CPython) and mprun (MicroPython)."""

import json

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
