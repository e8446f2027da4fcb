"""A short end-to-end check of the firmware crypto on every runtime (the demo until the
secure link lands): the same signed, encrypted exchange on CPython and on MicroPython."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from amitools import FIRMWARE
from amitools.runtimes import run_micropython

# Runs unchanged on both runtimes: sign a command, verify it, seal a reading with CCM.
SCRIPT = r"""
import json
from ami import crypto
d = b"\x42" * 32
pub = crypto.p256_public_key(d)
sig = crypto.ecdsa_sign(d, b"disconnect meter 0011223344556677")
peer = crypto.p256_public_key(b"\x24" * 32)
shared = crypto.ecdh(d, peer)
key = crypto.hkdf_sha256(shared, b"salt", b"session", 16)
frame = crypto.aes_ccm_encrypt(key, bytes(13), b"reading 1234 Wh", b"hdr")
print(json.dumps({
    "backend": crypto.BACKEND,
    "verify": crypto.ecdsa_verify(pub, b"disconnect meter 0011223344556677", sig),
    "forged_rejected": not crypto.ecdsa_verify(pub, b"disconnect meter 8899aabbccddeeff", sig),
    "sig": sig.hex(),
    "frame": frame.hex(),
}))
"""


def _cpython(backend: str) -> dict:
    env = dict(os.environ, AMI_CRYPTO=backend, PYTHONPATH=str(FIRMWARE))
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def run() -> int:
    """Run the check on CPython (native and portable) and MicroPython; 0 if all agree."""
    results = {"cpython-native": _cpython("native"), "cpython-portable": _cpython("portable")}
    mp = run_micropython(["-c", SCRIPT], heap="64K")
    if mp.returncode:
        print(mp.stdout + mp.stderr)
        return 1
    results["micropython"] = json.loads(mp.stdout)
    reference = results["cpython-native"]
    ok = True
    for name, res in results.items():
        same = res["sig"] == reference["sig"] and res["frame"] == reference["frame"]
        good = res["verify"] and res["forged_rejected"] and same
        ok = ok and good
        print(
            f"{name:18} backend={res['backend']:8} signed command verified={res['verify']} "
            f"forgery rejected={res['forged_rejected']} identical bytes={same}"
        )
    print("crypto self-check:", "all runtimes agree" if ok else "MISMATCH")
    return 0 if ok else 1
