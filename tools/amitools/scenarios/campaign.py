"""The signed-command part of `ami demo`: a remote disconnect, an arm and local restore, a
signed broadcast load limit, and the attacks on commands (copy-cat to the same and to another
meter, forged signature, expired command, replay after reboot, mass disconnect by a
compromised operator, broadcast forged with only the group key).

Commands go through the signing service (operator policy in front of the HSM-held key) and
the head end; each meter checks every command itself. An attack counts as accepted when a
meter executed its command: the meter's own `receive()` verdict, seen on the radio.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ami import crypto
from ami.commands import envelope as E
from ami.link import frame, messages
from ami.ports.entropy import DeterministicEntropy
from ami.relay import STATE_NAMES

from amitools.office.provision import new_private
from amitools.office.signer import Policy, PolicyError, SigningService
from amitools.scenarios.keytheft import FORGED_COUNTER
from amitools.scenarios.stage import Handle, Stage

GROUP_FORGERY_COUNTER = 1_000_000
GROUP_ALL = bytes.fromhex("47524f5550000001")  # "GROUP" 1: the load-control programme
ENROL_EVERY = 10  # in fleets above 50 meters, one household in ten joins the programme
MINUTE_MS = 60_000
RESEND_MS = 5 * MINUTE_MS  # an attack envelope the radio lost is sent again this often


class CommandCampaign:
    """Schedules command operations and attacks on a stage's virtual timeline."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.he = stage.headend
        self.signer = stage.prov.signer()
        self.service = SigningService(
            self.signer,
            lambda: stage.now() // 1000,
            # Small limits so the compromised account meets them within the demo.
            Policy(pbkdf2_iterations=1_000, operator_limit=5, fleet_disconnect_limit=5),
            group_size=lambda gid: len(self.he.groups[gid].members) if gid in self.he.groups
            else None,
        )
        for name in ("alice", "bob", "mallory"):
            self.service.add_operator(name, name + "-pw")
        self.tokens = {n: self.service.login(n, n + "-pw") for n in ("alice", "bob", "mallory")}
        self.broadcasts = 0
        # Envelope counters of the attacks: their answers are strays the attacks explain.
        self.attack_counters = {GROUP_FORGERY_COUNTER, FORGED_COUNTER}
        self.policy_refusals: Counter[str] = Counter()
        self.attacks: dict[str, dict[str, int]] = {}
        # (kind, meter, envelope, time first sent in seconds): attacks not yet seen by
        # their meter, sent again until they are (a lost downlink is not an attempt)
        self.expect_refused: list[tuple[str, Handle, bytes, int]] = []
        self.disconnect_env: bytes = b""
        self.arm_env: bytes = b""
        # The victim's own commands it executed when the head end sent them, and when an
        # attack first sent a copy of one: a copy of a command the radio lost is that
        # command's first delivery, not a replay.
        self.executed: set[bytes] = set()
        self.copied_at: dict[bytes, int] = {}
        meters = stage.live_meters()  # actors that joined: a lossy radio leaves stragglers
        self.victim = meters[-1]
        self.other = meters[-2] if len(meters) > 1 else meters[-1]

    # ---- scheduling ----------------------------------------------------------------------

    def script(self, start: int) -> list[tuple[int, Any]]:
        """(virtual time, action) pairs from start."""
        end = start + self.stage.hours * 3_600_000
        resends = [(t, self.resend_unseen) for t in range(start + 60 * MINUTE_MS, end, RESEND_MS)]
        return resends + [
            (start, self.setup_group),
            (start + 10 * MINUTE_MS, self.disconnect),
            (start + 20 * MINUTE_MS, self.arm),
            (start + 30 * MINUTE_MS, self.restore_locally),
            (start + 40 * MINUTE_MS, self.broadcast_load_limit),
            (start + 60 * MINUTE_MS, self.copycat),
            (start + 70 * MINUTE_MS, self.forged_signature),
            (start + 80 * MINUTE_MS, self.expired),
            (start + 84 * MINUTE_MS, self.collect),  # before the reboot clears RAM logs
            (start + 85 * MINUTE_MS, self.reboot_victim),
            (start + 90 * MINUTE_MS, self.replay_after_reboot),
            (start + 100 * MINUTE_MS, self.mass_disconnect),
            (start + 110 * MINUTE_MS, self.group_key_forgery),
            (start + 120 * MINUTE_MS, self.collect),
        ]

    def request(self, op: str, command: int, kind: int, target: bytes, params=()) -> bytes:
        token = self.tokens[op]
        if command in self.service.policy.reauth_commands:
            self.service.reauthenticate(token, op + "-pw")
        issued = self.service.request(token, command, kind, target, params)
        return issued.envelopes[-1]

    def _send(self, meter: Handle, env: bytes) -> None:
        self.he.send_command(meter.address, env)

    # ---- operations --------------------------------------------------------------------

    def setup_group(self, everyone: bool = False) -> None:
        """Enrol meters in the load-control group (all of a small fleet, one in ten of a
        large one, as real programmes enrol a share of households)."""
        euis = [m.address for m in self.stage.meters]
        if not everyone and len(euis) > 50:
            euis = euis[::ENROL_EVERY]
        for eui in euis:
            if self.he.devices[eui].session is not None:
                self.he.add_to_group(GROUP_ALL, eui)

    def disconnect(self) -> None:
        self.disconnect_env = self.request(
            "alice", E.DISCONNECT, E.TARGET_DEVICE, self.victim.address
        )
        self._send(self.victim, self.disconnect_env)

    def arm(self) -> None:
        self.arm_env = self.request(
            "alice", E.ARM_RECONNECT, E.TARGET_DEVICE, self.victim.address
        )
        self._send(self.victim, self.arm_env)

    def restore_locally(self) -> None:
        self.stage.press_button(self.victim.address)

    def broadcast_load_limit(self) -> None:
        if GROUP_ALL not in self.he.groups:  # no meter had joined to enrol
            return
        env = self.request(
            "alice", E.LOAD_LIMIT, E.TARGET_GROUP, GROUP_ALL, (2_000, 300, E.RESTORE_AUTO)
        )
        self.he.broadcast(GROUP_ALL, env)
        self.broadcasts += 1

    # ---- attacks -------------------------------------------------------------------------

    def _attack(self, kind: str, meter: Handle, env: bytes) -> None:
        """Deliver env through the head end; scored later from the meter's own verdict."""
        now_s = self.stage.now() // 1000
        self.expect_refused.append((kind, meter, env, now_s))
        self.copied_at.setdefault(env, now_s)
        self.attack_counters.add(E.decode(env).counter)
        self.attacks.setdefault(kind, {"attempted": 0, "accepted": 0})
        self._send(meter, env)

    def resend_unseen(self) -> None:
        """The attack envelopes whose meter has not seen them yet, delivered again."""
        self.collect()
        for _kind, meter, env, _sent_s in self.expect_refused:
            self._send(meter, env)

    def _score(self, kind: str, attempted: int = 0, accepted: int = 0) -> None:
        e = self.attacks.setdefault(kind, {"attempted": 0, "accepted": 0})
        e["attempted"] += attempted
        e["accepted"] += accepted

    def copycat(self) -> None:
        # The same signed disconnect again, to its meter and to another one.
        self._attack("copycat", self.victim, self.disconnect_env)
        self._attack("copycat", self.other, self.disconnect_env)

    def forged_signature(self) -> None:
        now = self.stage.now() // 1000
        body = E.encode(E.DISCONNECT, E.TARGET_DEVICE, self.other.address, 10_000, now - 60,
                        now + 3600, self.signer.key_id)
        rogue = new_private(DeterministicEntropy(b"forger"))
        self._attack("forged_signature", self.other, E.sign(body, rogue))

    def expired(self) -> None:
        now = self.stage.now() // 1000
        body = E.encode(E.DISCONNECT, E.TARGET_DEVICE, self.other.address, 10_001,
                        now - 2 * 86400, now - 86400, self.signer.key_id)
        self._attack("expired", self.other, self.signer.sign_body(body))

    def reboot_victim(self) -> None:
        self.stage.reboot(self.victim.address)

    def replay_after_reboot(self) -> None:
        """The arm the victim executed before its reboot, sent again."""
        self._attack("replay_after_reboot", self.victim, self.arm_env)

    def mass_disconnect(self) -> None:
        """A compromised operator account tries to disconnect every meter."""
        token = self.tokens["mallory"]
        self.service.reauthenticate(token, "mallory-pw")  # the stolen password works
        signed = 0
        meters = self.stage.meters
        for i in range(max(20, len(meters))):  # it keeps trying, cycling over the fleet
            m = meters[i % len(meters)]
            self._score("mass_disconnect", attempted=1)
            try:
                env = self.service.request(token, E.DISCONNECT, E.TARGET_DEVICE, m.address)
            except PolicyError as exc:
                self.policy_refusals[exc.reason] += 1
                continue
            signed += 1
            self._send(m, env.envelopes[-1])
        # Success for the attacker is getting past the policy's per-operator limit.
        self._score("mass_disconnect",
                    accepted=max(0, signed - self.service.policy.operator_limit))

    def group_key_forgery(self) -> None:
        """An attacker who extracted the group key sends a group command it signed itself."""
        g = self.he.groups.get(GROUP_ALL)
        if g is None:
            return
        now = self.stage.now() // 1000
        body = E.encode(E.DISCONNECT, E.TARGET_GROUP, GROUP_ALL, GROUP_FORGERY_COUNTER, now - 60,
                        now + 3600, self.signer.key_id)
        env = E.sign(body, new_private(DeterministicEntropy(b"group forger")))
        forged = frame.seal(g.key, frame.DATA, self.he.address, GROUP_ALL, frame.KEY_GROUP,
                            g.key_gen, g.fcnt + 1000, messages.encode_command(env), down=True,
                            group=True)
        self.stage.attacker.attempt("group_key_forgery", forged, None, self.stage.now() + 1)

    # ---- report --------------------------------------------------------------------------

    def collect(self) -> None:
        """Score the attacks sent so far from each target meter's own verdict log (a RAM
        log: collected before a reboot clears it). A command the radio lost was not tried
        yet: it stays expected (resend_unseen)."""
        for env in (self.disconnect_env, self.arm_env):
            copied = self.copied_at.get(env)
            if any(v == "ok" and (copied is None or t < copied)
                   for t, v in self._verdicts(self.victim, env)):
                self.executed.add(env)
        unseen = []
        for kind, meter, env, sent_s in self.expect_refused:
            verdicts = [v for t, v in self._verdicts(meter, env) if t >= sent_s]
            if not verdicts:
                unseen.append((kind, meter, env, sent_s))
                continue
            executions = verdicts.count("ok")
            if meter is self.victim and env in (self.disconnect_env, self.arm_env) \
                    and env not in self.executed:
                executions -= 1  # the first delivery of a command the radio had lost
            self._score(kind, attempted=1, accepted=int(executions > 0))
        self.expect_refused = unseen

    @staticmethod
    def _verdicts(meter: Handle, env: bytes) -> list[tuple[int, str]]:
        """(time, verdict) of the envelope in the meter's command log."""
        tag = crypto.sha256(env)[:8].hex()
        # [time, envelope tag hex, command, verdict]
        return [(t, v) for t, g, _cmd, v in meter.node.info()["commands"] if g == tag]

    def attack_scores(self) -> dict[str, dict[str, int]]:
        """The attacks on commands by kind: {attempted, accepted}, each from the target
        meters' own verdicts (the group-key forgery from every receiver's)."""
        self.collect()
        forged = self.stage.attacker.report().get("group_key_forgery")
        if forged:
            self.attacks["group_key_forgery"] = dict(forged)
        return self.attacks

    def report(self) -> dict[str, Any]:
        """The commands and relay sections of the demo report."""
        self.collect()
        results = self.he.command_results
        executed = sum(1 for r in results.values() if r[1] == 0)
        refused = sum(1 for r in results.values() if r[1] != 0)
        unanswered = len(self.he.outstanding.keys() - results.keys())
        to_attacks = sum(1 for _eui, counter in self.he.strays if counter in self.attack_counters)
        relay: Counter[str] = Counter()
        for m in self.stage.meters:
            state = m.node.info()["relay"]
            if state is not None:
                relay[STATE_NAMES[state]] += 1
        return {
            # Every command the head end addressed to a meter (the scenario's operations,
            # key changes and attacks; a broadcast once per member), by the answer it got.
            "commands": {"addressed": executed + refused + unanswered, "executed": executed,
                         "refused": refused, "unanswered": unanswered,
                         "broadcast_frames": self.broadcasts,
                         "refused_by_signer_policy": dict(self.policy_refusals),
                         # answers to envelopes the head end never sent to that meter: those
                         # the attacks copied or forged, and any other (a harness fault)
                         "stray_results": {"to_attack_envelopes": to_attacks,
                                           "other": len(self.he.strays) - to_attacks}},
            "relay": dict(sorted(relay.items())),
        }

