"""The firmware codec (ami.link, ami.identity) and the construct spec (amitools.reference.spec)
agree.

Both implement docs/protocol.md independently. On random valid inputs they produce the same
bytes and the same fields in both directions; on random and mutated inputs they accept the
same ones and reject the others for the same reason. Any exception other than the typed
rejection errors fails a test.
"""

from __future__ import annotations

import struct
from typing import Any

from ami import identity
from ami.crypto import AuthError, crc16
from ami.link import frame, messages
from amitools.reference import spec
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = bytes(range(16))

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
euis = st.binary(min_size=8, max_size=8)


# --- helpers: one comparable outcome per implementation ---------------------------------------


def fw_frame(data: bytes) -> tuple[str, Any]:
    try:
        fr = frame.decode(data)
    except frame.FrameError as exc:
        return "rejected", exc.reason
    return "ok", (
        fr.ftype,
        fr.flags,
        fr.secured,
        fr.group,
        fr.down,
        fr.src,
        fr.dst,
        fr.key_id,
        fr.key_gen,
        fr.fcnt,
        fr.payload,
        fr.tag,
        fr.tag_len,
        fr.header,
        fr.raw,
    )


def spec_frame(data: bytes) -> tuple[str, Any]:
    try:
        c = spec.parse_frame(data)
    except spec.SpecError as exc:
        return "rejected", exc.reason
    fl = c.flags
    flags = fl.secured | fl.group << 1 | fl.down << 2 | fl.tag_code << 3 | fl.reserved << 5
    sec = c.security
    return "ok", (
        c.vt.ftype,
        flags,
        fl.secured,
        fl.group,
        fl.down,
        c.src,
        c.dst,
        sec.key_id if sec else None,
        sec.key_gen if sec else None,
        sec.fcnt if sec else None,
        c.payload,
        c.tag or b"",
        c.tag_len,
        c.header,
        c.raw,
    )


def check_frame(data: bytes) -> tuple[str, Any]:
    """The common verdict of both implementations on data (asserted equal)."""
    fw = fw_frame(data)
    assert fw == spec_frame(data), data.hex()
    assert isinstance(spec.describe(data), str)
    return fw


def same_frame_verdict(data: bytes) -> tuple[str, Any]:
    """check_frame inside a hypothesis test, with the verdict in its statistics."""
    fw = check_frame(data)
    event(fw[1] if fw[0] == "rejected" else "ok")
    return fw


def with_fcs(raw: bytes) -> bytes:
    return raw + struct.pack("<H", crc16(raw))


def fw_message(data: bytes) -> tuple[str, Any]:
    try:
        return "ok", messages.decode(data)
    except frame.FrameError as exc:
        return "rejected", exc.reason


def spec_message(data: bytes) -> tuple[str, Any]:
    try:
        c = spec.parse_message(data)
    except spec.SpecError as exc:
        return "rejected", exc.reason
    b = c.body
    t = c.msg_type
    if t == spec.READINGS:
        fields: tuple = ([(r.seq, r.time, r.wh) for r in b.readings],)
    elif t == spec.ACK:
        fields = (list(b.seqs),)
    elif t == spec.GET:
        fields = (b.req_id, b.register)
    elif t == spec.SET:
        fields = (b.req_id, b.register, b.value)
    elif t == spec.RESPONSE:
        fields = (b.req_id, b.status, b.register, b.value)
    elif t == spec.SESSION_START:
        fields = (b.join_nonce,)
    elif t == spec.STATUS:
        fields = (b.reason, b.rx_floor)
    elif t == spec.COMMAND:
        fields = (b.envelope,)
    elif t == spec.COMMAND_RESULT:
        fields = (b.counter, b.command, b.status, b.relay_state, b.reason)
    elif t == spec.EVENTS:
        fields = ([(e.seq, e.time, e.kind, e.severity, e.detail) for e in b.events],)
    elif t == spec.EVENTS_ACK:
        fields = (b.upto_seq,)
    else:
        fields = (b.group_id, b.key_gen, b.wrapped, b.next_fcnt, b.last_counter)
    return "ok", (t, fields)


