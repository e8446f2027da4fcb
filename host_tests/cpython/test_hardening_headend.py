"""Regression tests of the security review's head-end defects (issue 12, part A): bad values
from one meter never stop the head end for the others, head-end state that guards against
replay survives a restart, group keys follow membership, decommissions end in revocation,
and acknowledged readings are durable."""

from __future__ import annotations

from pathlib import Path

from ami import crypto
from ami.commands import envelope as E
from ami.link import frame, messages
from ami.meter import Config, Meter
from ami.ports.entropy import DeterministicEntropy
from ami.ports.metrology import SimMetrology
from amitools.headend import HeadEnd
from amitools.headend.node import DECOMMISSION_TIMEOUT_MS, FLUSH_MS
from amitools.headend.registry import Registry
from amitools.office.provision import provision

T0 = 1_767_225_600_000
GID = b"GRP\x00\x00\x00\x00\x07"


class Net:
    """A head end and its meters wired by hand: every downlink reaches every meter (each
    refuses what is not for it), every uplink the head end."""

    def __init__(self, tmp_path: Path, n: int = 2) -> None:
        self.prov = provision(n, T0 // 1000, seed=21)
        self.path = tmp_path / "he.db"
        self.he = self._headend()
        self.meters = [
            Meter(k.storage(), k.secret, DeterministicEntropy(b"m%d" % i), SimMetrology(b"m"),
                  Config(join_spread_ms=0))
            for i, k in enumerate(self.prov.devices)
        ]
        self.now = T0
        self.heard: list[bytes] = []  # every downlink the head end sent
        self.signer = self.prov.signer()
        for m in self.meters:
            self.pump(m.start(self.now) + m.tick(self.now))
        assert all(m.state == "active" for m in self.meters)

    def _headend(self) -> HeadEnd:
        reg = Registry(self.path, self.prov.kek)
        if not reg.devices():
            for d in self.prov.devices:
                reg.add_device(d.eui, d.role, d.cert, d.public, d.root_key)
            reg.commit()
        return HeadEnd(self.prov.headend, reg, DeterministicEntropy(b"he"))

    def restart(self) -> None:
        """The head end's process ends and starts again on the same database."""
        self.he.registry.db.close()
        self.he = self._headend()

    def pump(self, uplinks: list[bytes] = (), ms: int = 1) -> None:
        self.now += ms
        ups = list(uplinks)
        downs = self.he.tick(self.now)
        for _ in range(50):
            if not ups and not downs:
                return
            for up in ups:
                downs += self.he.receive(up, self.now)[1]
            ups = []
            downs += self.he.tick(self.now)
            self.heard += downs
            for d in downs:
                for m in self.meters:
                    ups += m.receive(d, self.now)[1]
            downs = []
        raise AssertionError("no quiet")

    def sign(self, command: int, kind: int, target: bytes, params: tuple = ()) -> bytes:
        now = self.now // 1000
        return self.signer.issue(command, kind, target, now - 60, now + 3600, params)

    def uplink(self, m: Meter, plaintext: bytes, fcnt: int) -> bytes:
        s = self.he.devices[m.eui].session
        return frame.seal(s.k_up, frame.DATA, m.eui, self.he.address, frame.KEY_SESSION,
                          s.key_gen, fcnt, plaintext)


def _limit(net: Net) -> bytes:
    return net.sign(E.LOAD_LIMIT, E.TARGET_GROUP, GID, (5000, 300, E.RESTORE_AUTO))


def _executed(m: Meter, env: bytes) -> bool:
    tag = crypto.sha256(env)[:8]
    return any(g == tag and v == "ok" for _t, g, _c, v in m.commands.log)


def test_a_reading_above_2_63_is_stored_faithfully_and_blocks_nobody(tmp_path: Path) -> None:
    """Defect 1: a legal u64 energy >= 2^63 is stored as sent; other meters' readings are
    stored and acknowledged in the same and later flushes."""
    net = Net(tmp_path)
    a, b = net.meters
    big = (1 << 64) - 1
    net.he.receive(net.uplink(a, messages.encode_readings([(7000, 1, big)]), 1000), net.now)
    net.pump(b.tick(net.now + 900_000), ms=900_000)
    net.pump(ms=FLUSH_MS)
    assert net.he.registry.readings(a.eui)[-1] == (7000, 1, big)
    assert net.he.registry.readings(b.eui) and len(b.queue) == 0  # stored and acknowledged
    net.pump(b.tick(net.now + 900_000), ms=900_000)
    net.pump(ms=FLUSH_MS)
    assert len(net.he.registry.readings(b.eui)) == 2 and len(b.queue) == 0


def test_a_status_floor_at_2_32_minus_1_means_rejoin_not_an_exception(tmp_path: Path) -> None:
    """Defect 2: a STATUS whose floor leaves no downlink counter drops that device's session
    (it must rejoin); the head end goes on for everyone else."""
    net = Net(tmp_path)
    a, b = net.meters
    reason, out = net.he.receive(net.uplink(a, messages.encode_status(1, 0xFFFFFFFF), 1000),
                                 net.now)
    assert reason is None and out == []
    assert net.he.devices[a.eui].session is None
    assert net.he.stats["counter_exhausted"] == 1
    net.he.get(a.eui, messages.REG_INTERVAL)  # nothing to seal it under: dropped, no raise
    rid = net.he.get(b.eui, messages.REG_INTERVAL)
    net.pump()
    assert net.he.responses[(b.eui, rid)][0] == messages.ST_OK


def test_replay_guards_survive_a_head_end_restart(tmp_path: Path) -> None:
    """Defect 6: uplink windows, outstanding commands, group keys and request ids are in
    the database: an uplink heard before the restart is refused after it, and a late
    command result is still taken."""
    net = Net(tmp_path)
    a, b = net.meters
    net.now += 900_000
    up = a.tick(net.now)[0]  # a reading
    assert net.he.receive(up, net.now)[0] is None
    net.pump(ms=FLUSH_MS)
    env = net.sign(E.LOAD_LIMIT, E.TARGET_DEVICE, a.eui, (0, 0, E.RESTORE_AUTO))
    net.he.send_command(a.eui, env)
    (down,) = net.he.tick(net.now)  # sent, its answer lost with the restart
    net.he.add_to_group(GID, b.eui)
    net.pump()
    rid = net.he.get(b.eui, messages.REG_INTERVAL)
    net.pump()
    net.restart()
    assert net.he.receive(up, net.now)[0] == "replay"
    ups = a.receive(down, net.now)[1]
    for u in ups:
        net.he.receive(u, net.now)
    assert net.he.command_results[(a.eui, E.decode(env).counter)][1] == 0
    assert net.he.groups[GID].members == {b.eui}
    assert net.he.get(b.eui, messages.REG_INTERVAL) != rid


def test_group_broadcasts_go_on_after_a_head_end_restart(tmp_path: Path) -> None:
    """Defect 7 (head end side): the group's key, generation and frame counter are durable,
    so the members accept broadcasts after a restart."""
    net = Net(tmp_path)
    for m in net.meters:
        net.he.add_to_group(GID, m.eui)
    net.pump()
    net.he.broadcast(GID, _limit(net))
    net.pump()
    net.restart()
    env = _limit(net)
    net.he.broadcast(GID, env)
    net.pump()
    assert all(_executed(m, env) for m in net.meters)


def test_a_group_join_carries_the_replay_floors(tmp_path: Path) -> None:
    """Defect 4 (head end side): a member that joins later gets the group's next frame
    counter and last command counter, so a recorded broadcast does not act on it."""
    net = Net(tmp_path)
    a, b = net.meters
    net.he.add_to_group(GID, a.eui)
    net.pump()
    env = _limit(net)
    net.he.broadcast(GID, env)
    (recorded,) = net.he.tick(net.now)
    net.pump([], 0)
    assert a.receive(recorded, net.now)[0] is None and _executed(a, env)
    net.he.add_to_group(GID, b.eui)
    net.pump()
    assert b.receive(recorded, net.now) == ("replay", [])
    assert not _executed(b, env)


def test_a_decommission_without_result_times_out_into_revocation(tmp_path: Path) -> None:
    """Defect 8: the result never arrives (here: the meter never hears the command); the
    pending decommission survives a restart and revokes the identity at its deadline."""
    net = Net(tmp_path)
    a, _b = net.meters
    net.he.decommission(a.eui, net.sign)
    net.he.tick(net.now)  # lost on the air
    net.restart()
    assert not net.he.devices[a.eui].revoked
    net.he.tick(net.now + DECOMMISSION_TIMEOUT_MS + 1)
    assert net.he.devices[a.eui].revoked and net.he.stats["decommission_timeout"] == 1
    assert net.he.registry.devices()[0].revoked or net.he.registry.devices()[1].revoked


def test_revocation_rotates_the_group_keys_it_held(tmp_path: Path) -> None:
    """Defect 9: a revoked meter leaves its groups, whose key changes for the others; a
    broadcast under the new key still reaches the remaining member."""
    net = Net(tmp_path)
    a, b = net.meters
    for m in net.meters:
        net.he.add_to_group(GID, m.eui)
    net.pump()
    g = net.he.groups[GID]
    old_key, old_gen = g.key, g.key_gen
    net.he.revoke(a.eui)
    net.pump()
    assert a.eui not in g.members and g.key != old_key and g.key_gen != old_gen
    assert b.groups.current(GID) == (g.key_gen, g.key)
    assert a.groups.current(GID) == (old_gen, old_key)
    env = _limit(net)
    net.he.broadcast(GID, env)
    net.pump()
    assert _executed(b, env) and not _executed(a, env)


def test_acknowledged_readings_are_durable_across_a_power_cut(tmp_path: Path) -> None:
    """A reading is acknowledged only after a commit that survives the host's power cut:
    the registry runs WAL with synchronous=FULL."""
    reg = Registry(tmp_path / "r.db", bytes(16))
    assert reg.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert reg.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
