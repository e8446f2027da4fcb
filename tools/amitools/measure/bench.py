"""`ami bench`: the firmware crypto timed on MicroPython and CPython, against reference libraries.

One run measures, with the same operations, inputs and median method (``mpbench.median_us``):

* the portable backend (the board's code) under the MicroPython unix port, 256K heap, firmware
  from ``build/mpy`` when compiled (``make mpy``), else from the sources;
* the same, once more, in a 64K heap with few repetitions: only to show that the crypto runs
  within a small board's budget (pass/fail and its verify time);
* the portable backend under CPython (``AMI_CRYPTO=portable``) and the native backend;
* python-ecdsa (pure Python), pycryptodome and cryptography in this process.

It prints a table in ms and the project's performance targets with PASS/FAIL. ``--write FILE``
puts the table, the targets and the machine between ``<!-- bench:begin -->`` and
``<!-- bench:end -->`` in FILE; ``--json FILE`` saves every raw figure (microseconds).

The exit status is 0 even when a target is missed (benchmarks report, they do not gate), and
1 when a measurement could not run (a runtime missing or failing, a library missing).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amitools import BUILD, FIRMWARE
from amitools.cliargs import check_output, positive_int
from amitools.ondevice import mpbench
from amitools.outputs import human_output, write_result
from amitools.progress import note
from amitools.runtimes import MissingTool, micropython_binary, run_micropython

MPBENCH = Path(mpbench.__file__).resolve()
MPY_DIR = BUILD / "mpy"
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
HEAP = "256K"
SMALL_HEAP = "64K"
SMALL_HEAP_REPS = 11
TIMEOUT_S = 300.0

# (key in the report, column heading)
COLUMNS = (
    ("micropython", "MicroPython portable"),
    ("cpython_portable", "CPython portable"),
    ("cpython_native", "CPython native"),
    ("python-ecdsa", "python-ecdsa"),
    ("pycryptodome", "pycryptodome"),
    ("cryptography", "cryptography"),
)
ROWS = (
    ("ecdsa_verify_oneshot", "ECDSA verify (one-shot key)"),
    ("ecdsa_verify_repeated", "ECDSA verify (repeated key)"),
    ("ecdsa_sign", "ECDSA sign (RFC 6979)"),
    ("ecdh", "ECDH"),
    ("p256_public_key", "P-256 public key"),
    ("aes_ccm_encrypt_64", "AES-CCM encrypt 64 B"),
    ("aes_ccm_decrypt_64", "AES-CCM decrypt 64 B"),
    ("aes_cmac_64", "AES-CMAC 64 B"),
    ("hkdf_sha256_64", "HKDF-SHA256 64 B out"),
    ("aes_key_wrap_16", "AES key wrap 16 B"),
    ("crc16_64", "CRC-16 64 B"),
)

# The operations each reference library has (the others are blank in its column).
_EC_OPS = mpbench.NAMES[:5]
LIBRARY_OPS = {
    "python-ecdsa": _EC_OPS,
    "pycryptodome": mpbench.NAMES[:-1],
    "cryptography": mpbench.NAMES[:-1],
}

NOTES = (
    "One-shot key: the public key is parsed from its 65 bytes for every call and nothing is "
    "cached for it (the portable P-256 key cache is cleared before each call). Repeated key: "
    "one key verified again and again (a meter checking its head end's trust anchor): the "
    "portable code has built that key's comb table, the libraries reuse a parsed key object, "
    "and python-ecdsa's key has had `precompute()`.",
    "python-ecdsa is pure Python, like the portable code on CPython; pycryptodome and "
    "cryptography are C/Rust. The native backend is our API on pycryptodome and cryptography.",
    "Our API takes raw key bytes on every call, so both backends parse or derive keys inside "
    "the timed call (native sign and ECDH include deriving the private key object). The "
    "libraries build cipher objects and public keys per call too, but reuse their private-key "
    "objects (sign, ECDH) and, for the repeated key, their public-key object. cryptography "
    "signs to DER (no r||s conversion).",
)


class MeasurementError(Exception):
    """A measurement that could not run (its runtime or library failed or is missing)."""


# ---------------------------------------------------------------- runs of mpbench.py


def _parse_report(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                report = json.loads(line)
            except ValueError:
                return None
            return report if isinstance(report, dict) else None
    return None


def _report_of(proc: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    """The mpbench report of a finished run; its errors, if any, are left in "errors"."""
    report = _parse_report(proc.stdout)
    if report is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise MeasurementError(
            f"{what}: no report (exit status {proc.returncode}): " + " | ".join(tail)
        )
    report["exit_status"] = proc.returncode
    return report


def _micropython() -> str:
    """The unix port's path ($MICROPYTHON, else the one beside this Python); clear errors."""
    try:
        binary = micropython_binary()
    except MissingTool as exc:
        raise MeasurementError(str(exc)) from exc
    if not os.access(binary, os.X_OK) or Path(binary).is_dir():
        source = "$MICROPYTHON" if os.environ.get("MICROPYTHON") else "the venv"
        raise MeasurementError(
            f"MicroPython unix port not found or not executable at {binary} (from {source}): "
            "set MICROPYTHON=/path/to/micropython (see README)"
        )
    return binary