def fw_cert(data: bytes) -> tuple[str, Any]:
    try:
        c = identity.decode_certificate(data)
    except identity.CertificateError as exc:
        return "rejected", exc.reason
    return "ok", (
        c.version,
        c.role,
        c.eui,
        c.not_before,
        c.not_after,
        c.public33,
        c.issuer_id,
        c.signature,
    )


def spec_cert(data: bytes) -> tuple[str, Any]:
    try:
        c = spec.parse_certificate(data)
    except spec.SpecError as exc:
        return "rejected", exc.reason
    return "ok", (
        c.version,
        c.role,
        c.eui,
        c.not_before,
        c.not_after,
        c.public_key,
        c.issuer_id,
        c.signature,
    )


# --- strategies ---------------------------------------------------------------------------


@st.composite
def join_frames(draw: st.DrawFn) -> tuple[int, bytes, bytes, bytes]:
    ftype = draw(st.sampled_from((frame.JOIN_REQUEST, frame.JOIN_RESPONSE, frame.JOIN_CONFIRM)))
    size = frame.JOIN_PAYLOAD_LENS[ftype]
    return ftype, draw(euis), draw(euis), draw(st.binary(min_size=size, max_size=size))


@st.composite
def data_frames(draw: st.DrawFn) -> dict[str, Any]:
    group = draw(st.booleans())
    tag_len = draw(st.sampled_from(frame.TAG_LENS))
    room = frame.MTU - frame.SECURED_HEADER_LEN - tag_len - frame.FCS_LEN
    return {
        "src": draw(euis),
        "dst": draw(euis),
        "key_id": frame.KEY_GROUP if group else frame.KEY_SESSION,
        "key_gen": draw(u8),
        "fcnt": draw(st.one_of(u32, st.sampled_from((0, 0xFFFFFFFF)))),
        "plaintext": draw(st.binary(min_size=1, max_size=room)),
        "down": group or draw(st.booleans()),
        "group": group,
        "tag_len": tag_len,
    }


def seal(f: dict[str, Any]) -> bytes:
    return frame.seal(
        KEY,
        frame.DATA,
        f["src"],
        f["dst"],
        f["key_id"],
        f["key_gen"],
        f["fcnt"],
        f["plaintext"],
        down=f["down"],
        group=f["group"],
        tag_len=f["tag_len"],
    )


valid_frames = st.one_of(
    join_frames().map(
        lambda j: frame.encode(j[0], j[1], j[2], j[3], down=j[0] == frame.JOIN_RESPONSE)
    ),
    data_frames().map(seal),
)

