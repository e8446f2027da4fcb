"""Key lifecycle end to end on the virtual radio (docs/protocol.md section 13): session
rekey, root, group and signer rotation, ordered and compromise rejoin, decommission and
tamper, with in-process CPython meters and with MicroPython unix-port meters."""

from __future__ import annotations

from pathlib import Path

import pytest
from ami.commands import envelope as E
from amitools.office.signer import Signer
from amitools.scenarios.campaign import GROUP_ALL
from amitools.sim.fleet import DemoOptions, Fleet
from amitools.sim.radio import PERFECT

MIN_MS = 60_000


@pytest.fixture(params=["cpython", "micropython"])
def fleet(request, tmp_path: Path):
    opts = DemoOptions(meters=2, micropython=2 if request.param == "micropython" else 0,
                       loss=0.0, hours=2, attacks=False)
    f = Fleet(opts, tmp_path)
    for m in f.meters:
        f.medium.set_link(m, PERFECT)
    f.run_joins()
    assert f.joined() == 2
    yield f
    f.close()


def run(f: Fleet, ms: int) -> None:
    f.medium.run(f.medium.now + ms)


def signer_for(f: Fleet, signer: Signer | None = None):
    """Sign with `signer`, by default the provisioned one (one counter store per fleet, as
    the signing service keeps counters per target whatever key signs)."""
    if signer is None:
        if not hasattr(f, "test_signer"):
            f.test_signer = f.prov.signer()
        signer = f.test_signer

    def sign(command: int, kind: int, target: bytes, params: tuple) -> bytes:
        now = f.medium.now // 1000
        return signer.issue(command, kind, target, now - 60, now + 3600, params)
    return sign


def send(f: Fleet) -> None:
    """A minute for what the head end sent (it transmits by itself) and the answers."""
    run(f, MIN_MS)


def info(f: Fleet, eui: bytes) -> dict:
    return f.meters[eui].node.info()


def stats(f: Fleet, eui: bytes) -> dict:
    return info(f, eui)["stats"]


def result(f: Fleet, eui: bytes, env: bytes) -> tuple[int, int, int, int]:
    return f.headend.command_results[(eui, E.decode(env).counter)]


def test_session_rekey_without_rejoin(fleet: Fleet) -> None:
    f = fleet
    eui = next(iter(f.meters))
    dev = f.headend.devices[eui]
    old_gen = dev.session.key_gen
    joins = stats(f, eui).get("joined", 0)
    env = f.headend.rekey(eui, signer_for(f))
    send(f)
    assert result(f, eui, env)[1] == 0  # executed
    assert dev.session.key_gen != old_gen and dev.rekey is None
    run(f, 2 * 3_600_000)  # readings flow under the new keys, acknowledged
    f.headend.flush()
    st = stats(f, eui)
    assert st.get("rekeyed") == 1 and st.get("joined", 0) == joins  # no rejoin needed
    seq, queued = info(f, eui)["next_seq"], info(f, eui)["queue"]
    assert queued <= 1 and f.registry.count_below(eui, seq) >= seq - 1
    assert dev.previous is None  # the device's first uplink under the new keys retired it


def test_root_rotation_confirmed_by_a_join(fleet: Fleet) -> None:
    f = fleet
    eui = next(iter(f.meters))
    dev = f.headend.devices[eui]
    old_root = dev.root_key
    env = f.headend.rotate_root(eui, signer_for(f))
    send(f)
    assert result(f, eui, env)[1] == 0
    run(f, MIN_MS)  # the device rejoins under the new root (make-before-break)
    assert dev.root_gen == 2 and dev.root_key != old_root and dev.pending_root is None
    assert f.headend.stats["root_rotated"] == 1
    row = next(r for r in f.registry.devices() if r.eui == eui)
    assert row.root_gen == 2 and row.pending_root is None and row.root_key == dev.root_key
    # After a reboot the device still joins, under the new root (the old one is gone).
    f.reboot(eui)
    run(f, MIN_MS)  # its STATUS tells the head end the new receive floor
    joins = f.headend.joins
    f.headend.order_rejoin(eui, signer_for(f))
    send(f)
    run(f, 5 * MIN_MS)
    assert f.headend.joins == joins + 1 and f.headend.stats["root_rotated"] == 1