def run_micropython_bench(heap: str, reps: int) -> dict[str, Any]:
    """mpbench.py under the unix port with the given heap limit."""
    try:
        proc = run_micropython([str(MPBENCH), str(reps)], heap=heap, timeout=TIMEOUT_S)
    except MissingTool as exc:
        raise MeasurementError(str(exc)) from exc
    except subprocess.TimeoutExpired as exc:
        raise MeasurementError(f"MicroPython {heap}: timed out after {TIMEOUT_S:.0f} s") from exc
    report = _report_of(proc, f"MicroPython ({heap} heap)")
    report["heap_limit"] = heap
    return report


def run_cpython_bench(backend: str, reps: int) -> dict[str, Any]:
    """mpbench.py under this CPython in a subprocess, for the portable or native backend."""
    path = os.pathsep.join(p for p in (str(FIRMWARE), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, AMI_CRYPTO=backend, PYTHONPATH=path)
    try:
        proc = subprocess.run(
            [sys.executable, str(MPBENCH), str(reps), backend],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise MeasurementError(f"CPython {backend}: timed out after {TIMEOUT_S:.0f} s") from exc
    return _report_of(proc, f"CPython {backend}")


# ---------------------------------------------------------------- reference libraries

Timed = dict[str, float]


def _measure(ops: dict[str, Callable[[], object]], reps: int) -> Timed:
    return {name: round(mpbench.median_us(fn, reps), 2) for name, fn in ops.items()}


def _expected() -> dict[str, bytes]:
    """Answers the references must reproduce (from cryptography), so none is timing a failure."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    curve = ec.SECP256R1()
    k1 = ec.derive_private_key(int.from_bytes(mpbench.PRIV, "big"), curve)
    k2 = ec.derive_private_key(int.from_bytes(mpbench.PRIV2, "big"), curve)
    der = k1.sign(mpbench.MSG, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return {
        "pub": _sec1(k1.public_key()),
        "sig": r.to_bytes(32, "big") + s.to_bytes(32, "big"),
        "der": der,
        "shared": k2.exchange(ec.ECDH(), k1.public_key()),
    }


def _sec1(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise MeasurementError(f"reference gave a wrong answer: {what}")


def bench_python_ecdsa(reps: int, exp: dict[str, bytes]) -> tuple[Timed, Timed]:
    """python-ecdsa (pure Python). Returns (table figures, extra figures)."""
    from ecdsa import ECDH, NIST256p, SigningKey, VerifyingKey, ellipticcurve

    m = mpbench
    sha = hashlib.sha256
    sk = SigningKey.from_string(m.PRIV, curve=NIST256p, hashfunc=sha)
    sk2 = SigningKey.from_string(m.PRIV2, curve=NIST256p, hashfunc=sha)
    pub, sig = exp["pub"], exp["sig"]
    vk = VerifyingKey.from_string(pub, curve=NIST256p, hashfunc=sha)
    # precompute() needs the point's order, which from_string() leaves out (python-ecdsa
    # 0.19): give the same point with its order.
    pt = vk.pubkey.point
    vk_pre = VerifyingKey.from_public_point(
        ellipticcurve.PointJacobi(NIST256p.curve, pt.x(), pt.y(), 1, NIST256p.order),
        curve=NIST256p,
        hashfunc=sha,
    )
    vk_pre.precompute()
    ecdh = ECDH(curve=NIST256p, private_key=sk2)

    def verify_oneshot() -> bool:
        return VerifyingKey.from_string(pub, curve=NIST256p, hashfunc=sha).verify(sig, m.MSG)

    def shared() -> bytes:
        ecdh.load_received_public_key_bytes(pub)
        return ecdh.generate_sharedsecret_bytes()

    def public_key() -> bytes:
        key = SigningKey.from_string(m.PRIV, curve=NIST256p, hashfunc=sha)
        return key.verifying_key.to_string("uncompressed")

    ops: dict[str, Callable[[], object]] = {
        "ecdsa_verify_oneshot": verify_oneshot,
        "ecdsa_verify_repeated": lambda: vk_pre.verify(sig, m.MSG),
        "ecdsa_sign": lambda: sk.sign_deterministic(m.MSG),
        "ecdh": shared,
        "p256_public_key": public_key,
    }
    _require(verify_oneshot() and vk.verify(sig, m.MSG) and vk_pre.verify(sig, m.MSG), "verify")
    _require(sk.sign_deterministic(m.MSG) == sig, "sign_deterministic")
    _require(shared() == exp["shared"], "ECDH")
    _require(public_key() == pub, "public key")
    extra = _measure({"ecdsa_verify_plain": lambda: vk.verify(sig, m.MSG)}, reps)
    return _measure(ops, reps), extra


def bench_pycryptodome(reps: int, exp: dict[str, bytes]) -> Timed:
    """pycryptodome: ECC + DSS (deterministic-rfc6979), ECDH key agreement, AES modes."""
    from Crypto.Cipher import AES
    from Crypto.Hash import CMAC, SHA256
    from Crypto.Protocol.DH import key_agreement
    from Crypto.Protocol.KDF import HKDF
    from Crypto.PublicKey import ECC
    from Crypto.Signature import DSS

    m = mpbench
    pub, sig = exp["pub"], exp["sig"]
    key = ECC.construct(curve="P-256", d=int.from_bytes(m.PRIV, "big"))
    key2 = ECC.construct(curve="P-256", d=int.from_bytes(m.PRIV2, "big"))
    signer = DSS.new(key, "deterministic-rfc6979", encoding="binary")
    verifier = DSS.new(ECC.import_key(pub, curve_name="P-256"), "deterministic-rfc6979")
    n, aad_n = len(m.PT), len(m.AAD)

    def verify_oneshot() -> None:
        pk = ECC.import_key(pub, curve_name="P-256")
        DSS.new(pk, "deterministic-rfc6979").verify(SHA256.new(m.MSG), sig)

    def shared() -> bytes:
        peer = ECC.import_key(pub, curve_name="P-256")
        return key_agreement(static_priv=key2, static_pub=peer, kdf=lambda z: z)

    def public_key() -> bytes:
        k = ECC.construct(curve="P-256", d=int.from_bytes(m.PRIV, "big"))
        return k.public_key().export_key(format="raw")

    def ccm(length: int) -> Any:
        c = AES.new(
            m.KEY, AES.MODE_CCM, nonce=m.NONCE, mac_len=m.TAG_LEN, msg_len=length, assoc_len=aad_n
        )
        c.update(m.AAD)
        return c

    def ccm_encrypt() -> bytes:
        body, tag = ccm(n).encrypt_and_digest(m.PT)
        return body + tag

    ct = ccm_encrypt()

    ops: dict[str, Callable[[], object]] = {
        "ecdsa_verify_oneshot": verify_oneshot,
        "ecdsa_verify_repeated": lambda: verifier.verify(SHA256.new(m.MSG), sig),
        "ecdsa_sign": lambda: signer.sign(SHA256.new(m.MSG)),
        "ecdh": shared,
        "p256_public_key": public_key,
        "aes_ccm_encrypt_64": ccm_encrypt,
        "aes_ccm_decrypt_64": lambda: ccm(n).decrypt_and_verify(ct[:n], ct[n:]),
        "aes_cmac_64": lambda: CMAC.new(m.KEY, msg=m.PT, ciphermod=AES).digest(),
        "hkdf_sha256_64": lambda: HKDF(m.IKM, m.HKDF_LEN, m.SALT, SHA256, context=m.INFO),
    }
    if hasattr(AES, "MODE_KW"):
        ops["aes_key_wrap_16"] = lambda: AES.new(m.KEK, AES.MODE_KW).seal(m.WRAP_KEY)
    verify_oneshot()  # raises ValueError if the signature is not accepted
    _require(signer.sign(SHA256.new(m.MSG)) == sig, "DSS deterministic sign")
    _require(shared() == exp["shared"], "ECDH")
    _require(public_key() == pub, "public key")
    _require(ccm(n).decrypt_and_verify(ct[:n], ct[n:]) == m.PT, "CCM")
    return _measure(ops, reps)


def bench_cryptography(reps: int, exp: dict[str, bytes]) -> Timed:
    """cryptography (OpenSSL through Rust): ECDSA, ECDH, AESCCM, CMAC, HKDF, key wrap."""
    from cryptography.hazmat.primitives import cmac, hashes, keywrap
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers import algorithms
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    m = mpbench
    curve = ec.SECP256R1()
    pub, der = exp["pub"], exp["der"]
    priv = ec.derive_private_key(int.from_bytes(m.PRIV, "big"), curve)
    priv2 = ec.derive_private_key(int.from_bytes(m.PRIV2, "big"), curve)
    pk = ec.EllipticCurvePublicKey.from_encoded_point(curve, pub)
    algo = ec.ECDSA(hashes.SHA256())
    det = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    ct = AESCCM(m.KEY, tag_length=m.TAG_LEN).encrypt(m.NONCE, m.PT, m.AAD)

    def verify_oneshot() -> None:
        ec.EllipticCurvePublicKey.from_encoded_point(curve, pub).verify(der, m.MSG, algo)

    def shared() -> bytes:
        return priv2.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(curve, pub))

    def public_key() -> bytes:
        return _sec1(ec.derive_private_key(int.from_bytes(m.PRIV, "big"), curve).public_key())

    def mac() -> bytes:
        c = cmac.CMAC(algorithms.AES(m.KEY))
        c.update(m.PT)
        return c.finalize()

    def hkdf() -> bytes:
        return HKDF(hashes.SHA256(), m.HKDF_LEN, m.SALT, m.INFO).derive(m.IKM)

    ops: dict[str, Callable[[], object]] = {
        "ecdsa_verify_oneshot": verify_oneshot,
        "ecdsa_verify_repeated": lambda: pk.verify(der, m.MSG, algo),
        "ecdsa_sign": lambda: priv.sign(m.MSG, det),
        "ecdh": shared,
        "p256_public_key": public_key,
        "aes_ccm_encrypt_64": lambda: AESCCM(m.KEY, m.TAG_LEN).encrypt(m.NONCE, m.PT, m.AAD),
        "aes_ccm_decrypt_64": lambda: AESCCM(m.KEY, m.TAG_LEN).decrypt(m.NONCE, ct, m.AAD),
        "aes_cmac_64": mac,
        "hkdf_sha256_64": hkdf,
        "aes_key_wrap_16": lambda: keywrap.aes_key_wrap(m.KEK, m.WRAP_KEY),
    }
    verify_oneshot()  # raises InvalidSignature if the signature is not accepted
    _require(priv.sign(m.MSG, det) == der, "deterministic sign")
    _require(shared() == exp["shared"], "ECDH")
    _require(public_key() == pub, "public key")
    return _measure(ops, reps)


# ---------------------------------------------------------------- report


def fmt_ms(us: float | None) -> str:
    """Microseconds as milliseconds with 3 significant digits ("" for None)."""
    if us is None:
        return ""
    ms = float(f"{us / 1000:.3g}")
    if ms <= 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(ms)))
    return f"{ms:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


def table(data: dict[str, Any]) -> str:
    """The results as a Markdown table in ms, padded so it also reads well in a terminal."""
    header = ["Operation (ms, median)"] + [title for _, title in COLUMNS]
    rows = [header]
    for name, title in ROWS:
        row = [title]
        for key, _ in COLUMNS:
            col = data["columns"].get(key)
            if col is None:  # the whole run failed: every operation it has is missing
                row.append("failed" if name in LIBRARY_OPS.get(key, mpbench.NAMES) else "")
            elif name in col.get("results", {}):
                row.append(fmt_ms(col["results"][name]))
            elif name in col.get("failed", ()):
                row.append("failed")
            else:
                row.append("")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [cells[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)
        ]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]])
    return "\n".join([line(rows[0]), rule + "|"] + [line(r) for r in rows[1:]])


def _within(value: float | None, limit: float | None) -> bool | None:
    """value <= limit, or None (not measured) when either is missing."""
    if value is None or limit is None:
        return None
    return value <= limit


def _ms(us: float | None) -> str:
    return f"{fmt_ms(us)} ms" if us is not None else "not measured"


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The performance targets, each with id, status (PASS, FAIL, or N/A when a figure it
    needs was not measured) and a text giving the figures."""
    cols = data["columns"]

    def fig(col: str, name: str) -> float | None:
        return (cols.get(col) or {}).get("results", {}).get(name)

    out: list[dict[str, Any]] = []

    def check(tid: str, ok: bool | None, text: str) -> None:
        status = "N/A" if ok is None else ("PASS" if ok else "FAIL")
        out.append({"id": tid, "status": status, "ok": ok, "text": text})

    mp_v1 = fig("micropython", "ecdsa_verify_oneshot")
    check(
        "a",
        _within(mp_v1, 4000),
        f"MicroPython portable ECDSA verify (one-shot key, {HEAP} heap) <= 4 ms: {_ms(mp_v1)}",
    )

    cp_v1 = fig("cpython_portable", "ecdsa_verify_oneshot")
    cp_vr = fig("cpython_portable", "ecdsa_verify_repeated")
    pe_plain = (cols.get("python-ecdsa") or {}).get("extra", {}).get("ecdsa_verify_plain")
    pe_pre = fig("python-ecdsa", "ecdsa_verify_repeated")
    check(
        "b",
        _within(cp_vr, None if pe_plain is None else 0.5 * pe_plain),
        "CPython portable verify <= 0.5 x python-ecdsa verify; checked as portable repeated key "
        f"({_ms(cp_vr)}) vs python-ecdsa plain verify ({_ms(pe_plain)}): "
        f"{_ratio(cp_vr, pe_plain)}. For the record, portable one-shot key ({_ms(cp_v1)}) vs "
        f"python-ecdsa plain: {_ratio(cp_v1, pe_plain)}; vs python-ecdsa after precompute() "
        f"({_ms(pe_pre)}): repeated key {_ratio(cp_vr, pe_pre)}, one-shot key "
        f"{_ratio(cp_v1, pe_pre)}",
    )

    sign, dh = fig("micropython", "ecdsa_sign"), fig("micropython", "ecdh")
    limit = None if mp_v1 is None else 1.5 * mp_v1
    sign_ok, dh_ok = _within(sign, limit), _within(dh, limit)
    check(
        "c",
        None if None in (sign_ok, dh_ok) else bool(sign_ok and dh_ok),
        "MicroPython sign and ECDH each <= 1.5 x MicroPython verify (one-shot key): sign "
        f"{_ms(sign)} = {_ratio(sign, mp_v1)}, ECDH {_ms(dh)} = {_ratio(dh, mp_v1)}",
    )

    enc, dec = fig("micropython", "aes_ccm_encrypt_64"), fig("micropython", "aes_ccm_decrypt_64")
    enc_ok, dec_ok = _within(enc, 150), _within(dec, 150)
    check(
        "d",
        None if None in (enc_ok, dec_ok) else bool(enc_ok and dec_ok),
        f"MicroPython AES-CCM 64 B <= 0.15 ms: encrypt {_ms(enc)}, decrypt {_ms(dec)}",
    )

    small = data.get("micropython_small_heap")
    if small is None:
        ok, detail = None, "not measured: " + data.get("small_heap_error", "did not run")
    elif not small.get("errors") and small.get("exit_status") == 0:
        res = small.get("results", {})
        ok, detail = (
            True,
            (
                f"every operation ran and gave the right answer; verify one-shot key "
                f"{_ms(res.get('ecdsa_verify_oneshot'))}, repeated key "
                f"{_ms(res.get('ecdsa_verify_repeated'))} ({small.get('reps')} repetitions)"
            ),
        )
    else:
        errs = small.get("errors") or {"exit status": small.get("exit_status")}
        ok, detail = False, "failed: " + "; ".join(f"{k}: {v}" for k, v in errs.items())
    check("e", ok, f"Crypto runs in a {SMALL_HEAP} MicroPython heap: {detail}")
    return out


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        found = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if found:
            return found.group(1).strip()
    return platform.processor() or platform.machine() or "unknown"


def _mpy_state() -> str:
    """Where the MicroPython runs loaded the firmware from, and whether that is current."""
    sources = sorted((FIRMWARE / "ami").rglob("*.py"))
    if not MPY_DIR.is_dir():
        return "sources (build/mpy absent; `make mpy` compiles it as a board build would)"
    stale = []
    for src in sources:
        mpy = MPY_DIR / src.relative_to(FIRMWARE).with_suffix(".mpy")
        if not mpy.exists() or mpy.stat().st_mtime < src.stat().st_mtime:
            stale.append(str(src.relative_to(FIRMWARE)))
    if stale:
        return (
            f"build/mpy, STALE: {len(stale)} file(s) older than or missing for their source "
            f"({', '.join(stale[:4])}{', ...' if len(stale) > 4 else ''}); run `make mpy`"
        )
    return "build/mpy (mpy-cross, current with the sources)"


def _summary_lines(data: dict[str, Any]) -> list[str]:
    mp = data["columns"].get("micropython") or {}
    lines = []
    if mp.get("heap_bytes") is not None:
        lines.append(
            f"MicroPython heap in use ({HEAP} limit) after importing ami.crypto and one call of "
            f"each operation: {mp['heap_bytes']:,} bytes (after the import alone: "
            f"{mp.get('heap_import_bytes') or 0:,} bytes)."
        )
    lines.append(f"MicroPython firmware loaded from: {data['mpy_state']}.")
    return lines


def render_text(data: dict[str, Any]) -> str:
    """What the command prints: table, targets, errors."""
    out = [table(data), ""]
    out += _summary_lines(data)
    out += ["", "Targets:"]
    for t in data["targets"]:
        out.append(f"  {t['status']:4} ({t['id']}) {t['text']}")
    if data["errors"]:
        out += ["", "Measurements that could not run:"]
        out += [f"  {e}" for e in data["errors"]]
    return "\n".join(out)


def render_markdown(data: dict[str, Any]) -> str:
    """The section written between the markers of --write FILE."""
    env = data["environment"]
    out = [
        f"Measured {env['date']} by `ami bench` (`make bench`); medians of {data['reps']} "
        "repetitions, in milliseconds (3 significant digits).",
        "",
        f"- CPU: {env['cpu']}",
        f"- Platform: `{env['platform']}`",
        f"- CPython {env['cpython']}",
        f"- MicroPython {env['micropython']} (unix port, `-X heapsize={HEAP}`)",
        "",
        table(data),
        "",
    ]
    out += [f"- {note}" for note in NOTES]
    out += [f"- {line}" for line in _summary_lines(data)]
    out += ["", "Targets:", ""]
    for t in data["targets"]:
        out.append(f"- **{t['status']}** ({t['id']}) {t['text']}")
    if data["errors"]:
        out += ["", "Measurements that could not run:", ""]
        out += [f"- {e}" for e in data["errors"]]
    return "\n".join(out)


def write_section(path: Path, body: str, begin: str = BEGIN, end_marker: str = END) -> None:
    """Replace the text between two markers in path (appending them if missing)."""
    block = f"{begin}\n{body}\n{end_marker}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start, end = text.find(begin), text.find(end_marker)
    if start != -1 and end > start:
        text = text[:start] + block + text[end + len(end_marker) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def publish(text: str, report: dict[str, Any], md: str | None, out_json: str | None,
            begin: str, end: str) -> None:
    """A measurement command's outputs: the text (on stderr when the JSON goes to stdout),
    its section of the Markdown file, and the report as JSON."""
    with human_output(out_json):
        print(text)
    if md:
        write_section(Path(md), text, begin, end)
    if out_json:
        write_result(out_json, json.dumps(report, indent=2) + "\n")


# ---------------------------------------------------------------- the command


def _column(report: dict[str, Any], what: str, errors: list[str]) -> dict[str, Any]:
    for name, msg in report.get("errors", {}).items():
        errors.append(f"{what}: {name}: {msg}")
    if report.get("exit_status") and not report.get("errors"):
        errors.append(f"{what}: exit status {report['exit_status']}")
    report["failed"] = [n for n in mpbench.NAMES if n not in report.get("results", {})]
    return report


def collect(reps: int = mpbench.DEFAULT_REPS) -> dict[str, Any]:
    """Run every measurement; returns all figures, the targets and the errors."""
    errors: list[str] = []
    cols: dict[str, Any] = {}
    data: dict[str, Any] = {"reps": reps, "columns": cols, "errors": errors}
    data["mpy_state"] = _mpy_state()
    mp_version = "unknown"

    note(f"ami bench: MicroPython ({HEAP} and {SMALL_HEAP} heaps)...")
    try:
        data["micropython_binary"] = _micropython()
        report = run_micropython_bench(HEAP, reps)
        cols["micropython"] = _column(report, f"MicroPython ({HEAP} heap)", errors)
        mp_version = report.get("runtime", mp_version).replace("micropython ", "")
        build = str(report.get("version", "")).split("; ")[-1]
        mp_version += f" ({build})" if build else ""
        try:
            data["micropython_small_heap"] = run_micropython_bench(SMALL_HEAP, SMALL_HEAP_REPS)
        except MeasurementError as exc:  # a failure here is target (e), not an error
            data["small_heap_error"] = str(exc)
    except MeasurementError as exc:
        errors.append(str(exc))
        data["small_heap_error"] = "MicroPython did not run"

    for backend in ("portable", "native"):
        note(f"ami bench: CPython {backend}...")
        try:
            report = run_cpython_bench(backend, reps)
            cols[f"cpython_{backend}"] = _column(report, f"CPython {backend}", errors)
        except MeasurementError as exc:
            errors.append(str(exc))

    try:
        exp = _expected()
    except Exception as exc:  # reported as a failed measurement
        errors.append(f"cryptography (reference answers): {exc!r}")
        exp = None
    if exp is not None:
        refs: list[tuple[str, Callable[[], Any]]] = [
            ("python-ecdsa", lambda: bench_python_ecdsa(reps, exp)),
            ("pycryptodome", lambda: bench_pycryptodome(reps, exp)),
            ("cryptography", lambda: bench_cryptography(reps, exp)),
        ]
        for lib, fn in refs:
            note(f"ami bench: {lib}...")
            try:
                got = fn()
            except Exception as exc:  # a missing library, a wrong answer
                errors.append(f"{lib}: {exc!r}")
                continue
            if isinstance(got, tuple):
                cols[lib] = {"results": got[0], "extra": got[1]}
            else:
                cols[lib] = {"results": got}

    data["environment"] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpython": platform.python_version(),
        "micropython": mp_version,
    }
    data["targets"] = targets(data)
    return data


def run(out_md: str | None, out_json: str | None = None, reps: int = mpbench.DEFAULT_REPS) -> int:
    """Measure, print the table and targets, write the files asked for.

    Returns 0 when every measurement ran and every target passed, 1 otherwise.
    """
    note("ami bench: portable crypto on MicroPython and CPython, and the references...")
    data = collect(reps)
    with human_output(out_json):
        print(render_text(data))
        if out_md:
            write_section(Path(out_md), render_markdown(data))
            print(f"\nwritten: {out_md}")
    if out_json:
        write_result(out_json, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return exit_status(data)


def exit_status(data: dict[str, Any]) -> int:
    """1 if a measurement failed or a target was missed, else 0."""
    missed = [t["id"] for t in data["targets"] if t["status"] == "FAIL"]
    if missed:
        print(f"targets missed: {', '.join(missed)}", file=sys.stderr)
    return 1 if data["errors"] or missed else 0


def _command(args: argparse.Namespace) -> int:
    check_output("--json", args.json, args.force, stdout=True)
    check_output("--write", args.write, force=True)  # a document to update in place
    micropython_binary()  # a missing or broken $MICROPYTHON: refused before measuring
    return run(args.write, args.json, args.reps)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `bench` subcommand; its handler returns the exit status."""
    p = subparsers.add_parser(
        "bench",
        help="time the firmware crypto on MicroPython and CPython against reference libraries",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--write", metavar="FILE", help="put the results between the bench markers")
    p.add_argument("--json", metavar="FILE", help="save every raw figure (microseconds)")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.add_argument(
        "--reps",
        type=positive_int,
        default=mpbench.DEFAULT_REPS,
        help=f"repetitions per figure, made odd (default {mpbench.DEFAULT_REPS})",
    )
    p.set_defaults(func=_command)