# Header-shaped noise: plausible first bytes so the field rules, not only the version, are hit.
noise_headers = st.tuples(
    st.one_of(st.sampled_from((0x11, 0x12, 0x13, 0x14)), u8),
    st.one_of(st.sampled_from((0x00, 0x01, 0x04, 0x05, 0x07, 0x09, 0x0D, 0x11, 0x19)), u8),
    st.binary(min_size=16, max_size=16),
    st.one_of(st.sampled_from((0, 1)), u8),
).map(lambda t: bytes(t[:2]) + t[2] + bytes((t[3],)))


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes], fix_fcs: bool) -> tuple[bytes, bytes]:
    """(a valid frame, a mutation of it), the FCS recomputed or not."""
    original = draw(valid)
    data = bytearray(original)
    body = data[:-2] if fix_fcs else data
    kind = draw(st.sampled_from(("flip", "set", "truncate", "extend", "header")))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(body) - 1))
            body[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "set":
        body[draw(st.integers(0, len(body) - 1))] = draw(u8)
    elif kind == "truncate":
        del body[draw(st.integers(0, len(body) - 1)) :]
    elif kind == "extend":
        body += draw(st.binary(min_size=1, max_size=40))
    else:
        i = draw(st.integers(0, min(23, len(body) - 1)))
        body[i] = draw(st.one_of(st.sampled_from((0, 1, 2, 3, 4, 5, 7, 0x10, 0x15, 0x19)), u8))
    return original, with_fcs(bytes(body)) if fix_fcs else bytes(body)


# --- frames -------------------------------------------------------------------------------------


def test_crc_implementations_agree() -> None:
    assert spec.crc16_kermit(b"123456789") == crc16(b"123456789") == 0x2189


@SETTINGS
@given(st.binary(max_size=300))
def test_crc_random(data: bytes) -> None:
    assert spec.crc16_kermit(data) == crc16(data)


@SETTINGS
@given(join_frames())
def test_join_frames_both_ways(j: tuple[int, bytes, bytes, bytes]) -> None:
    ftype, src, dst, payload = j
    down = ftype == frame.JOIN_RESPONSE
    fw = frame.encode(ftype, src, dst, payload, down=down)
    assert spec.build_frame(ftype, src, dst, payload, down=down) == fw
    verdict, fields = same_frame_verdict(fw)
    assert verdict == "ok" and fields[0] == ftype and fields[10] == payload
    c = spec.parse_frame(fw)
    assert frame.header(ftype, src, dst, down=down) == c.header


@SETTINGS
@given(data_frames())
def test_sealed_frames_firmware_to_spec(f: dict[str, Any]) -> None:
    data = seal(f)
    verdict, fields = same_frame_verdict(data)
    assert verdict == "ok"
    c = spec.parse_frame(data)
    rebuilt = spec.build_frame(
        frame.DATA,
        c.src,
        c.dst,
        c.payload,
        down=c.flags.down,
        group=c.flags.group,
        key_id=c.security.key_id,
        key_gen=c.security.key_gen,
        fcnt=c.security.fcnt,
        tag=c.tag,
    )
    assert rebuilt == data
    assert frame.open_frame(KEY, frame.decode(data)) == f["plaintext"]


@SETTINGS
@given(data_frames(), st.data())
def test_spec_built_frames_firmware_decodes(f: dict[str, Any], data: st.DataObject) -> None:
    ciphertext = data.draw(st.binary(min_size=1, max_size=len(f["plaintext"])))
    tag = data.draw(st.binary(min_size=f["tag_len"], max_size=f["tag_len"]))
    built = spec.build_frame(
        frame.DATA,
        f["src"],
        f["dst"],
        ciphertext,
        down=f["down"],
        group=f["group"],
        key_id=f["key_id"],
        key_gen=f["key_gen"],
        fcnt=f["fcnt"],
        tag=tag,
    )
    fr = frame.decode(built)
    assert (fr.src, fr.dst, fr.key_id, fr.key_gen, fr.fcnt) == (
        f["src"],
        f["dst"],
        f["key_id"],
        f["key_gen"],
        f["fcnt"],
    )
    assert (fr.payload, fr.tag, fr.down, fr.group) == (ciphertext, tag, f["down"], f["group"])
    same_frame_verdict(built)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    same_frame_verdict(data)


@SETTINGS
@given(noise_headers, st.binary(max_size=240), st.booleans())
def test_header_shaped_noise(header: bytes, rest: bytes, fix: bool) -> None:
    raw = header + rest
    same_frame_verdict(with_fcs(raw) if fix else raw + b"\x00\x00")


@SETTINGS
@given(mutated(valid_frames, fix_fcs=False))
def test_mutated_frames(pair: tuple[bytes, bytes]) -> None:
    original, data = pair
    verdict, reason = same_frame_verdict(data)
    if data != original and len(data) == len(original):
        # CRC-16 catches every error of up to 3 bits and every burst within a byte. (A length
        # change can pass it: with init 0, frame || 0x00 has a valid FCS again.)
        assert (verdict, reason) == ("rejected", "crc")


@SETTINGS
@given(mutated(valid_frames, fix_fcs=True))
def test_mutated_frames_fcs_fixed(pair: tuple[bytes, bytes]) -> None:
    original, data = pair
    verdict, _ = same_frame_verdict(data)
    if verdict == "ok" and data != original and frame.decode(data).secured:
        # Whatever still parses must not authenticate.
        try:
            frame.open_frame(KEY, frame.decode(data))
        except AuthError:
            return
        raise AssertionError("a mutated frame authenticated: " + data.hex())


@st.composite
def header_mutations(draw: st.DrawFn) -> bytes:
    """A valid frame with one header byte (type, flags, key id mostly) changed, FCS fixed."""
    raw = bytearray(draw(valid_frames)[:-2])
    i = draw(st.one_of(st.sampled_from((0, 1, 1, 1, 18)), st.integers(0, 23)))
    raw[i] = draw(
        st.one_of(
            st.integers(0, 7).map(lambda bit: raw[i] ^ 1 << bit),
            st.integers(0, 0x1F),
            u8,
        )
    )
    return with_fcs(bytes(raw))


@st.composite
def resized(draw: st.DrawFn) -> bytes:
    """A valid frame cut or padded to a length near a boundary, FCS fixed."""
    raw = draw(valid_frames)[:-2]
    n = draw(
        st.one_of(
            st.integers(16, len(raw) + 3),
            st.integers(0, 3).map(lambda k: 24 + 8 + k),  # around the smallest DATA frame
            st.sampled_from((frame.MTU - 3, frame.MTU - 2, frame.MTU - 1)),  # around the MTU
        )
    )
    pad = draw(st.binary(min_size=max(0, n - len(raw)), max_size=max(0, n - len(raw))))
    return with_fcs(raw[:n] + pad)


def sample_frames() -> list[bytes]:
    """One valid frame of every type, direction, key and tag length."""
    src, dst = bytes(range(8)), bytes(range(8, 16))
    out = [
        frame.encode(t, src, dst, bytes(frame.JOIN_PAYLOAD_LENS[t]), down=t == frame.JOIN_RESPONSE)
        for t in (frame.JOIN_REQUEST, frame.JOIN_RESPONSE, frame.JOIN_CONFIRM)
    ]
    for tag_len in frame.TAG_LENS:
        for down, group in ((False, False), (True, False), (True, True)):
            out.append(
                frame.seal(
                    KEY,
                    frame.DATA,
                    src,
                    dst,
                    int(group),
                    1,
                    2,
                    b"\x01" * 20,
                    down=down,
                    group=group,
                    tag_len=tag_len,
                )
            )
    return out


def test_every_value_of_every_header_rule_byte() -> None:
    """Exhaustive: vt, flags and key_id bytes of every sample frame, FCS fixed."""
    for data in sample_frames():
        raw = data[:-2]
        for i in (0, 1, 18):
            for value in range(256):
                check_frame(with_fcs(raw[:i] + bytes((value,)) + raw[i + 1 :]))


@SETTINGS
@given(header_mutations())
def test_header_mutations(data: bytes) -> None:
    same_frame_verdict(data)


@SETTINGS
@given(resized())
def test_resized_frames(data: bytes) -> None:
    same_frame_verdict(data)


def test_size_boundaries() -> None:
    for tag_len in frame.TAG_LENS:
        room = frame.MTU - frame.SECURED_HEADER_LEN - tag_len - frame.FCS_LEN
        data = frame.seal(
            KEY, frame.DATA, bytes(8), bytes(8), 0, 0, 0, bytes(room), tag_len=tag_len
        )
        assert len(data) == frame.MTU and check_frame(data)[0] == "ok"
        assert check_frame(with_fcs(data[:-2] + b"\x00")) == ("rejected", "malformed")
        smallest = frame.seal(
            KEY, frame.DATA, bytes(8), bytes(8), 0, 0, 0, b"\x01", tag_len=tag_len
        )
        assert check_frame(smallest)[0] == "ok"
        assert check_frame(with_fcs(smallest[:-3])) == ("rejected", "malformed")
    for n in range(0, 22):
        check_frame(bytes(n))
        check_frame(with_fcs(b"\x11" * n))


@SETTINGS
@given(data_frames(), st.sampled_from(("flags", "key_id", "ftype")), u8)
def test_build_rejections_agree(f: dict[str, Any], field: str, value: int) -> None:
    """Field values the firmware encoder refuses, the spec builder refuses too."""
    args = dict(f)
    ftype = frame.DATA
    if field == "flags":
        args["down"], args["group"] = bool(value & 1), bool(value & 2)
    elif field == "key_id":
        args["key_id"] = value
    else:
        ftype = value & 0x0F
    try:
        frame.seal(
            KEY,
            ftype,
            args["src"],
            args["dst"],
            args["key_id"],
            args["key_gen"],
            args["fcnt"],
            args["plaintext"],
            down=args["down"],
            group=args["group"],
            tag_len=args["tag_len"],
        )
        fw_ok = True
    except ValueError:
        fw_ok = False
    try:
        spec.build_frame(
            ftype,
            args["src"],
            args["dst"],
            args["plaintext"],
            down=args["down"],
            group=args["group"],
            key_id=args["key_id"],
            key_gen=args["key_gen"],
            fcnt=args["fcnt"],
            tag=bytes(args["tag_len"]),
        )
        spec_ok = True
    except spec.SpecError:
        spec_ok = False
    assert fw_ok == spec_ok


# --- DATA messages ------------------------------------------------------------------------------

readings = st.lists(st.tuples(u32, u32, u64), min_size=1, max_size=13)
seq_lists = st.lists(u32, min_size=1, max_size=13)
valid_messages = st.one_of(
    readings.map(
        lambda r: (
            messages.encode_readings(r),
            spec.READINGS,
            {"readings": [{"seq": a, "time": b, "wh": c} for a, b, c in r]},
        )
    ),
    seq_lists.map(lambda s: (messages.encode_ack(s), spec.ACK, {"seqs": s})),
    st.tuples(u16, u8).map(
        lambda t: (messages.encode_get(*t), spec.GET, {"req_id": t[0], "register": t[1]})
    ),
    st.tuples(u16, u8, u32).map(
        lambda t: (
            messages.encode_set(*t),
            spec.SET,
            {"req_id": t[0], "register": t[1], "value": t[2]},
        )
    ),
    st.tuples(u16, st.integers(0, 3), u8, u32).map(
        lambda t: (
            messages.encode_response(*t),
            spec.RESPONSE,
            {"req_id": t[0], "status": t[1], "register": t[2], "value": t[3]},
        )
    ),
    u32.map(lambda n: (messages.encode_session_start(n), spec.SESSION_START, {"join_nonce": n})),
    st.tuples(u8, u32).map(
        lambda t: (messages.encode_status(*t), spec.STATUS, {"reason": t[0], "rx_floor": t[1]})
    ),
    st.binary(min_size=89, max_size=160).map(
        lambda e: (messages.encode_command(e), spec.COMMAND, {"envelope": e})
    ),
    st.tuples(u32, u8, u8, u8, u8).map(
        lambda t: (
            messages.encode_command_result(*t),
            spec.COMMAND_RESULT,
            dict(zip(("counter", "command", "status", "relay_state", "reason"), t, strict=True)),
        )
    ),
    st.lists(st.tuples(u32, u32, u8, u8, u16), min_size=1, max_size=13).map(
        lambda evs: (
            messages.encode_events(evs),
            spec.EVENTS,
            {"events": [dict(zip(("seq", "time", "kind", "severity", "detail"), e, strict=True))
                        for e in evs]},
        )
    ),
    u32.map(lambda n: (messages.encode_events_ack(n), spec.EVENTS_ACK, {"upto_seq": n})),
    st.tuples(st.binary(min_size=8, max_size=8), u8, st.binary(min_size=24, max_size=24), u32,
              u32).map(
        lambda t: (
            messages.encode_group_key(*t),
            spec.GROUP_KEY,
            {"group_id": t[0], "key_gen": t[1], "wrapped": t[2], "next_fcnt": t[3],
             "last_counter": t[4]},
        )
    ),
)


def same_message_verdict(data: bytes) -> tuple[str, Any]:
    fw = fw_message(data)
    assert fw == spec_message(data), data.hex()
    event(fw[1] if fw[0] == "rejected" else "ok")
    return fw


@SETTINGS
@given(valid_messages)
def test_messages_both_ways(m: tuple[bytes, int, dict[str, Any]]) -> None:
    data, mtype, body = m
    assert spec.build_message(mtype, **body) == data
    verdict, (t, fields) = same_message_verdict(data)
    assert verdict == "ok" and t == mtype


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=220),
        st.tuples(st.integers(0, 9), st.binary(max_size=220)).map(lambda t: bytes((t[0],)) + t[1]),
        st.tuples(st.integers(1, 2), st.integers(0, 15), st.binary(max_size=220)).map(
            lambda t: bytes(t[:2]) + t[2]
        ),
    )
)
def test_random_messages(data: bytes) -> None:
    same_message_verdict(data)


