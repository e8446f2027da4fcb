"""Secure-link scenarios on the virtual radio, with in-process CPython meters and with
MicroPython unix-port meters running the same firmware."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from ami import crypto
from ami import identity as ident
from ami.link import frame, messages
from ami.ports.entropy import DeterministicEntropy
from amitools.office.provision import device_eui, new_private
from amitools.sim.fleet import T0_MS, DemoOptions, Fleet
from amitools.sim.radio import PERFECT, Verdict

KINDS = ["cpython", "micropython"]


@pytest.fixture(params=KINDS)
def fleet(request, tmp_path: Path):
    meters = 2
    opts = DemoOptions(
        meters=meters, micropython=meters if request.param == "micropython" else 0,
        loss=0.0, hours=2, attacks=False,
    )
    f = Fleet(opts, tmp_path)
    for m in f.meters:
        f.medium.set_link(m, PERFECT)  # no loss, duplication or corruption: exact outcomes
    f.run_joins()
    assert f.joined() == meters
    yield f
    f.close()


def run(f: Fleet, ms: int) -> None:
    f.medium.run(f.medium.now + ms)


def captured(f: Fleet, ftype: int, down: bool | None = None) -> list[bytes]:
    out = []
    for c in f.attacker.captures():
        data = c.frame
        if data[0] & 0x0F == ftype and (down is None or bool(data[1] & frame.DOWN) == down):
            out.append(data)
    return out


def inject(f: Fleet, data: bytes, to: bytes) -> str | None:
    handle = f.medium.inject(data, f.medium.now + 1, to)
    run(f, 10)
    assert handle.status == "delivered"
    return handle.result[0]


def test_readings_delivered_and_acknowledged(fleet: Fleet) -> None:
    run(fleet, 2 * 3_600_000)
    fleet.headend.flush()
    for eui, m in fleet.meters.items():
        info = m.node.info()
        seq, queued = info["next_seq"], info["queue"]
        assert seq >= 8
        assert fleet.registry.count_below(eui, seq) == seq
        assert queued == 0


def test_replayed_frames_rejected_both_ways(fleet: Fleet) -> None:
    run(fleet, 3_600_000)
    ups = captured(fleet, frame.DATA, down=False)
    downs = captured(fleet, frame.DATA, down=True)
    assert ups and downs
    for data in ups[-5:]:
        assert inject(fleet, data, fleet.headend.address) == "replay"
    for data in downs[-5:]:
        assert inject(fleet, data, data[10:18]) == "replay"
    assert not fleet.he.doubles and not any(m.doubles for m in fleet.meters.values())


def test_reordering_within_window_accepted_once(fleet: Fleet) -> None:
    held: list[tuple[bytes, bytes]] = []

    def hold_first_uplink(t: int, sender: bytes, data: bytes):
        if not held and data[0] & 0x0F == frame.DATA and not data[1] & frame.DOWN:
            held.append((sender, data))
            return Verdict.delay(30 * 60_000)  # arrives after the next uplinks
        return None

    fleet.medium.set_interceptor(hold_first_uplink)
    run(fleet, 3_600_000)
    fleet.medium.set_interceptor(None)
    assert held
    sender, late = held[0]
    stats = fleet.medium.stats(fleet.headend.address)
    assert stats.rejected.get("replay", 0) == 0  # the late frame was accepted in the window
    assert inject(fleet, late, fleet.headend.address) == "replay"  # but only once


def test_forgery_and_bitflips_rejected_and_counted(fleet: Fleet) -> None:
    run(fleet, 3_600_000)
    before = dict(fleet.headend.stats)
    fleet.attacker.forge(10, start_ms=fleet.medium.now, spread_ms=60_000)
    fleet.attacker.bitflip(10, start_ms=fleet.medium.now, spread_ms=60_000, live=True)
    run(fleet, 3_600_000)
    report = fleet.attacker.report()
    assert report["forge"]["attempted"] == 10 and report["forge"]["accepted"] == 0
    assert report["bitflip"]["attempted"] == 10 and report["bitflip"]["accepted"] == 0
    gained = fleet.headend.stats["auth"] - before.get("auth", 0)
    meter_auth = sum(m.node.info()["stats"].get("auth", 0) for m in fleet.meters.values())
    assert gained + meter_auth > 0


def test_replayed_join_accept_rejected(fleet: Fleet) -> None:
    responses = captured(fleet, frame.JOIN_RESPONSE)
    assert responses
    for data in responses:
        assert inject(fleet, data, data[10:18]) in ("unexpected", "join_nonce_replay")
    # A meter that is joining again still refuses the old response (nonce and transcript);
    # the harness drops the session of an in-process meter directly.
    for victim in fleet.in_process[:1]:
        victim.node.drop_session("rejoin_requested")
        fleet.medium.run(victim.node.next_wakeup() + 1)
        for data in responses:
            if frame.peek(data)[3] == victim.address:
                assert inject(fleet, data, victim.address) in (
                    "join_nonce_replay", "bad_signature", "unexpected",
                )


def test_rogue_joins_rejected(fleet: Fleet) -> None:
    he = fleet.headend.address
    rng = DeterministicEntropy(b"rogue")
    gx = ident.compress_point(crypto.p256_public_key(new_private(rng)))
    # Unknown EUI.
    req = messages.encode_join_request(7, gx, bytes(8))
    assert inject(fleet, frame.encode(frame.JOIN_REQUEST, device_eui(999), he, req), he) == (
        "unknown_device"
    )
    # A real EUI without its root key: the mic fails and no state changes.
    victim = next(iter(fleet.meters))
    dev = fleet.headend.devices[victim]
    nonce_before = dev.last_dev_nonce
    req = messages.encode_join_request(nonce_before + 100, gx, bytes(8))
    assert inject(fleet, frame.encode(frame.JOIN_REQUEST, victim, he, req), he) == "auth"
    assert dev.last_dev_nonce == nonce_before and dev.pending is None
    # A confirm with no join pending, with a forged certificate or a real one without its key.
    fake_ca = new_private(rng)
    forged = ident.make_certificate(
        fake_ca, 1, ident.ROLE_METER, victim, 0, 0xFFFFFFFF, crypto.p256_public_key(fake_ca)
    ).to_bytes()
    real = next(k.cert for k in fleet.prov.devices if k.eui == victim)
    for cert in (forged, real):
        body = messages.encode_join_confirm(cert, bytes(64), bytes(16))
        assert inject(fleet, frame.encode(frame.JOIN_CONFIRM, victim, he, body), he) == (
            "unexpected"
        )


def test_rogue_confirm_during_real_join(tmp_path: Path) -> None:
    opts = DemoOptions(meters=3, micropython=0, loss=0.0, hours=1, attacks=False)
    f = Fleet(opts, tmp_path)
    f._rejoin_race(T0_MS)  # the attacker answers the head end's response first
    f.run_joins()
    report = f.attacker.report()
    assert f.joined() == 3
    assert report["forged_certificate"] == {"attempted": 1, "accepted": 0}
    assert report["stolen_certificate"] == {"attempted": 1, "accepted": 0}
    assert f.attacker.reasons["forged_certificate"]["bad_certificate"] == 1
    assert f.attacker.reasons["stolen_certificate"]["bad_signature"] == 1
    f.close()


def test_eavesdropper_learns_no_reading_or_key(fleet: Fleet) -> None:
    seen: list[bytes] = []
    fleet.medium.add_sniffer(lambda t, src, data: seen.append(data))
    run(fleet, 2 * 3_600_000)
    fleet.headend.flush()
    air = b"|".join(seen)
    assert seen
    for kit in fleet.prov.devices:
        dev = fleet.headend.devices[kit.eui]
        for secret in (kit.root_key, kit.secret, dev.session.k_up, dev.session.k_down):
            assert secret not in air
        for seq, t, wh in fleet.registry.readings(kit.eui):
            assert struct.pack(">IIQ", seq, t, wh) not in air
            assert struct.pack(">Q", wh) not in air


@pytest.mark.parametrize("kind", KINDS)
def test_signed_commands_and_attacks_on_them(kind: str, tmp_path: Path) -> None:
    """Disconnect, arm and local restore, a signed group load limit; then every attack on
    commands: copy-cat to the same and another meter, forged signature, expired, replay
    after reboot, mass disconnect by a compromised operator, group-key-only forgery."""
    meters = 3
    opts = DemoOptions(meters=meters, micropython=meters if kind == "micropython" else 0,
                       loss=0.0, hours=4, attacks=False)
    f = Fleet(opts, tmp_path)
    for m in f.meters:
        f.medium.set_link(m, PERFECT)
    f.run_joins()
    f.schedule_commands()
    f.run_day()
    r = f.campaign.report()
    attacks = f.campaign.attack_scores()
    f.close()
    for name in ("copycat", "forged_signature", "expired", "replay_after_reboot",
                 "mass_disconnect"):
        assert attacks[name]["attempted"] >= 1, name
        assert attacks[name]["accepted"] == 0, name
    assert attacks["copycat"]["attempted"] == 2
    assert r["commands"]["refused_by_signer_policy"]  # the compromised account was stopped
    forged = f.attacker.reasons["group_key_forgery"]
    assert forged["bad_signature"] == meters and forged.get("accepted", 0) == 0
    # The victim was disconnected, armed and restored by its button before the attacks,
    # and the mass-disconnect attempt disconnected at most the policy's limit.
    assert sum(r["relay"].values()) == meters
    assert r["relay"].get("disconnected", 0) <= f.campaign.service.policy.operator_limit
