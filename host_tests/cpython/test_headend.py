"""Head-end join server and command API: the rejections the secure link names, one by one."""

from __future__ import annotations

from ami.link import frame, messages
from ami.meter import Config, Meter
from ami.ports.entropy import DeterministicEntropy
from ami.ports.metrology import SimMetrology
from amitools.headend import HeadEnd
from amitools.office.provision import provision
from amitools.sim.attacker import with_fcs
from amitools.sim.radio import PERFECT, Medium

T0 = 1_767_225_600_000


def setup(validity_s: int = 15 * 365 * 86400):
    prov = provision(1, T0 // 1000, seed=11, validity_s=validity_s)
    kit = prov.devices[0]
    he = HeadEnd(prov.headend, prov.registry(), DeterministicEntropy(b"he"))
    m = Meter(kit.storage(), kit.secret, DeterministicEntropy(b"m"), SimMetrology(b"m"),
              Config(join_spread_ms=0))
    return he, m


def exchange(he: HeadEnd, m: Meter, now: int, tamper=None):
    """Run a join by hand; tamper(confirm) may alter the confirm. Returns the last reason."""
    m.start(now)
    (req,) = m.tick(now)
    reason, (resp,) = he.receive(req, now)
    assert reason is None
    reason, (confirm,) = m.receive(resp, now)
    assert reason is None
    if tamper:
        confirm = tamper(confirm)
    reason, out = he.receive(confirm, now)
    if reason is None:
        (start,) = out
        assert m.receive(start, now)[0] is None
    return reason


def test_join_completes() -> None:
    he, m = setup()
    assert exchange(he, m, T0) is None
    assert m.state == "active" and he.devices[m.eui].session is not None


def test_expired_certificate_rejected() -> None:
    he, m = setup(validity_s=60)
    assert exchange(he, m, T0 + 86400_000) == "expired_certificate"
    assert he.devices[m.eui].session is None


def test_failed_key_confirmation_rejected() -> None:
    def flip_mac(confirm: bytes) -> bytes:
        body = bytearray(confirm[:-2])
        body[-1] ^= 0x01  # the last byte of the 16-byte mac
        return with_fcs(bytes(body))

    he, m = setup()
    assert exchange(he, m, T0, tamper=flip_mac) == "key_confirmation"
    dev = he.devices[m.eui]
    assert dev.session is None and dev.pending is not None  # the genuine confirm may follow


def test_join_requests_rate_limited_per_device() -> None:
    he, m = setup()
    reasons = []
    now = T0
    for _ in range(6):
        m.state = "idle"  # let the meter send a fresh request each time
        (req,) = m._on_join()
        reasons.append(he.receive(req, now)[0])
        now += 10_000
    assert reasons[:4] == [None] * 4 and reasons[4:] == ["rate_limited"] * 2
    # Outside the window the device may join again.
    m.state = "idle"
    (req,) = m._on_join()
    assert he.receive(req, now + 300_000)[0] is None


def test_get_and_set_through_the_command_api() -> None:
    he, m = setup()
    assert exchange(he, m, T0) is None
    rid = he.get(m.eui, messages.REG_INTERVAL)
    (down,) = he.tick(T0 + 1)
    reason, (up,) = m.receive(down, T0 + 1)
    assert reason is None and he.receive(up, T0 + 2)[0] is None
    assert he.responses[(m.eui, rid)] == (messages.ST_OK, messages.REG_INTERVAL, 900)
    rid = he.set(m.eui, messages.REG_INTERVAL, 300)
    (down,) = he.tick(T0 + 3)
    reason, (up,) = m.receive(down, T0 + 3)
    assert he.receive(up, T0 + 4)[0] is None
    assert he.responses[(m.eui, rid)][0] == messages.ST_OK and m.cfg.interval_s == 300
    assert frame.decode(down).down


def test_a_served_head_end_transmits_by_itself() -> None:
    """On its medium the head end sends what an API call queued without its caller waking
    it, and registers a group member with the medium itself."""
    he, m = setup()
    medium = Medium(1, PERFECT, he.address)
    medium.attach(he, start_ms=T0)
    medium.attach(m, start_ms=T0)
    he.serve(medium)
    medium.run(T0 + 10_000)
    assert he.devices[m.eui].session is not None
    rid = he.get(m.eui, messages.REG_INTERVAL)
    medium.run(medium.now + 1_000)
    assert he.responses[(m.eui, rid)] == (messages.ST_OK, messages.REG_INTERVAL, 900)
    group = bytes.fromhex("47524f5550000001")
    he.add_to_group(group, m.eui)
    assert medium.group(group) == [m.eui]
    medium.run(medium.now + 1_000)
    assert group in m.groups.ids()  # its key went down unprompted


def test_time_windowed_disconnect_needs_its_notice() -> None:
    """A meter whose policy asks for notice refuses a bare disconnect, then executes one that
    a signed NOTIFY announced (matching hash, within the deadline)."""
    from ami.commands import envelope as E

    prov = provision(1, T0 // 1000, seed=12)
    kit = prov.devices[0]
    he = HeadEnd(prov.headend, prov.registry(), DeterministicEntropy(b"he"))
    m = Meter(kit.storage(), kit.secret, DeterministicEntropy(b"m"), SimMetrology(b"m"),
              Config(join_spread_ms=0, notice_required=(E.DISCONNECT,)))
    assert exchange(he, m, T0) is None
    signer = prov.signer()
    now = T0 // 1000

    def deliver(env: bytes, t: int) -> tuple[int, int]:
        he.send_command(m.eui, env)
        (down,) = he.tick(t)
        _reason, ups = m.receive(down, t)  # the result, and the alarm of a refusal
        for up in ups:
            reason, replies = he.receive(up, t)
            assert reason is None
            for reply in replies:  # acknowledgements of alarms
                assert m.receive(reply, t)[0] is None
        counter = E.decode(env).counter
        command, status, state, code = he.command_results[(m.eui, counter)]
        return status, code

    bare = signer.issue(E.DISCONNECT, E.TARGET_DEVICE, m.eui, now - 60, now + 3600)
    assert deliver(bare, T0 + 10) == (1, 16 + 8)  # refused: window_violation
    assert m.relay.state == 0  # still connected
    notify, action = signer.issue_with_notice(
        E.DISCONNECT, E.TARGET_DEVICE, m.eui, now - 60, now + 3600
    )
    assert deliver(notify, T0 + 20)[0] == 0
    assert deliver(action, T0 + 30) == (0, 0)  # executed
    assert m.relay.state == 1  # disconnected


def test_revoked_device_cannot_join_or_send() -> None:
    he, m = setup()
    assert exchange(he, m, T0) is None
    m.tick(T0 + 900_000)  # a reading, sent under the session
    he.revoke(m.eui)
    assert he.devices[m.eui].session is None
    (up,) = m.tick(T0 + 1_800_000)
    assert he.receive(up, T0 + 1_800_000)[0] == "revoked"
    m.state = "idle"
    (req,) = m._on_join()
    assert he.receive(req, T0 + 1_900_000)[0] == "revoked"
    assert he.registry.devices()[0].revoked  # durable in the registry


def test_board_key_stores_open_only_on_their_chip(tmp_path) -> None:
    """`ami provision --chip-id`: the key store is sealed under the secret the board derives
    from its machine.unique_id() and secret.bin (ami.ports.secret), nothing else opens it."""
    import pytest
    from ami.ports.secret import device_secret
    from ami.ports.storage import FileStorage
    from amitools.cli import main

    chips = [bytes.fromhex("e66038b713a1"), bytes.fromhex("e66038b713a2")]
    out = tmp_path / "prov"
    assert main(["provision", "--meters", "2", "--seed", "4", "--out", str(out),
                 "--chip-id", ",".join(c.hex() for c in chips)]) == 0
    assert main(["provision", "--meters", "2", "--out", str(out), "--chip-id", "aa"]) == 2
    for i, chip in enumerate(chips):
        kit = provision(2, T0 // 1000, seed=4, chip_ids=chips).devices[i]
        dev = out / "devices" / kit.eui.hex()
        assert (dev / "chip_id.hex").read_text().strip() == chip.hex()
        secret = (dev / "secret.bin").read_bytes()
        on_chip = Meter(FileStorage(str(dev)), device_secret(secret, chip),
                        DeterministicEntropy(b"e"), SimMetrology(b"m"), Config())
        assert on_chip.keys is not None and on_chip.eui == kit.eui
        for wrong in (secret, device_secret(secret, chips[1 - i])):
            m = Meter(FileStorage(str(dev)), wrong, DeterministicEntropy(b"e"),
                      SimMetrology(b"m"), Config())
            assert m.keys is None and m.stats.get("keystore_corrupt") == 1
    with pytest.raises(ValueError, match="chip ids"):
        provision(1, T0 // 1000, chip_ids=[])


def test_forged_uplink_under_new_keys_does_not_end_a_rekey_grace() -> None:
    """Found by fuzzing (docs/fuzzing.md): a frame with the new key generation but a made-up
    tag used to retire the old session keys before its tag was checked, so the meter's
    uplinks in flight under the old keys were refused from then on."""
    from amitools.measure.fuzzheadend import RekeyingHeadEndTarget

    t = RekeyingHeadEndTarget()
    he, dev, now = t.he, t.dev, t.now
    new, old = dev.session, dev.previous
    assert old is not None and new.key_gen != old.key_gen

    def uplink(key: bytes, gen: int, fcnt: int) -> bytes:
        return frame.seal(key, frame.DATA, t.eui, he.address, frame.KEY_SESSION, gen, fcnt,
                          messages.encode_status(1, 0))

    assert he.receive(uplink(bytes(16), new.key_gen, 1), now)[0] == "auth"
    assert dev.previous is old
    assert he.receive(uplink(old.k_up, old.key_gen, 100_000), now)[0] is None  # in flight
    assert he.receive(uplink(new.k_up, new.key_gen, 1), now)[0] is None
    assert dev.previous is None  # an authentic uplink under the new keys retires the old