_BODY_LENS = {3: 3, 4: 7, 5: 8, 6: 4, 7: 5, 8: 100, 9: 8, 11: 4, 12: 33}
small_bytes = st.one_of(st.integers(0, 15), u8)


@st.composite
def message_shaped(draw: st.DrawFn) -> bytes:
    """Type byte 0..13, a count near its limits, a length near the right one."""
    t = draw(st.integers(0, 13))
    if t in (spec.READINGS, spec.ACK, spec.EVENTS):
        count = draw(st.integers(0, 15))
        size = {spec.READINGS: 16, spec.ACK: 4, spec.EVENTS: 12}[t]
        n = 2 + count * size + draw(st.integers(-1, 1))
        head = [t, count]
    else:
        n = 1 + _BODY_LENS.get(t, 4) + draw(st.integers(-1, 1))
        head = [t]
    body = draw(
        st.lists(small_bytes, min_size=max(0, n - len(head)), max_size=max(0, n - len(head)))
    )
    return bytes(head + body)[: max(n, 0)]


def test_message_boundaries() -> None:
    """Exhaustive: every count with lengths around it, every status, every type byte."""
    for t, size in ((spec.READINGS, 16), (spec.ACK, 4), (spec.EVENTS, 12)):
        for count in range(16):
            for delta in (-1, 0, 1):
                n = max(0, count * size + delta)
                fw = fw_message(bytes((t, count)) + bytes(n))
                assert fw == spec_message(bytes((t, count)) + bytes(n))
    for status in range(256):
        data = bytes((spec.RESPONSE, 0, 1, status, 2, 0, 0, 0, 9))
        assert fw_message(data) == spec_message(data)
    for t in range(256):
        for n in range(12):
            assert fw_message(bytes((t,)) + bytes(n)) == spec_message(bytes((t,)) + bytes(n))


