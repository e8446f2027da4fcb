"""The firmware envelope codec (ami.commands.envelope) and the construct spec (amitools.spec)
agree on signed command envelopes (docs/protocol.md section 10).

On random valid fields both build the same bytes and read back the same fields; on random
fields (valid or not) both builders accept or reject together; on random bytes and mutations
of valid envelopes both decoders accept the same ones with the same fields and reject the
others as malformed. Any exception other than the typed rejections fails a test.
"""

from __future__ import annotations

from typing import Any

from ami.commands import envelope as E
from ami.crypto import p256_public_key, sha256
from amitools import spec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WEEK = 7 * 86400

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
edge32 = st.one_of(u32, st.sampled_from((0, 1, WEEK, 0xFFFFFFFF - WEEK, 0xFFFFFFFF)))


def fw_decode(data: bytes) -> tuple[str, Any]:
    try:
        e = E.decode(data)
    except E.CommandError as exc:
        return "rejected", exc.reason
    return "ok", (
        e.command,
        e.target_kind,
        e.target,
        e.counter,
        e.not_before,
        e.not_after,
        e.key_id,
        e.args,
        e.signature,
        e.signed_part,
    )


def spec_args(c: Any) -> tuple:
    if c.command == spec.CMD_LOAD_LIMIT:
        return (c.params.limit_w, c.params.duration_s, c.params.restore)
    if c.command == spec.CMD_NOTIFY:
        return (c.params.action_hash, c.params.deadline)
    return ()


def spec_decode(data: bytes) -> tuple[str, Any]:
    try:
        c = spec.parse_command_envelope(data)
    except spec.SpecError as exc:
        return "rejected", exc.reason
    return "ok", (
        c.command,
        c.target_kind,
        c.target,
        c.counter,
        c.not_before,
        c.not_after,
        c.key_id,
        spec_args(c),
        c.signature,
        c.signed_part,
    )


def same_verdict(data: bytes) -> tuple[str, Any]:
    fw = fw_decode(data)
    assert fw == spec_decode(data), data.hex()
    assert isinstance(spec.describe_command(data), str)
    event(fw[1] if fw[0] == "rejected" else "ok")
    return fw


def params_for(command: int, draw: st.DrawFn, valid: bool = True) -> tuple:
    if command == E.LOAD_LIMIT:
        restore = st.integers(0, 1) if valid else st.one_of(st.integers(0, 1), u8)
        return (draw(u32), draw(u16), draw(restore))
    if command == E.NOTIFY:
        return (draw(st.binary(min_size=32, max_size=32)), draw(edge32))
    return ()


def spec_params(command: int, args: tuple) -> dict[str, Any] | None:
    if command == E.LOAD_LIMIT:
        return dict(zip(("limit_w", "duration_s", "restore"), args, strict=True))
    if command == E.NOTIFY:
        return dict(zip(("action_hash", "deadline"), args, strict=True))
    return None


@st.composite
def valid_fields(draw: st.DrawFn) -> dict[str, Any]:
    command = draw(st.sampled_from(sorted(spec.COMMAND_NAMES)))
    nb = draw(edge32)
    na = draw(st.integers(nb, min(nb + WEEK, 0xFFFFFFFF)))
    return {
        "command": command,
        "target_kind": draw(st.integers(0, 1)),
        "target": draw(st.binary(min_size=8, max_size=8)),
        "counter": draw(edge32),
        "not_before": nb,
        "not_after": na,
        "key_id": draw(u8),
        "params": params_for(command, draw),
        "signature": draw(st.binary(min_size=64, max_size=64)),
    }


@st.composite
def any_fields(draw: st.DrawFn) -> dict[str, Any]:
    """Fields in type range (8, 32 bits) but not necessarily satisfying the rules."""
    command = draw(st.one_of(st.integers(1, 5), st.integers(0, 8), u8))
    nb = draw(edge32)
    na = draw(st.one_of(st.integers(max(nb - 2, 0), min(nb + WEEK + 2, 0xFFFFFFFF)), edge32))
    return {
        "command": command,
        "target_kind": draw(st.one_of(st.integers(0, 1), st.integers(0, 2), u8)),
        "target": draw(st.binary(min_size=8, max_size=8)),
        "counter": draw(u32),
        "not_before": nb,
        "not_after": na,
        "key_id": draw(u8),
        "params": params_for(command, draw, valid=False),
        "signature": draw(st.binary(min_size=64, max_size=64)),
    }


