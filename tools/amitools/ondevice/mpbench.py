"""Micro-benchmark of the firmware crypto, runnable on MicroPython and CPython alike.

    micropython tools/amitools/ondevice/mpbench.py [REPS] [native]
    python tools/amitools/mpbench.py [REPS] [native]

Measures the portable backend (``ami.crypto.portable``, what a board runs); with the word
``native`` it measures ``ami.crypto.native`` instead (CPython only). The firmware must be
importable (MICROPYPATH or PYTHONPATH). Prints one line of JSON:

    {"runtime": ..., "backend": ..., "results": {name: median_us}, "heap_bytes": ...,
     "errors": {name: message}, ...}

Each figure is the median over REPS repetitions (odd; default 31) of the time of one call,
in microseconds. Fast operations are looped inside a repetition (the count is calibrated so
that a repetition lasts about a millisecond) and the loop time divided by the count.
"ecdsa_verify_oneshot" clears the P-256 key cache before every call (a first-seen key);
"ecdsa_verify_repeated" verifies under one key whose comb table is cached (the trust anchor).
``heap_bytes`` is ``gc.mem_alloc()`` after a collection, once ami.crypto is imported and every
operation has run once (None where the runtime has no gc.mem_alloc, i.e. CPython).

The exit status is 1 if any operation failed (a wrong answer or an exception, MemoryError
included); its message is in "errors" and its result is left out.

No type hints, f-string "=" or json options here: MicroPython runs this file unchanged.
bench.py imports median_us and the inputs below to measure the reference libraries with the
same method.
"""

import gc
import sys
import time

try:
    _ticks_us = time.ticks_us
    _ticks_diff = time.ticks_diff

    def now():
        """An opaque start time for elapsed_us()."""
        return _ticks_us()

    def elapsed_us(t0):
        """Microseconds since now() returned t0."""
        return _ticks_diff(_ticks_us(), t0)

except AttributeError:  # CPython
    _perf_counter = time.perf_counter

    def now():
        """An opaque start time for elapsed_us()."""
        return _perf_counter()

    def elapsed_us(t0):
        """Microseconds since now() returned t0."""
        return (_perf_counter() - t0) * 1e6


DEFAULT_REPS = 31
TARGET_REP_US = 1000  # fast operations are looped until a repetition lasts about this long

# Inputs shared with bench.py (the reference libraries get exactly the same ones).
PRIV = bytes(range(1, 33))
PRIV2 = bytes(range(101, 133))
MSG = b"AMI command: disconnect service at meter 0042, effective at 2026-01-01T00:00Z...."[:64]
KEY = bytes(range(16))
NONCE = bytes(range(0x20, 0x2D))  # 13 bytes
AAD = b"\x01\x02meter-0042\x00\x07"
PT = bytes(range(0x40, 0x80))  # 64 bytes
TAG_LEN = 8
IKM = bytes(range(0x80, 0xA0))  # 32 bytes
SALT = b"ami-salt-0123456"
INFO = b"ami session keys"
HKDF_LEN = 64
KEK = bytes(range(0xA0, 0xB0))
WRAP_KEY = bytes(range(0xC0, 0xD0))  # 16 bytes
CRC_DATA = bytes(range(0x10, 0x50))  # 64 bytes

# Result names in report order.
NAMES = (
    "ecdsa_verify_oneshot",
    "ecdsa_verify_repeated",
    "ecdsa_sign",
    "ecdh",
    "p256_public_key",
    "aes_ccm_encrypt_64",
    "aes_ccm_decrypt_64",
    "aes_cmac_64",
    "hkdf_sha256_64",
    "aes_key_wrap_16",
    "crc16_64",
)