@SETTINGS
@given(message_shaped())
def test_message_shaped_noise(data: bytes) -> None:
    same_message_verdict(data)


@SETTINGS
@given(valid_messages, st.data())
def test_mutated_messages(m: tuple[bytes, int, dict[str, Any]], draw: st.DataObject) -> None:
    data = bytearray(m[0])
    kind = draw.draw(st.sampled_from(("set", "truncate", "extend")))
    if kind == "set":
        data[draw.draw(st.integers(0, len(data) - 1))] = draw.draw(u8)
    elif kind == "truncate":
        del data[draw.draw(st.integers(0, len(data) - 1)) :]
    else:
        data += draw.draw(st.binary(min_size=1, max_size=20))
    same_message_verdict(bytes(data))


# --- join payloads ------------------------------------------------------------------------------

points = st.binary(min_size=33, max_size=33)
sigs = st.binary(min_size=64, max_size=64)


@SETTINGS
@given(
    u32,
    points,
    u32,
    sigs,
    st.binary(min_size=116, max_size=116),
    st.binary(min_size=16, max_size=16),
)
def test_join_payloads_both_ways(
    dn: int, pt: bytes, jn: int, sig: bytes, cert: bytes, mac: bytes
) -> None:
    req = messages.encode_join_request(dn, pt, mac[:8])
    assert spec.build_join(spec.JOIN_REQUEST, dev_nonce=dn, g_x=pt, mic=mac[:8]) == req
    c = spec.parse_join(spec.JOIN_REQUEST, req)
    assert messages.decode_join_request(req) == (c.dev_nonce, c.g_x, c.mic) == (dn, pt, mac[:8])
    resp = messages.encode_join_response(jn, pt, sig)
    assert spec.build_join(spec.JOIN_RESPONSE, join_nonce=jn, g_y=pt, sig_he=sig) == resp
    c = spec.parse_join(spec.JOIN_RESPONSE, resp)
    assert messages.decode_join_response(resp) == (c.join_nonce, c.g_y, c.sig_he)
    conf = messages.encode_join_confirm(cert, sig, mac)
    assert spec.build_join(spec.JOIN_CONFIRM, certificate=cert, sig_d=sig, mac=mac) == conf
    c = spec.parse_join(spec.JOIN_CONFIRM, conf)
    assert messages.decode_join_confirm(conf) == (c.certificate, c.sig_d, c.mac)


