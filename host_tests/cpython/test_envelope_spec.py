"""The firmware envelope codec (ami.commands.envelope) and the construct spec
(amitools.reference.spec) agree on signed command envelopes (docs/protocol.md section 10).

On random valid fields both build the same bytes and read back the same fields; on random
fields (valid or not) both builders accept or reject together; on random bytes and mutations
of valid envelopes both decoders accept the same ones with the same fields and reject the
others as malformed. Any exception other than the typed rejections fails a test.
"""

from __future__ import annotations

from typing import Any

from ami.commands import envelope as E
from ami.crypto import p256_public_key, sha256
from amitools.reference import spec
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
    if c.command == spec.CMD_KEY_CHANGE:
        p = c.params
        return (p.kind, p.key_id, p.generation, p.grace_s, p.material)
    if c.command == spec.CMD_REJOIN:
        return (c.params.flags,)
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


def same_verdict(data: bytes, record: bool = True) -> tuple[str, Any]:
    fw = fw_decode(data)
    assert fw == spec_decode(data), data.hex()
    assert isinstance(spec.describe_command(data), str)
    if record:  # hypothesis statistics, only inside a @given test
        event(fw[1] if fw[0] == "rejected" else "ok")
    return fw


KC_KINDS = sorted(spec.KEY_CHANGE_MATERIAL)
KC_FIELDS = ("kind", "key_id", "generation", "grace_s", "material")


@st.composite
def key_material(draw: st.DrawFn, kind: int, length_ok: bool = True, prefix_ok: bool = True
                 ) -> bytes:
    """Material of a kind's exact length (a signer's starts 02 or 03); with length_ok False
    off by a little or of another kind's length, with prefix_ok False any first byte."""
    size = spec.KEY_CHANGE_MATERIAL.get(kind, 24)
    if not length_ok:
        size = draw(st.one_of(
            st.integers(max(size - 2, 0), size + 2),
            st.sampled_from(sorted(set(spec.KEY_CHANGE_MATERIAL.values()) | {0, 65})),
        ))
    data = bytearray(draw(st.binary(min_size=size, max_size=size)))
    if data and (kind == E.KC_SIGNER or not prefix_ok):
        data[0] = draw(st.sampled_from((2, 3)) if prefix_ok else u8)
    return bytes(data)


def params_for(command: int, draw: st.DrawFn, valid: bool = True) -> tuple:
    if command == E.LOAD_LIMIT:
        restore = st.integers(0, 1) if valid else st.one_of(st.integers(0, 1), u8)
        return (draw(u32), draw(u16), draw(restore))
    if command == E.NOTIFY:
        return (draw(st.binary(min_size=32, max_size=32)), draw(edge32))
    if command == E.KEY_CHANGE:
        # Invalid fields: at most one flaw each, so every rule is exercised on its own.
        flaw = "none" if valid else draw(st.sampled_from(("none", "kind", "length", "prefix")))
        kind = draw(st.sampled_from(KC_KINDS))
        if flaw == "kind":
            kind = draw(st.one_of(st.integers(0, 6), u8))
        elif flaw == "prefix":
            kind = draw(st.sampled_from((E.KC_SIGNER, E.KC_SIGNER, kind)))
        material = draw(key_material(kind, flaw != "length", flaw != "prefix"))
        return (kind, draw(u8), draw(edge32), draw(edge32), material)
    if command == E.REJOIN:
        flags = st.integers(0, 1)
        return (draw(flags if valid else st.one_of(flags, u8)),)
    return ()


def spec_params(command: int, args: tuple) -> dict[str, Any] | None:
    if command == E.LOAD_LIMIT:
        return dict(zip(("limit_w", "duration_s", "restore"), args, strict=True))
    if command == E.NOTIFY:
        return dict(zip(("action_hash", "deadline"), args, strict=True))
    if command == E.KEY_CHANGE:
        return dict(zip(KC_FIELDS, args, strict=True))
    if command == E.REJOIN:
        return {"flags": args[0]}
    return None


def target_kinds(command: int) -> st.SearchStrategy[int]:
    """The target kinds a valid envelope of command may have."""
    if command in spec.DEVICE_ONLY_COMMANDS:
        return st.just(spec.TARGET_DEVICE)
    return st.integers(0, 1)


@st.composite
def valid_fields(draw: st.DrawFn) -> dict[str, Any]:
    command = draw(st.sampled_from(sorted(spec.COMMAND_NAMES)))
    nb = draw(edge32)
    na = draw(st.integers(nb, min(nb + WEEK, 0xFFFFFFFF)))
    return {
        "command": command,
        "target_kind": draw(target_kinds(command)),
        "target": draw(st.binary(min_size=8, max_size=8)),
        "counter": draw(edge32),
        "not_before": nb,
        "not_after": na,
        "key_id": draw(u8),
        "params": params_for(command, draw),
        "signature": draw(st.binary(min_size=64, max_size=64)),
    }


LIFECYCLE = st.sampled_from((E.KEY_CHANGE, E.REJOIN, E.DECOMMISSION))


@st.composite
def any_fields(draw: st.DrawFn, commands: st.SearchStrategy[int] | None = None) -> dict[str, Any]:
    """Fields in type range (8, 32 bits) but not necessarily satisfying the rules."""
    if commands is None:
        commands = st.one_of(st.integers(1, 9), st.integers(0, 10), u8)
    command = draw(commands)
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
    event(spec.COMMAND_NAMES[f["command"]])
    data = fw_build(f)
    assert data == spec_build(f)
    params = spec_params(f["command"], f["params"])
    assert len(data) == 25 + spec.command_param_len(f["command"], params) + 64
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
    builders_agree(f)