def median_us(fn, reps=DEFAULT_REPS, inner=0, prep=None):
    """Median over reps (made odd) of the time of one call of fn, in microseconds.

    prep, if given, runs before every call outside the timing, and forces one call per
    repetition. A first call is never timed. inner = 0 calibrates the loop count so that a
    repetition lasts about TARGET_REP_US; a positive inner fixes it.
    """
    if reps < 1:
        reps = 1
    if reps % 2 == 0:
        reps += 1
    if prep is not None:
        prep()
        inner = 1
    fn()  # untimed: first-call effects (a table built, a collection due) are not measured
    if inner < 1:
        t0 = now()
        fn()
        fn()
        fn()
        one = elapsed_us(t0) / 3
        inner = 1 if one >= TARGET_REP_US else int(TARGET_REP_US / max(one, 0.05))
        if inner > 5000:
            inner = 5000
    times = []
    for _ in range(reps):
        if prep is not None:
            prep()
        t0 = now()
        for _ in range(inner):
            fn()
        times.append(elapsed_us(t0) / inner)
    times.sort()
    return times[reps // 2]


def _check(ok, what):
    if not ok:
        raise ValueError("wrong result: " + what)


def operations(C, p256):
    """(name, fn, prep) for every measured operation; C is a backend module.

    Builds the inputs and checks each operation's answer once (which also warms every cache
    a steady-state device would have: G's tables, the repeated key's comb table).
    """
    pub = C.p256_public_key(PRIV)
    pub2 = C.p256_public_key(PRIV2)
    sig = C.ecdsa_sign(PRIV, MSG)
    ct = C.aes_ccm_encrypt(KEY, NONCE, PT, AAD, TAG_LEN)
    wrapped = C.aes_key_wrap(KEK, WRAP_KEY)

    def clear_key_cache():
        # The portable P-256 cache: keys seen once, and comb tables of keys seen twice.
        seen = getattr(p256, "_seen", None)
        tables = getattr(p256, "_tables", None)
        if seen is not None:
            seen.clear()
        if tables is not None:
            tables.clear()

    def verify_oneshot():
        return C.ecdsa_verify(pub, MSG, sig)

    def verify_repeated():
        return C.ecdsa_verify(pub, MSG, sig)

    def sign():
        return C.ecdsa_sign(PRIV, MSG)

    def ecdh():
        return C.ecdh(PRIV2, pub)

    def public_key():
        return C.p256_public_key(PRIV)

    def ccm_encrypt():
        return C.aes_ccm_encrypt(KEY, NONCE, PT, AAD, TAG_LEN)

    def ccm_decrypt():
        return C.aes_ccm_decrypt(KEY, NONCE, ct, AAD, TAG_LEN)

    def cmac():
        return C.aes_cmac(KEY, PT)

    def hkdf():
        return C.hkdf_sha256(IKM, SALT, INFO, HKDF_LEN)

    def key_wrap():
        return C.aes_key_wrap(KEK, WRAP_KEY)

    def crc():
        return C.crc16(CRC_DATA)

    # Answers checked once, before anything is timed.
    _check(len(pub) == 65 and pub[0] == 4, "p256_public_key")
    _check(len(sig) == 64 and sign() == sig, "ecdsa_sign")
    clear_key_cache()
    _check(verify_oneshot() is True, "ecdsa_verify")
    _check(C.ecdsa_verify(pub, MSG + b"x", sig) is False, "ecdsa_verify of a wrong message")
    _check(verify_repeated() is True, "ecdsa_verify (second use of the key)")
    _check(verify_repeated() is True, "ecdsa_verify (cached key)")
    shared = ecdh()
    _check(len(shared) == 32 and shared == C.ecdh(PRIV, pub2), "ecdh")
    _check(len(ct) == len(PT) + TAG_LEN, "aes_ccm_encrypt")
    _check(ccm_decrypt() == PT, "aes_ccm_decrypt")
    _check(len(cmac()) == 16, "aes_cmac")
    _check(len(hkdf()) == HKDF_LEN, "hkdf_sha256")
    _check(len(wrapped) == 24 and C.aes_key_unwrap(KEK, wrapped) == WRAP_KEY, "aes_key_wrap")
    _check(0 <= crc() < 0x10000, "crc16")

    return (
        ("ecdsa_verify_oneshot", verify_oneshot, clear_key_cache),
        ("ecdsa_verify_repeated", verify_repeated, None),
        ("ecdsa_sign", sign, None),
        ("ecdh", ecdh, None),
        ("p256_public_key", public_key, None),
        ("aes_ccm_encrypt_64", ccm_encrypt, None),
        ("aes_ccm_decrypt_64", ccm_decrypt, None),
        ("aes_cmac_64", cmac, None),
        ("hkdf_sha256_64", hkdf, None),
        ("aes_key_wrap_16", key_wrap, None),
        ("crc16_64", crc, None),
    )


def _heap():
    gc.collect()
    alloc = getattr(gc, "mem_alloc", None)
    free = getattr(gc, "mem_free", None)
    return (alloc() if alloc else None), (free() if free else None)


def _runtime():
    impl = sys.implementation
    v = impl.version
    out = impl.name + " " + str(v[0]) + "." + str(v[1]) + "." + str(v[2])
    if len(v) > 3 and v[3] and v[3] != "final":  # MicroPython: (1, 29, 0, "preview")
        out += "-" + str(v[3])
    return out


def _error(exc):
    return exc.__class__.__name__ + ": " + str(exc)


def run(reps=DEFAULT_REPS, backend="portable"):
    """Measure every operation; returns the report dict (see the module docstring)."""
    out = {
        "runtime": _runtime(),
        "version": sys.version,
        "backend": None,
        "reps": reps,
        "results": {},
        "heap_bytes": None,
        "heap_free_bytes": None,
        "heap_import_bytes": None,
        "mpy": None,
        "errors": {},
    }
    gc.collect()
    try:
        import ami.crypto
        from ami.crypto import p256

        if backend == "native":
            from ami.crypto import native as C
        else:
            from ami.crypto import portable as C
    except Exception as exc:
        out["errors"]["import"] = _error(exc)
        return out
    out["heap_import_bytes"] = _heap()[0]
    out["backend"] = C.BACKEND
    out["default_backend"] = ami.crypto.BACKEND
    out["mpy"] = str(getattr(p256, "__file__", "")).endswith(".mpy")

    try:
        ops = operations(C, p256)
    except Exception as exc:
        out["errors"]["setup"] = _error(exc)
        return out
    out["heap_bytes"], out["heap_free_bytes"] = _heap()

    for name, fn, prep in ops:
        gc.collect()
        try:
            out["results"][name] = round(median_us(fn, reps, 0, prep), 2)
        except Exception as exc:  # MemoryError included
            out["errors"][name] = _error(exc)
    return out


def main(argv):
    reps = DEFAULT_REPS
    backend = "portable"
    for arg in argv:
        if arg == "native":
            backend = "native"
        elif arg == "portable":
            backend = "portable"
        else:
            reps = int(arg)
    import json

    report = run(reps, backend)
    print(json.dumps(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