@SETTINGS
@given(st.sampled_from((1, 2, 3)), st.binary(max_size=220))
def test_join_payload_lengths(ftype: int, data: bytes) -> None:
    dec = {
        1: messages.decode_join_request,
        2: messages.decode_join_response,
        3: messages.decode_join_confirm,
    }[ftype]
    try:
        dec(data)
        fw_ok = True
    except frame.FrameError as exc:
        assert exc.reason == "malformed"
        fw_ok = False
    try:
        spec.parse_join(ftype, data)
        spec_ok = True
    except spec.SpecError as exc:
        assert exc.reason == "malformed"
        spec_ok = False
    assert fw_ok == spec_ok == (len(data) == frame.JOIN_PAYLOAD_LENS[ftype])


# --- certificates -------------------------------------------------------------------------------


@st.composite
def cert_fields(draw: st.DrawFn) -> dict[str, Any]:
    nb = draw(u32)
    return {
        "role": draw(st.sampled_from((1, 2, 3))),
        "eui": draw(euis),
        "not_before": nb,
        "not_after": draw(st.integers(nb, 0xFFFFFFFF)),
        "public_key": bytes((draw(st.sampled_from((2, 3))),))
        + draw(st.binary(min_size=32, max_size=32)),
        "issuer_id": draw(u8),
        "signature": draw(sigs),
    }