@SETTINGS
@given(any_fields(LIFECYCLE))
def test_builders_agree_on_lifecycle_commands(f: dict[str, Any]) -> None:
    """The same, all on KEY_CHANGE, REJOIN and DECOMMISSION: kinds, material lengths, signer
    prefixes, flags and target kinds, valid or not."""
    builders_agree(f)


def builders_agree(f: dict[str, Any]) -> None:
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
    kind = draw(st.sampled_from(("flip", "set", "truncate", "extend", "header", "command")))
    if kind == "flip":
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "set":
        data[draw(st.integers(0, min(len(data), 40) - 1))] = draw(u8)
    elif kind == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif kind == "extend":
        data += draw(st.binary(min_size=1, max_size=80))
    elif kind == "command":  # another command (or target kind) on the same parameters
        data[1] = draw(st.integers(0, 10))
        data[2] = draw(st.sampled_from((0, 1, data[2])))
    elif kind == "header":  # a byte that selects a rule: version, command, target kind,
        # parameter length, KEY_CHANGE kind or REJOIN flags, a signer key's prefix
        data[draw(st.sampled_from((0, 1, 2, 24, 25, 35)))] = draw(u8)
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
    b[1] = command % 11
    b[2] &= 1
    b[24] = len(b) - 89
    same_verdict(bytes(b))


@st.composite
def near_key_changes(draw: st.DrawFn) -> bytes:
    """KEY_CHANGE envelopes one field or so away from valid: any kind byte, a parameter
    block of the kind's own length or of another kind's, a signer prefix from 02/03 or not,
    a device or a group target; the rest random."""
    kind = draw(st.one_of(st.sampled_from(KC_KINDS), st.sampled_from(KC_KINDS), u8))
    sizes = sorted(spec.KEY_CHANGE_MATERIAL.values())
    own = spec.KEY_CHANGE_MATERIAL.get(kind)
    size = own if own is not None and draw(st.booleans()) else draw(st.sampled_from(sizes))
    params = bytearray(bytes((kind,)) + draw(st.binary(min_size=9 + size, max_size=9 + size)))
    params[10] = draw(st.sampled_from((2, 3, 2, 3, 4, 0, 0xFF)))  # the signer prefix
    nb = draw(edge32)
    na = min(nb + draw(st.integers(0, WEEK)), 0xFFFFFFFF)
    head = bytes((1, E.KEY_CHANGE, draw(st.sampled_from((0, 0, 0, 1)))))
    head += draw(st.binary(min_size=12, max_size=12))  # target, counter
    head += nb.to_bytes(4, "big") + na.to_bytes(4, "big") + bytes((draw(u8), len(params)))
    return head + bytes(params) + draw(st.binary(min_size=64, max_size=64))


@SETTINGS
@given(near_key_changes())
def test_near_valid_key_changes_same_verdict(data: bytes) -> None:
    same_verdict(data)


def test_lifecycle_commands_per_the_spec_layouts() -> None:
    """Fixed examples of each new layout, built by hand from docs/protocol.md section 10.2."""
    eui = b"\x02AMI\x00\x00\x00\x01"
    head = bytes((1, E.KEY_CHANGE, 0)) + eui + bytes(12) + b"\x05"
    for kind, size in ((1, 40), (2, 32), (3, 24), (4, 33)):
        material = (b"\x02" if kind == 4 else b"\x00") + bytes(size - 1)
        params = bytes((kind, 9)) + (7).to_bytes(4, "big") + (60).to_bytes(4, "big") + material
        data = head + bytes((len(params),)) + params + bytes(64)
        ok, fields = same_verdict(data, False)
        assert ok == "ok" and fields[7] == (kind, 9, 7, 60, material), kind
        assert spec.describe_command(data).startswith("KEY_CHANGE device=")
        grouped = bytearray(data)
        grouped[2] = 1
        assert same_verdict(bytes(grouped), False)[0] == "rejected"
        for delta in (-1, 1):  # one byte of material too few or too many
            resized = bytearray(data[:-65] if delta < 0 else data[:-64] + b"\x00")
            resized[24] += delta
            assert same_verdict(bytes(resized) + bytes(64), False)[0] == "rejected"
    for prefix in (0, 1, 4, 5, 0xFF):  # a signer key that is not a compressed point
        signer = bytearray(data)
        signer[35] = prefix
        assert same_verdict(bytes(signer), False)[0] == "rejected", prefix
    rejoin = bytes((1, E.REJOIN, 1)) + eui + bytes(12) + b"\x05\x01\x01" + bytes(64)
    assert same_verdict(rejoin, False) == ("ok", (E.REJOIN, 1, eui, 0, 0, 0, 5, (1,), bytes(64),
                                           rejoin[:-64]))
    assert spec.describe_command(rejoin).startswith("REJOIN group=")
    for flags in (2, 0x81):
        assert same_verdict(rejoin[:25] + bytes((flags,)) + bytes(64), False)[0] == "rejected"
    decommission = bytes((1, E.DECOMMISSION, 0)) + eui + bytes(12) + b"\x05\x00" + bytes(64)
    assert same_verdict(decommission, False)[0] == "ok"
    assert same_verdict(decommission[:2] + b"\x01" + decommission[3:], False)[0] == "rejected"


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
