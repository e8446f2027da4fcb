"""Known-answer vectors for the firmware crypto package (`ami.crypto`).

Two products:

* `iter_suite(name)` yields every vector of a suite, parsed from the files of the installed
  `cryptography_vectors` package (plus a few published vectors kept here as data and a few
  vectors derived with the `cryptography` package). The CPython tests run these in full against
  both backends.
* `build(out_dir)` writes a compact subset of each suite to `out_dir/<suite>.json`, small
  enough for a MicroPython run under a 256 KB heap, always with failure cases. It is
  idempotent: a stamp file records the format version, the vector package version and a hash
  of this module, and nothing is rewritten while it matches.

Every vector is a dict of JSON scalars: byte strings as lowercase hex, lengths as ints, `ok` a
bool for suites with negative cases, and `src` naming where the vector came from
("<file>#<index in the file's section>" or "derived:...").

Suites and sources (paths relative to the `cryptography_vectors` package):

ccm
    NIST CAVP CCM: ciphers/AES/CCM/{DVPT,VADT,VNT,VPT,VTT}{128,256}.rsp. DVPT ("decryption
    verification") holds Pass and Fail cases; the others are encryptions (all Pass). Fields:
    key, nonce, aad, pt, ct (ciphertext || tag), tag_len, ok.
cmac
    NIST SP 800-38B examples: CMAC/nist-800-38b-aes128.txt, nist-800-38b-aes256.txt.
    Fields: key, msg, mac.
sha256
    NIST CAVP hashes/SHA2/SHA256ShortMsg.rsp. Fields: msg, md.
hmac_sha256
    RFC 4231 test cases: HMAC/rfc-4231-sha256.txt. Fields: key, msg, mac.
hkdf_sha256
    RFC 5869 appendix A.1-A.3: KDF/rfc-5869-HKDF-SHA256.txt. Fields: ikm, salt, info, length,
    okm.
keywrap
    NIST SP 800-38F KW (RFC 3394): keywrap/kwtestvectors/KW_{AE,AD}_{128,256}.txt; the AD
    files hold FAIL cases (integrity check fails). Fields: kek, key, wrapped, ok.
ecdsa_verify
    P-256 with SHA-256 only. asymmetric/ECDSA/FIPS_186-3/SigVer.rsp [P-256,SHA-256] (Result
    P/F); SigGen.rsp [P-256,SHA-256] as valid signatures, and the same keys in SEC1
    compressed form (derived); the RFC 6979 P-256/SHA-256 signatures of
    asymmetric/ECDSA/RFC6979/evppkey_ecdsa_rfc6979.txt with its VERIFY_ERROR cases; and the
    invalid public keys of FIPS_186-3/PKV.rsp [P-256] paired with a valid SigGen message and
    signature (must verify False). A coordinate wider than 32 bytes (PKV "out of range" cases)
    makes a 67-byte point with 33-byte coordinates. Fields: pub, msg, sig (r || s), ok.
ecdsa_sign
    RFC 6979 deterministic signatures: the P-256/SHA-256 "sample" and "test" vectors (RFC 6979
    appendix A.2.5) from evppkey_ecdsa_rfc6979.txt, plus the (d, Msg) pairs of SigGen.txt
    [P-256,SHA-256] signed with `cryptography`'s deterministic ECDSA (derived; its output is
    first checked against the RFC vectors). Fields: d, msg, sig.
p256_keypair
    FIPS_186-3/KeyPair.rsp [P-256] (d -> Q), the d/Q pairs of SigGen.txt [P-256,SHA-256], the
    RFC 6979 key and the two RFC 5903 section 8.1 keys. Fields: d, pub (65-byte uncompressed).
ecdh
    NIST's ECC CDH primitive vectors are not in the package. Sources: RFC 5903 section 8.1
    (256-bit random ECP group) in both directions, published values kept here as data;
    derived: KeyPair.rsp private keys against SigGen.txt public keys and back, the shared x
    computed with `cryptography`; PKV.rsp [P-256] public keys as peers of the RFC 5903
    initiator key, valid ones with the shared x from `cryptography`, invalid ones expecting
    InvalidKey. Fields: d, peer, shared ("" when not ok), ok.
crc16
    CRC-16/KERMIT (IEEE 802.15.4 FCS): the catalogue check value of b"123456789" (0x2189) and
    derived vectors from a bitwise reference implementation here. Fields: msg, crc (int).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from amitools.cliargs import check_output_dir
from amitools.reference.spec import crc16_kermit  # the bitwise reference CRC, defined once

FORMAT_VERSION = 1
STAMP_NAME = ".stamp"

Vector = dict[str, Any]

# P-256 domain parameters (SEC 2 / FIPS 186-4).
P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# RFC 5903 section 8.1, 256-bit random ECP group: initiator i, responder r, their public
# values g^i, g^r (x, y) and the shared g^ir (x; y is not used by ECDH).
RFC5903_P256 = {
    "i": "c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433",
    "gix": "dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c3772581180",
    "giy": "5271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3",
    "r": "c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53",
    "grx": "d12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf63",
    "gry": "56fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab",
    "girx": "d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de",
    "giry": "522bde0af0d8585b8def9c183b5ae38f50235206a8674ecb5d98edb20eb153a2",
}

SUITES = (
    "ccm",
    "cmac",
    "sha256",
    "hmac_sha256",
    "hkdf_sha256",
    "keywrap",
    "ecdsa_verify",
    "ecdsa_sign",
    "p256_keypair",
    "ecdh",
    "crc16",
)


# --------------------------------------------------------------------------------------------
# Locating and parsing the vector files
# --------------------------------------------------------------------------------------------


def vectors_root() -> Path:
    """Directory of the installed `cryptography_vectors` package."""
    import cryptography_vectors

    return Path(cryptography_vectors.__file__).resolve().parent


def vectors_version() -> str:
    """Version of the installed `cryptography_vectors` package."""
    import cryptography_vectors

    return str(getattr(cryptography_vectors, "__version__", "unknown"))


_CURVE_LABEL = re.compile(r"^[PKB]-\d+")


def _assignments(text: str) -> list[tuple[str, str]]:
    """`K = V, K2 = V2` (a bracketed header's contents) as pairs."""
    pairs = []
    for part in text.split(","):
        if "=" in part:
            key, _, value = part.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def parse_blocks(path: Path | str, start: str) -> Iterator[Vector]:
    """Parse a NIST CAVS style file (`.rsp`, `.txt`) into records.

    Blank lines delimit blocks; `#` lines are comments. A block holding the key `start` (for
    example "Count") is a record; any other block, and every `[...]` header, sets context
    values (like Key, Alen, Tlen) that the following records inherit. A header with no `=`
    (like "[P-256,SHA-256]") is kept as `_section`; a new curve header clears the context.
    A bare word in a record (like FAIL) is stored as a key with the value True.
    """
    context: dict[str, Any] = {}
    block: dict[str, Any] = {}

    def flush() -> Iterator[Vector]:
        if not block:
            return
        if start in block:
            record = dict(context)
            record.update(block)
            yield record
        else:
            context.update(block)
        block.clear()

    with open(path, encoding="ascii") as f:
        for raw in f:
            line = raw.strip()
            if line.startswith("#"):
                continue
            if not line:
                yield from flush()
                continue
            if line.startswith("[") and line.endswith("]"):
                yield from flush()
                inner = line[1:-1].strip()
                if "=" in inner:
                    context.update(_assignments(inner))
                elif _CURVE_LABEL.match(inner):
                    context.clear()
                    context["_section"] = inner
                else:
                    context["_label"] = inner
                continue
            if "=" in line:
                key, _, value = line.partition("=")
                block[key.strip()] = value.strip()
            else:
                block[line] = True
        yield from flush()


def parse_evp(path: Path | str) -> tuple[dict[str, str], list[Vector]]:
    """Parse an OpenSSL evp test file: (PEM keys by name, stanzas).

    Each stanza also gets the `Title` in force, under that name.
    """
    keys: dict[str, str] = {}
    stanzas: list[Vector] = []
    title = ""
    stanza: dict[str, str] = {}
    pem_name = ""
    pem_lines: list[str] = []
    with open(path, encoding="ascii") as f:
        for raw in f:
            line = raw.strip()
            if pem_name:
                pem_lines.append(line)
                if line.startswith("-----END"):
                    keys[pem_name] = "\n".join(pem_lines) + "\n"
                    pem_name = ""
                    pem_lines = []
                continue
            if line.startswith("#"):
                continue
            if not line:
                if stanza:
                    stanza["Title"] = title
                    stanzas.append(stanza)
                    stanza = {}
                continue
            key, _, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if key == "Title":
                title = value
            elif key in ("PrivateKey", "PublicKey"):
                pem_name = value
            else:
                stanza[key] = value
        if stanza:
            stanza["Title"] = title
            stanzas.append(stanza)
    return keys, stanzas


def _hex(value: str, nbytes: int | None = None) -> str:
    """Normalise a hex field: lowercase, even length, cut to nbytes when given."""
    value = value.strip().lower()
    if len(value) % 2:
        value = "0" + value
    if nbytes is not None:
        if len(value) < 2 * nbytes:
            raise ValueError("hex field shorter than its stated length")
        value = value[: 2 * nbytes]
    return value


def _int_bytes(value: int, size: int = 32) -> bytes:
    """Big-endian encoding of value in at least size bytes (wider if it does not fit)."""
    width = max(size, (value.bit_length() + 7) // 8)
    return value.to_bytes(width, "big")


def encode_point(x: int, y: int, compressed: bool = False) -> str:
    """SEC1 encoding as hex: 04||x||y, or 02/03||x; 33-byte coordinates if one is too wide."""
    if compressed:
        return (bytes([2 + (y & 1)]) + _int_bytes(x)).hex()
    size = max(len(_int_bytes(x)), len(_int_bytes(y)))
    return (b"\x04" + _int_bytes(x, size) + _int_bytes(y, size)).hex()


def _src(path: Path, index: int) -> str:
    return f"{path.stem}#{index}"


# --------------------------------------------------------------------------------------------
# Help from the `cryptography` package for derived vectors
# --------------------------------------------------------------------------------------------


def _ec():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec


def _private_key(d: int):
    ec = _ec()
    return ec.derive_private_key(d, ec.SECP256R1())


def _public_key(pub_hex: str):
    ec = _ec()
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(pub_hex))


def _shared_x(d: int, pub_hex: str) -> str:
    ec = _ec()
    return _private_key(d).exchange(ec.ECDH(), _public_key(pub_hex)).hex()


def _sign_deterministic(d: int, msg: bytes) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    ec = _ec()
    der = _private_key(d).sign(msg, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()


def _der_to_rs(der_hex: str) -> str:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(bytes.fromhex(der_hex))
    return (_int_bytes(r) + _int_bytes(s)).hex()


# --------------------------------------------------------------------------------------------
# Full suites
# --------------------------------------------------------------------------------------------


def _ccm() -> Iterator[Vector]:
    base = vectors_root() / "ciphers" / "AES" / "CCM"
    for kind in ("DVPT", "VADT", "VNT", "VPT", "VTT"):
        for bits in (128, 256):
            path = base / f"{kind}{bits}.rsp"
            for index, rec in enumerate(parse_blocks(path, "Count")):
                alen, plen, tlen = int(rec["Alen"]), int(rec["Plen"]), int(rec["Tlen"])
                nonce = _hex(rec["Nonce"])
                if len(nonce) != 2 * int(rec["Nlen"]):
                    raise ValueError(f"{_src(path, index)}: nonce length mismatch")
                ct = _hex(rec["CT"])
                if len(ct) != 2 * (plen + tlen):
                    raise ValueError(f"{_src(path, index)}: CT length mismatch")
                ok = kind != "DVPT" or rec["Result"].lower().startswith("pass")
                yield {
                    "src": _src(path, index),
                    "key": _hex(rec["Key"]),
                    "nonce": nonce,
                    "aad": _hex(rec["Adata"], alen),
                    "pt": _hex(rec["Payload"], plen) if ok else "",
                    "ct": ct,
                    "tag_len": tlen,
                    "ok": ok,
                }


def _cmac() -> Iterator[Vector]:
    for name in ("nist-800-38b-aes128.txt", "nist-800-38b-aes256.txt"):
        path = vectors_root() / "CMAC" / name
        for index, rec in enumerate(parse_blocks(path, "COUNT")):
            yield {
                "src": f"{name}#{index}",
                "key": _hex(rec["KEY"]),
                "msg": _hex(rec["MESSAGE"]),
                "mac": _hex(rec["OUTPUT"]),
            }


def _sha256() -> Iterator[Vector]:
    path = vectors_root() / "hashes" / "SHA2" / "SHA256ShortMsg.rsp"
    for index, rec in enumerate(parse_blocks(path, "Len")):
        bits = int(rec["Len"])
        if bits % 8:
            continue
        yield {"src": _src(path, index), "msg": _hex(rec["Msg"], bits // 8), "md": _hex(rec["MD"])}


def _hmac_sha256() -> Iterator[Vector]:
    path = vectors_root() / "HMAC" / "rfc-4231-sha256.txt"
    for index, rec in enumerate(parse_blocks(path, "Len")):
        yield {
            "src": _src(path, index),
            "key": _hex(rec["Key"]),
            "msg": _hex(rec["Msg"]),
            "mac": _hex(rec["MD"]),
        }


def _hkdf_sha256() -> Iterator[Vector]:
    # Records here are split by blank lines, so group by COUNT instead of by block.
    path = vectors_root() / "KDF" / "rfc-5869-HKDF-SHA256.txt"
    records: list[dict[str, str]] = []
    with open(path, encoding="ascii") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if key == "COUNT":
                records.append({})
            elif records:
                records[-1][key] = value
    for index, rec in enumerate(records):
        if rec.get("Hash") != "SHA-256":
            continue
        yield {
            "src": _src(path, index),
            "ikm": _hex(rec["IKM"]),
            "salt": _hex(rec["salt"]),
            "info": _hex(rec["info"]),
            "length": int(rec["L"]),
            "okm": _hex(rec["OKM"]),
        }


def _keywrap() -> Iterator[Vector]:
    base = vectors_root() / "keywrap" / "kwtestvectors"
    for name in ("KW_AE_128", "KW_AD_128", "KW_AE_256", "KW_AD_256"):
        path = base / (name + ".txt")
        for index, rec in enumerate(parse_blocks(path, "COUNT")):
            ok = "FAIL" not in rec
            yield {
                "src": _src(path, index),
                "kek": _hex(rec["K"]),
                "key": _hex(rec["P"]) if ok else "",
                "wrapped": _hex(rec["C"]),
                "ok": ok,
            }


def _ecdsa_section(name: str, section: str, start: str) -> list[tuple[int, Vector]]:
    path = vectors_root() / "asymmetric" / "ECDSA" / "FIPS_186-3" / name
    return [
        (index, rec)
        for index, rec in enumerate(parse_blocks(path, start))
        if rec.get("_section") == section
    ]


def _siggen() -> list[tuple[int, Vector]]:
    """SigGen.txt [P-256,SHA-256]: Msg, d, Qx, Qy, k, R, S (index within the section)."""
    recs = _ecdsa_section("SigGen.txt", "P-256,SHA-256", "Msg")
    return [(i, rec) for i, (_, rec) in enumerate(recs)]


def _rfc6979() -> tuple[int, str, list[Vector]]:
    """RFC 6979 P-256/SHA-256: (d, public key hex, stanzas with Input/Output/Result)."""
    from cryptography.hazmat.primitives import serialization

    path = vectors_root() / "asymmetric" / "ECDSA" / "RFC6979" / "evppkey_ecdsa_rfc6979.txt"
    keys, stanzas = parse_evp(path)
    key = serialization.load_pem_private_key(keys["P-256_PRIV"].encode(), password=None)
    d = key.private_numbers().private_value  # type: ignore[union-attr]
    pub = key.public_key().public_numbers()  # type: ignore[union-attr]
    chosen = []
    for stanza in stanzas:
        if "P-256" not in stanza["Title"] or stanza.get("Key", "").split("_")[0] != "P-256":
            continue
        if stanza.get("DigestSign", stanza.get("DigestVerify")) != "SHA256":
            continue
        chosen.append(stanza)
    if not chosen:
        raise ValueError(f"no RFC 6979 P-256/SHA-256 vectors in {path}")
    return d, encode_point(pub.x, pub.y), chosen


def _rfc6979_input(stanza: Vector) -> bytes:
    text = stanza["Input"]
    if not (text.startswith('"') and text.endswith('"')):
        raise ValueError(f"unexpected RFC 6979 input {text!r}")
    return text[1:-1].encode()


def _pkv() -> list[tuple[int, Vector]]:
    return _ecdsa_section("PKV.rsp", "P-256", "Qx")


def _ecdsa_verify() -> Iterator[Vector]:
    for index, rec in _ecdsa_section("SigVer.rsp", "P-256,SHA-256", "Msg"):
        yield {
            "src": f"SigVer#{index}",
            "pub": encode_point(int(rec["Qx"], 16), int(rec["Qy"], 16)),
            "msg": _hex(rec["Msg"]),
            "sig": _hex(rec["R"]).rjust(64, "0") + _hex(rec["S"]).rjust(64, "0"),
            "ok": rec["Result"].startswith("P"),
        }
    siggen = _siggen()
    for compressed in (False, True):
        for index, rec in siggen:
            yield {
                "src": ("derived:compressed:" if compressed else "") + f"SigGen#{index}",
                "pub": encode_point(int(rec["Qx"], 16), int(rec["Qy"], 16), compressed),
                "msg": _hex(rec["Msg"]),
                "sig": _hex(rec["R"]).rjust(64, "0") + _hex(rec["S"]).rjust(64, "0"),
                "ok": True,
            }
    _, pub, stanzas = _rfc6979()
    for index, stanza in enumerate(stanzas):
        if "DigestVerify" not in stanza:
            continue
        yield {
            "src": f"rfc6979#{index}",
            "pub": pub,
            "msg": _rfc6979_input(stanza).hex(),
            "sig": _der_to_rs(stanza["Output"]),
            "ok": stanza.get("Result") != "VERIFY_ERROR",
        }
    _, good = siggen[0]
    for index, rec in _pkv():
        if rec["Result"].startswith("P"):
            continue
        yield {
            "src": f"PKV#{index}",
            "pub": encode_point(int(rec["Qx"], 16), int(rec["Qy"], 16)),
            "msg": _hex(good["Msg"]),
            "sig": _hex(good["R"]).rjust(64, "0") + _hex(good["S"]).rjust(64, "0"),
            "ok": False,
        }


def _ecdsa_sign() -> Iterator[Vector]:
    d, _, stanzas = _rfc6979()
    dhex = d.to_bytes(32, "big").hex()
    for index, stanza in enumerate(stanzas):
        if "DigestSign" not in stanza:
            continue
        msg = _rfc6979_input(stanza)
        sig = _der_to_rs(stanza["Output"])
        if _sign_deterministic(d, msg) != sig:
            raise ValueError("cryptography's RFC 6979 signing disagrees with the RFC vector")
        yield {"src": f"rfc6979#{index}", "d": dhex, "msg": msg.hex(), "sig": sig}
    for index, rec in _siggen():
        dval = int(rec["d"], 16)
        msg = bytes.fromhex(_hex(rec["Msg"]))
        yield {
            "src": f"derived:rfc6979:SigGen#{index}",
            "d": dval.to_bytes(32, "big").hex(),
            "msg": msg.hex(),
            "sig": _sign_deterministic(dval, msg),
        }


def _keypairs() -> list[tuple[str, int, str]]:
    """(src, d, uncompressed public hex) from every source with a private key."""
    pairs = []
    for index, rec in _ecdsa_section("KeyPair.rsp", "P-256", "d"):
        pub = encode_point(int(rec["Qx"], 16), int(rec["Qy"], 16))
        pairs.append((f"KeyPair#{index}", int(rec["d"], 16), pub))
    for index, rec in _siggen():
        pub = encode_point(int(rec["Qx"], 16), int(rec["Qy"], 16))
        pairs.append((f"SigGen#{index}", int(rec["d"], 16), pub))
    d, pub, _ = _rfc6979()
    pairs.append(("rfc6979", d, pub))
    v = RFC5903_P256
    pairs.append(("rfc5903:i", int(v["i"], 16), "04" + v["gix"] + v["giy"]))
    pairs.append(("rfc5903:r", int(v["r"], 16), "04" + v["grx"] + v["gry"]))
    return pairs


def _p256_keypair() -> Iterator[Vector]:
    for src, d, pub in _keypairs():
        yield {"src": src, "d": d.to_bytes(32, "big").hex(), "pub": pub}


def _ecdh() -> Iterator[Vector]:
    v = RFC5903_P256
    for mine, peer in (("i", "04" + v["grx"] + v["gry"]), ("r", "04" + v["gix"] + v["giy"])):
        yield {
            "src": "rfc5903:" + mine,
            "d": v[mine],
            "peer": peer,
            "shared": v["girx"],
            "ok": True,
        }
    keypair = [p for p in _keypairs() if p[0].startswith("KeyPair")]
    siggen = [p for p in _keypairs() if p[0].startswith("SigGen")]
    for mine, theirs in list(zip(keypair, siggen, strict=False)) + [
        (siggen[i], keypair[i % len(keypair)]) for i in range(len(siggen))
    ]:
        shared = _shared_x(mine[1], theirs[2])
        if shared != _shared_x(theirs[1], mine[2]):
            raise ValueError(f"ECDH is not symmetric for {mine[0]}/{theirs[0]}")
        yield {
            "src": f"derived:{mine[0]}*{theirs[0]}",
            "d": mine[1].to_bytes(32, "big").hex(),
            "peer": theirs[2],
            "shared": shared,
            "ok": True,
        }
    d = int(v["i"], 16)
    for index, rec in _pkv():
        x, y = int(rec["Qx"], 16), int(rec["Qy"], 16)
        ok = rec["Result"].startswith("P")
        peer = encode_point(x, y)
        yield {
            "src": f"PKV#{index}",
            "d": v["i"],
            "peer": peer,
            "shared": _shared_x(d, peer) if ok else "",
            "ok": ok,
        }


def _crc16() -> Iterator[Vector]:
    check = b"123456789"
    if crc16_kermit(check) != 0x2189:
        raise ValueError("CRC-16/KERMIT reference is wrong")
    yield {"src": "catalogue:check", "msg": check.hex(), "crc": 0x2189}
    msgs = [b"", b"\x00", b"\xff", b"\x00" * 16, b"\xff" * 16, bytes(range(256))]
    seed = b"ami crc16"
    for size in (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 127, 128, 129):
        seed = hashlib.sha256(seed).digest()
        msgs.append((seed * 5)[:size])
    for index, msg in enumerate(msgs):
        yield {"src": f"derived:crc16#{index}", "msg": msg.hex(), "crc": crc16_kermit(msg)}


_FULL: dict[str, Callable[[], Iterator[Vector]]] = {
    "ccm": _ccm,
    "cmac": _cmac,
    "sha256": _sha256,
    "hmac_sha256": _hmac_sha256,
    "hkdf_sha256": _hkdf_sha256,
    "keywrap": _keywrap,
    "ecdsa_verify": _ecdsa_verify,
    "ecdsa_sign": _ecdsa_sign,
    "p256_keypair": _p256_keypair,
    "ecdh": _ecdh,
    "crc16": _crc16,
}


def iter_suite(name: str) -> Iterator[Vector]:
    """Yield every vector of suite `name` (see the module docstring for fields and sources)."""
    try:
        make = _FULL[name]
    except KeyError:
        known = ", ".join(SUITES)
        raise ValueError(f"unknown vector suite {name!r} (known: {known})") from None
    return make()


# --------------------------------------------------------------------------------------------
# Compact subsets
# --------------------------------------------------------------------------------------------


def _spread(items: list[Vector], count: int) -> list[Vector]:
    """count items evenly spread over items, always with the first and the last."""
    if count >= len(items):
        return list(items)
    if count <= 0:
        return []
    if count == 1:
        return [items[0]]
    step = (len(items) - 1) / (count - 1)
    return [items[round(i * step)] for i in range(count)]


def _group(items: Iterable[Vector], key: Callable[[Vector], str]) -> dict[str, list[Vector]]:
    groups: dict[str, list[Vector]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def _by_file(vector: Vector) -> str:
    return str(vector["src"]).split("#")[0]


def _mixed(items: list[Vector], n_ok: int, n_bad: int) -> list[Vector]:
    good = [v for v in items if v["ok"]]
    bad = [v for v in items if not v["ok"]]
    return _spread(good, n_ok) + _spread(bad, n_bad)


def _compact_ccm() -> list[Vector]:
    out = []
    for name, vecs in _group(_ccm(), _by_file).items():
        out += _mixed(vecs, 6, 3) if name.startswith("DVPT") else _spread(vecs, 3)
    return out


def _compact_keywrap() -> list[Vector]:
    out = []
    for name, vecs in _group(_keywrap(), _by_file).items():
        short = [v for v in vecs if len(v["wrapped"]) <= 2 * 48]
        out += _mixed(short, 3, 2)
        if name == "KW_AE_128":
            out.append(max(vecs, key=lambda v: len(v["wrapped"])))  # one 4096-bit key
    return out


def _compact_ecdsa_verify() -> list[Vector]:
    vecs = list(_ecdsa_verify())
    sigver = [v for v in vecs if v["src"].startswith("SigVer")]
    # One of each failure reason the file gives, then passes.
    out: list[Vector] = _spread([v for v in sigver if v["ok"]], 3)
    out += _spread([v for v in sigver if not v["ok"]], 5)
    out += _spread([v for v in vecs if v["src"].startswith("SigGen")], 2)
    out += _spread([v for v in vecs if v["src"].startswith("derived:compressed")], 2)
    rfc = [v for v in vecs if v["src"].startswith("rfc6979")]
    out += _mixed(rfc, 1, 1)
    pkv = [v for v in vecs if v["src"].startswith("PKV")]
    out += [v for v in pkv if len(v["pub"]) == 130][:1] + [v for v in pkv if len(v["pub"]) != 130][
        :1
    ]
    return out


def _compact_ecdsa_sign() -> list[Vector]:
    vecs = list(_ecdsa_sign())
    return [v for v in vecs if v["src"].startswith("rfc6979")] + _spread(
        [v for v in vecs if v["src"].startswith("derived")], 3
    )


def _compact_p256_keypair() -> list[Vector]:
    vecs = list(_p256_keypair())
    return _spread([v for v in vecs if v["src"].startswith("KeyPair")], 8) + [
        v for v in vecs if v["src"].startswith("rfc")
    ]


def _compact_ecdh() -> list[Vector]:
    vecs = list(_ecdh())
    return (
        [v for v in vecs if v["src"].startswith("rfc5903")]
        + _spread([v for v in vecs if v["src"].startswith("derived")], 4)
        + [v for v in vecs if v["src"].startswith("PKV")]
    )


def _compact_crc16() -> list[Vector]:
    vecs = list(_crc16())
    return vecs[:1] + _spread(vecs[1:], 11)


_COMPACT: dict[str, Callable[[], list[Vector]]] = {
    "ccm": _compact_ccm,
    "cmac": lambda: list(_cmac()),
    "sha256": lambda: _spread(list(_sha256()), 16),
    "hmac_sha256": lambda: list(_hmac_sha256()),
    "hkdf_sha256": lambda: list(_hkdf_sha256()),
    "keywrap": _compact_keywrap,
    "ecdsa_verify": _compact_ecdsa_verify,
    "ecdsa_sign": _compact_ecdsa_sign,
    "p256_keypair": _compact_p256_keypair,
    "ecdh": _compact_ecdh,
    "crc16": _compact_crc16,
}


def compact_suite(name: str) -> list[Vector]:
    """The compact subset of suite `name` that `build` writes."""
    if name not in _COMPACT:
        raise ValueError(f"unknown vector suite {name!r}")
    return _COMPACT[name]()


# --------------------------------------------------------------------------------------------
# Building the compact files
# --------------------------------------------------------------------------------------------


def _stamp() -> str:
    source = Path(__file__).read_bytes()
    tool = hashlib.sha256(source).hexdigest()[:16]
    return f"format={FORMAT_VERSION} vectors={vectors_version()} tool={tool}\n"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="ascii")
    os.replace(tmp, path)


def up_to_date(out_dir: str | os.PathLike[str]) -> bool:
    """True when out_dir holds every suite file written by this version of the tool."""
    out = Path(out_dir)
    stamp = out / STAMP_NAME
    if not stamp.is_file() or stamp.read_text(encoding="ascii") != _stamp():
        return False
    return all((out / (name + ".json")).is_file() for name in SUITES)


def build(out_dir: str) -> None:
    """Write the compact subsets to out_dir/<suite>.json unless they are up to date."""
    out = Path(out_dir)
    if up_to_date(out):
        return
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / STAMP_NAME
    if stamp.exists():
        stamp.unlink()
    for name in SUITES:
        # One vector per line keeps the files readable and diffable.
        lines = [json.dumps(v, separators=(",", ":")) for v in compact_suite(name)]
        _write_atomic(out / (name + ".json"), "[\n" + ",\n".join(lines) + "\n]\n")
    _write_atomic(stamp, _stamp())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=os.getenv("AMI_VECTORS", "build/vectors"))
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--count", action="store_true", help="print full and compact counts")
    args = parser.parse_args(argv)
    if args.force:
        stamp = Path(args.out_dir) / STAMP_NAME
        if stamp.exists():
            stamp.unlink()
    build(args.out_dir)
    if args.count:
        for name in SUITES:
            full = sum(1 for _ in iter_suite(name))
            print(f"{name:<14} full {full:4d}  compact {len(compact_suite(name)):3d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def add_parser(sub: Any) -> None:
    """Register `ami vectors`."""
    p = sub.add_parser("vectors", help="extract compact test-vector subsets")
    p.add_argument("--out", default="build/vectors", help="a directory (made if missing)")
    p.set_defaults(func=_command)


def _command(args: Any) -> int:
    check_output_dir("--out", args.out)
    build(args.out)
    print("vector subsets written to", args.out)
    return 0