def same_cert_verdict(data: bytes) -> tuple[str, Any]:
    fw = fw_cert(data)
    assert fw == spec_cert(data), data.hex()
    event(fw[1] if fw[0] == "rejected" else "ok")
    return fw


@SETTINGS
@given(cert_fields())
def test_certificates_both_ways(f: dict[str, Any]) -> None:
    built = spec.build_certificate(**f)
    cert = identity.Certificate(
        1,
        f["role"],
        f["eui"],
        f["not_before"],
        f["not_after"],
        f["public_key"],
        f["issuer_id"],
        f["signature"],
    )
    assert cert.to_bytes() == built and cert.tbs() == built[:52]
    verdict, fields = same_cert_verdict(built)
    assert verdict == "ok" and fields[5] == f["public_key"]


@st.composite
def cert_shaped(draw: st.DrawFn) -> bytes:
    """Certificate bytes packed here (by neither implementation), fields near their limits."""
    nb = draw(u32)
    na = draw(st.one_of(u32, st.integers(-2, 2).map(lambda d: min(max(nb + d, 0), 0xFFFFFFFF))))
    return struct.pack(
        ">BB8sII33sB64s",
        draw(st.sampled_from((0, 1, 1, 1, 2, 255))),
        draw(st.integers(0, 5)),
        draw(euis),
        nb,
        na,
        bytes((draw(st.sampled_from((0, 2, 3, 4))),)) + draw(st.binary(min_size=32, max_size=32)),
        draw(u8),
        draw(sigs),
    )