def fw_build(f: dict[str, Any]) -> bytes:
    body = E.encode(
        f["command"],
        f["target_kind"],
        f["target"],
        f["counter"],
        f["not_before"],
        f["not_after"],
        f["key_id"],
        f["params"],
    )
    return body + f["signature"]


def spec_build(f: dict[str, Any]) -> bytes:
    return spec.build_command_envelope(
        f["command"],
        f["target_kind"],
        f["target"],
        f["counter"],
        f["not_before"],
        f["not_after"],
        f["key_id"],
        spec_params(f["command"], f["params"]),
        f["signature"],
    )


@SETTINGS
@given(valid_fields())
def test_valid_envelopes_build_and_parse_identically(f: dict[str, Any]) -> None:
    data = fw_build(f)
    assert data == spec_build(f)
    assert len(data) == 25 + spec.COMMAND_PARAM_LENS[f["command"]] + 64
    verdict = same_verdict(data)
    assert verdict == (
        "ok",
        (
            f["command"],
            f["target_kind"],
            f["target"],
            f["counter"],
            f["not_before"],
            f["not_after"],
            f["key_id"],
            f["params"],
            f["signature"],
            data[:-64],
        ),
    )


@SETTINGS
@given(any_fields())
def test_builders_accept_and_reject_together(f: dict[str, Any]) -> None:
    try:
        fw: bytes | None = fw_build(f)
    except E.CommandError as exc:
        assert exc.reason == "malformed"
        fw = None
    try:
        sp: bytes | None = spec_build(f)
    except spec.SpecError as exc:
        assert exc.reason == "malformed"
        sp = None
    assert fw == sp, f
    event("built" if fw else "refused")
    if fw is not None:
        assert same_verdict(fw)[0] == "ok"


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(fw_build(draw(valid_fields())))
    kind = draw(st.sampled_from(("flip", "set", "truncate", "extend", "header")))
    if kind == "flip":
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "set":
        data[draw(st.integers(0, min(len(data), 40) - 1))] = draw(u8)
    elif kind == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif kind == "extend":
        data += draw(st.binary(min_size=1, max_size=80))
    else:  # a header byte that selects a rule: version, command, kind, parameter length
        data[draw(st.sampled_from((0, 1, 2, 24)))] = draw(u8)
    return bytes(data)


@SETTINGS
@given(mutated())
def test_mutated_envelopes_same_verdict(data: bytes) -> None:
    same_verdict(data)


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes_same_verdict(data: bytes) -> None:
    same_verdict(data)


@SETTINGS
@given(st.integers(89, 160).flatmap(lambda n: st.binary(min_size=n, max_size=n)), u8)
def test_random_envelope_sized_bytes_with_valid_header(data: bytes, command: int) -> None:
    b = bytearray(data)
    b[0] = 1
    b[1] = command % 8
    b[2] &= 1
    b[24] = len(b) - 89
    same_verdict(bytes(b))


def test_signature_covers_domain_and_signed_part_per_the_spec() -> None:
    """Checked with cryptography directly, independently of the firmware's verify."""
    private = sha256(b"spec signer")
    pub = p256_public_key(private)
    body = E.encode(E.LOAD_LIMIT, E.TARGET_GROUP, b"GROUP001", 9, 100, 200, 4, (7000, 900, 1))
    data = E.sign(body, private)
    c = spec.parse_command_envelope(data)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub)
    der = encode_dss_signature(
        int.from_bytes(c.signature[:32], "big"), int.from_bytes(c.signature[32:], "big")
    )
    key.verify(der, spec.COMMAND_DOMAIN + c.signed_part, ec.ECDSA(hashes.SHA256()))
    try:
        key.verify(der, c.signed_part, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        pass
    else:
        raise AssertionError("the domain string must be part of the signed message")
    assert spec.describe_command(data).startswith("LOAD_LIMIT group=47524f5550303031 counter=9")