def test_group_key_rotation_make_before_break(fleet: Fleet) -> None:
    f = fleet
    sign = signer_for(f)
    for eui in f.meters:
        f.headend.add_to_group(GROUP_ALL, eui)
    send(f)
    g = f.headend.groups[GROUP_ALL]
    assert f.headend.rotate_group_key(GROUP_ALL, sign) == 2
    assert g.rotation is not None and g.key_gen == 1
    send(f)
    assert g.rotation is None and g.key_gen == 2  # every member confirmed: switched
    env = sign(E.LOAD_LIMIT, E.TARGET_GROUP, GROUP_ALL, (5_000, 300, E.RESTORE_AUTO))
    f.headend.broadcast(GROUP_ALL, env)
    send(f)
    for eui in f.meters:
        assert any(v == "ok" for _t, _g, c, v in info(f, eui)["commands"] if c == E.LOAD_LIMIT)


def test_signer_rotation_new_anchor_signed_by_the_old(fleet: Fleet) -> None:
    f = fleet
    old = f.prov.signer()
    new = Signer.generate(f.prov.hsm, 2, counters=old.counters)
    from ami.identity import compress_point

    grace = 600
    for eui in f.meters:
        env = signer_for(f, old)(E.KEY_CHANGE, E.TARGET_DEVICE, eui,
                                 (E.KC_SIGNER, 2, 1, grace, compress_point(new.public_key)))
        f.headend.send_command(eui, env)
    send(f)
    eui = next(iter(f.meters))
    env = signer_for(f, new)(E.REJOIN, E.TARGET_DEVICE, eui, (0,))
    f.headend.send_command(eui, env)
    send(f)
    assert result(f, eui, env)[1] == 0  # the new signer is trusted
    env = signer_for(f, old)(E.LOAD_LIMIT, E.TARGET_DEVICE, eui, (0, 0, E.RESTORE_AUTO))
    f.headend.send_command(eui, env)
    send(f)
    assert result(f, eui, env)[1] == 0  # the old one still, within its grace
    run(f, grace * 1000)
    env = signer_for(f, old)(E.LOAD_LIMIT, E.TARGET_DEVICE, eui, (0, 0, E.RESTORE_AUTO))
    f.headend.send_command(eui, env)
    send(f)
    assert result(f, eui, env)[3] == 16 + 2  # unknown_signer: the grace is over


def test_compromise_rejoin_replaces_every_key(fleet: Fleet) -> None:
    f = fleet
    eui = next(iter(f.meters))
    dev = f.headend.devices[eui]
    before = dev.session.k_up
    f.headend.order_rejoin(eui, signer_for(f), compromise=True)
    send(f)
    run(f, 5 * MIN_MS)
    assert dev.session is not None and dev.session.k_up != before
    assert info(f, eui)["events"].get("rejoin") == 1


def test_decommission_erases_secrets_keeps_the_log(fleet: Fleet) -> None:
    f = fleet
    eui = next(iter(f.meters))
    env = f.headend.decommission(eui, signer_for(f))
    send(f)
    assert result(f, eui, env)[1] == 0
    dev = f.headend.devices[eui]
    assert dev.revoked and dev.session is None
    st = info(f, eui)
    assert st["stats"].get("zeroized") == 1 and st["events"].get("zeroized") == 1
    f.reboot(eui)  # still refuses after a power cycle; the log survives
    run(f, 10 * MIN_MS)
    st = info(f, eui)
    assert st["stats"] == {"zeroized": 1} and st["events"].get("zeroized") == 1  # at boot
    assert f.meters[eui].node.next_wakeup() is None  # no join attempt: it waits for provisioning


def test_tamper_erases_secrets(fleet: Fleet) -> None:
    f = fleet
    eui = next(iter(f.meters))
    f.meters[eui].node.tamper(f.medium.now)
    assert info(f, eui)["events"].get("zeroized") == 1
    f.reboot(eui)
    run(f, 10 * MIN_MS)
    assert info(f, eui)["events"].get("zeroized") == 1


def test_an_answer_to_a_copied_envelope_is_kept_apart(fleet: Fleet) -> None:
    """A COMMAND_RESULT carries only the envelope's counter and command. One meter's envelope
    copied to another is refused there (wrong_target) under a counter that may be the
    other's own: the head end takes results only for commands it sent to that meter."""
    f = fleet
    a, b = list(f.meters)
    sign = signer_for(f)
    env_b = f.headend.rekey(b, sign)
    send(f)
    assert result(f, b, env_b)[:2] == (E.KEY_CHANGE, 0)
    env_a = sign(E.DISCONNECT, E.TARGET_DEVICE, a, ())
    assert E.decode(env_a).counter == E.decode(env_b).counter  # per-target counters collide
    f.headend.send_command(b, env_a)
    send(f)
    assert result(f, b, env_b)[:2] == (E.KEY_CHANGE, 0)  # not overwritten by the refusal
    assert f.headend.stats["stray_result"] == 1
    assert (a, E.decode(env_a).counter) not in f.headend.command_results