def test_certificate_boundaries() -> None:
    """Exhaustive over version, role, key prefix; validity windows around empty."""
    base = bytearray(
        spec.build_certificate(
            role=1,
            eui=bytes(8),
            not_before=100,
            not_after=100,
            public_key=b"\x02" + bytes(32),
            issuer_id=0,
            signature=bytes(64),
        )
    )
    for i in (0, 1, 18):
        for value in range(256):
            data = bytes(base[:i]) + bytes((value,)) + bytes(base[i + 1 :])
            assert fw_cert(data) == spec_cert(data)
    for nb, na in (
        (0, 0),
        (1, 0),
        (100, 99),
        (99, 100),
        (0xFFFFFFFF, 0xFFFFFFFE),
        (0xFFFFFFFF, 0xFFFFFFFF),
        (0, 0xFFFFFFFF),
    ):
        data = bytes(base[:10]) + struct.pack(">II", nb, na) + bytes(base[18:])
        assert fw_cert(data) == spec_cert(data)
        assert (fw_cert(data)[0] == "ok") == (nb <= na)


@SETTINGS
@given(cert_shaped())
def test_certificate_shaped(data: bytes) -> None:
    same_cert_verdict(data)


@SETTINGS
@given(cert_fields(), st.integers(0, 115), u8, st.sampled_from(("set", "truncate", "extend")))
def test_mutated_certificates(f: dict[str, Any], i: int, value: int, kind: str) -> None:
    data = bytearray(spec.build_certificate(**f))
    if kind == "set":
        data[i] = value
    elif kind == "truncate":
        del data[i:]
    else:
        data += bytes((value,))
    same_cert_verdict(bytes(data))


@SETTINGS
@given(st.binary(min_size=116, max_size=116), st.sampled_from((1, 2, 3, 0, 4)))
def test_random_certificates(data: bytes, role: int) -> None:
    same_cert_verdict(data)
    same_cert_verdict(b"\x01" + bytes((role,)) + data[2:])


# --- sniffer -----------------------------------------------------------------------------------


def test_describe() -> None:
    src, dst = bytes(range(8)), bytes(range(8, 16))
    data = frame.seal(
        KEY,
        frame.DATA,
        src,
        dst,
        frame.KEY_GROUP,
        5,
        77,
        b"\x02\x01\0\0\0\1",
        down=True,
        group=True,
        tag_len=12,
    )
    line = spec.describe(data)
    assert line.startswith("DATA down group src=0001020304050607 dst=08090a0b0c0d0e0f")
    assert "key=group gen=5 fcnt=77 payload=6 tag=12" in line and line.endswith("len=44")
    req = frame.encode(
        frame.JOIN_REQUEST, src, dst, messages.encode_join_request(9, b"\x02" + bytes(32), bytes(8))
    )
    assert "JOIN_REQUEST up" in spec.describe(req) and "dev_nonce=9" in spec.describe(req)
    ca = bytes(31) + b"\x01"
    cert = identity.make_certificate(
        ca,
        4,
        identity.ROLE_METER,
        src,
        10,
        20,
        b"\x03" + bytes.fromhex("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"),
    ).to_bytes()
    conf = frame.encode(
        frame.JOIN_CONFIRM, src, dst, messages.encode_join_confirm(cert, bytes(64), bytes(16))
    )
    assert "cert=meter/0001020304050607 issuer=4 valid=10..20" in spec.describe(conf)
    bad = bytearray(conf)
    bad[5] ^= 1
    assert spec.describe(bytes(bad)) == f"invalid frame (crc) len={len(conf)}"
    assert spec.describe(b"") == "invalid frame (malformed) len=0"
