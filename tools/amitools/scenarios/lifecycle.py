"""The key-lifecycle part of `ami demo` (docs/protocol.md section 13), interleaved with the
command campaign: a session rekey without rejoin, a root key rotation confirmed by a join,
a group key rotation before the broadcast load limit, a signer rotation (the new trust
anchor signed by the old key), an ordered and a compromise rejoin, the key theft scenario
with revocation, a decommission and a tamper zeroization.

Key changes are signed by the head end's key-management role of the HSM (the signer key
itself, not an operator through the signing service, whose policy refuses them).
"""

from __future__ import annotations

from typing import Any

from ami.commands import envelope as E
from ami.identity import compress_point
from ami.ports.entropy import DeterministicEntropy

from amitools.office.signer import Signer
from amitools.scenarios.campaign import GROUP_ALL, MINUTE_MS, CommandCampaign
from amitools.scenarios.keytheft import KeyTheft
from amitools.scenarios.stage import Handle, Stage

NEW_SIGNER_KEY_ID = 2
SIGNER_GRACE_S = 86_400  # the old signer stays trusted a day after the new one arrives


class LifecycleCampaign:
    """Schedules key-lifecycle operations on a stage next to its CommandCampaign."""

    def __init__(self, stage: Stage, campaign: CommandCampaign) -> None:
        self.stage = stage
        self.he = stage.headend
        self.campaign = campaign
        self.signer: Signer = campaign.signer
        meters = stage.live_meters()
        busy = {campaign.victim.address, campaign.other.address}
        spare = [m for m in meters if m.address not in busy]
        in_process = {id(m) for m in stage.in_process}
        local = [m for m in spare[1:] if id(m) in in_process]
        # It needs two meters the command campaign leaves alone, one of them in-process
        # (the thief images its flash); smaller fleets run the command campaign only.
        self.enabled = bool(local)
        self.first = spare[0] if spare else None  # a unix-port meter when there is one
        self.stolen = local[-1] if local else None
        self.theft = KeyTheft(stage, self.stolen, campaign.other)
        self.envelopes: dict[str, tuple[bytes, bytes]] = {}  # operation -> (meter, envelope)
        self.signer_rotation: dict[bytes, bytes] = {}  # meter -> its latest envelope
        self.signer_params: tuple = ()
        self.new_signer: Signer | None = None
        self.group_members = 0
        self.group_stragglers = 0
        self.retries = 0

    def sign(self, command: int, kind: int, target: bytes, params: tuple) -> bytes:
        now = self.stage.now() // 1000
        return self.signer.issue(command, kind, target, now - 60, now + 3600, params)

    def script(self, start: int) -> list[tuple[int, Any]]:
        """(virtual time, action) pairs; start is the command campaign's."""
        if not self.enabled:
            return []
        m = MINUTE_MS
        return [
            (start + 5 * m, self.rekey),
            (start + 9 * m, lambda: self._again("session_rekey", self.rekey)),
            (start + 15 * m, self.rotate_root),
            (start + 19 * m, lambda: self._again("root_rotation", self.rotate_root)),
            (start + 22 * m, lambda: self._again("root_rotation", self.rotate_root)),
            (start + 25 * m, self.rotate_signer),
            (start + 29 * m, self.resend_signer_rotation),
            # The signing service switches before the group key rotation: a retiring
            # signer authorises no key change (docs/protocol.md section 13.2).
            (start + 31 * m, self.switch_signer),
            (start + 33 * m, self.rotate_group_key),
            (start + 39 * m, self.finish_group_rotation),
            (start + 45 * m, self.ordered_rejoin),
            (start + 55 * m, self.compromise_rejoin),
            (start + 65 * m, self.steal),
            (start + 66 * m, self.theft.attack_others),
            (start + 67 * m, self.order_victim_rejoin),
            (start + 75 * m, self.revoke_stolen),
            (start + 76 * m, self.theft.after_revocation),
            (start + 105 * m, self.decommission),
            (start + 109 * m, lambda: self._again("decommission", self.decommission)),
            (start + 113 * m, lambda: self._again("decommission", self.decommission)),
            (start + 115 * m, self.tamper),
        ]

    def _again(self, name: str, operation) -> None:
        """A head end that saw no COMMAND_RESULT (the command or its answer was lost on the
        air) issues the operation again, with a new envelope: a new counter, new keys."""
        if name in self.envelopes and self._executed(name) is None:
            self.retries += 1
            operation()

    def _executed(self, name: str) -> bool | None:
        """True/False: the meter executed/refused it; None: no result (yet)."""
        if name not in self.envelopes:
            return None
        eui, env = self.envelopes[name]
        r = self.he.command_results.get((eui, E.decode(env).counter))
        return None if r is None else r[1] == 0

    def _op(self, name: str, meter: Handle, env: bytes) -> None:
        self.envelopes[name] = (meter.address, env)

    def _live(self, meter: Handle) -> bool:
        return self.he.devices[meter.address].session is not None

    def rekey(self) -> None:
        if self._live(self.first):
            self._op("session_rekey", self.first, self.he.rekey(self.first.address, self.sign))

    def rotate_root(self) -> None:
        self._op("root_rotation", self.first, self.he.rotate_root(self.first.address, self.sign))

    def rotate_signer(self) -> None:
        """Every meter gets the new signer's key in a KEY_CHANGE signed by the old key."""
        self.new_signer = Signer.generate(
            self.stage.prov.hsm, NEW_SIGNER_KEY_ID, self.signer.counters,
            random_bytes=DeterministicEntropy(b"signer2/%d" % self.stage.seed).random_bytes,
        )
        self.signer_params = (E.KC_SIGNER, NEW_SIGNER_KEY_ID, 1, SIGNER_GRACE_S,
                              compress_point(self.new_signer.public_key))
        self._send_signer_rotation([m.address for m in self.stage.meters
                                    if self.he.devices[m.address].session is not None])

    def resend_signer_rotation(self) -> None:
        """Meters whose answer never came (the command or the answer lost on the air) get
        the new signer again, in a new envelope, before the signing service switches."""
        results = self.he.command_results
        silent = [eui for eui, env in self.signer_rotation.items()
                  if results.get((eui, E.decode(env).counter)) is None
                  and self.he.devices[eui].session is not None]
        self.retries += len(silent)
        self._send_signer_rotation(silent)

    def _send_signer_rotation(self, meters: list[bytes]) -> None:
        for eui in meters:
            env = self.sign(E.KEY_CHANGE, E.TARGET_DEVICE, eui, self.signer_params)
            self.signer_rotation[eui] = env
            self.he.send_command(eui, env)

    def switch_signer(self) -> None:
        """Make-before-break: the signing service moves to the new key once meters hold it
        (the old key stays trusted for its grace period, so stragglers still obey)."""
        if self.new_signer is not None:
            self.signer = self.new_signer
            self.campaign.signer = self.campaign.service.signer = self.new_signer

    def rotate_group_key(self) -> None:
        if GROUP_ALL in self.he.groups:
            self.group_members = self.he.rotate_group_key(GROUP_ALL, self.sign)

    def finish_group_rotation(self) -> None:
        """Before the broadcast: the group moves to the new key; a member that did not
        confirm in time (its answer lost on the air) leaves the group."""
        if GROUP_ALL in self.he.groups:
            self.group_stragglers = self.he.finish_group_rotation(GROUP_ALL)

    def ordered_rejoin(self) -> None:
        self._op("ordered_rejoin", self.stolen, self.he.order_rejoin(self.stolen.address,
                                                                    self.sign))

    def compromise_rejoin(self) -> None:
        self._op("compromise_rejoin", self.stolen, self.he.order_rejoin(
            self.stolen.address, self.sign, compromise=True))

    def steal(self) -> None:
        self.theft.steal()

    def order_victim_rejoin(self) -> None:
        """The other meter rejoins (so the thief can try to answer as the head end)."""
        target = self.campaign.other
        self._op("victim_rejoin", target, self.he.order_rejoin(target.address, self.sign))

    def revoke_stolen(self) -> None:
        self.he.revoke(self.stolen.address)

    def decommission(self) -> None:
        if self._live(self.first):
            self._op("decommission", self.first, self.he.decommission(self.first.address,
                                                                     self.sign))

    def tamper(self) -> None:
        self.stolen.node.tamper(self.stage.now())

    def retired(self) -> set[bytes]:
        """Meters zeroized on purpose during the run."""
        if not self.enabled:
            return set()
        out = {self.stolen.address}
        if "decommission" in self.envelopes:
            out.add(self.first.address)
        return out

    def attack_scores(self) -> dict[str, dict]:
        """The key theft's attacks (its own score replaces the attacker's raw count)."""
        return {"key_theft": self.theft.report()} if self.enabled else {}

    def report(self) -> dict[str, Any] | None:
        """The lifecycle section of the demo report: what each operation achieved, from
        the head end's records and the meters."""
        if not self.enabled:
            return None
        results = self.he.command_results
        executed = self._executed
        signer_ok = sum(
            1 for eui, env in self.signer_rotation.items()
            if (r := results.get((eui, E.decode(env).counter))) and r[1] == 0
        )
        g = self.he.groups.get(GROUP_ALL)
        first = self.he.devices[self.first.address]
        return {
            "session_rekey": {"executed": executed("session_rekey"),
                              "rekeyed": self.he.stats["rekeyed"]},
            "root_rotation": {"executed": executed("root_rotation"),
                              "confirmed_by_join": self.he.stats["root_rotated"],
                              "root_generation": first.root_gen},
            "group_key_rotation": {"members": self.group_members,
                                   "left_unconfirmed": self.group_stragglers,
                                   "switched": self.he.stats["group_key_rotated"],
                                   "key_generation": g.key_gen if g else None},
            "signer_rotation": {"meters": len(self.signer_rotation), "confirmed": signer_ok,
                                "signing_key_now": self.signer.key_id},
            "rejoin": {"ordered": executed("ordered_rejoin"),
                       "compromise": executed("compromise_rejoin")},
            "decommission": {"executed": executed("decommission"),
                             "revoked": first.revoked,
                             "zeroized": zeroized(self.first)},
            "tamper": {"zeroized": zeroized(self.stolen)},
            "revocation": {"revoked": self.he.devices[self.stolen.address].revoked},
            "reissued_after_no_result": self.retries,
        }


def zeroized(meter: Handle) -> bool:
    """Whether the meter logged a zeroization of its secrets."""
    return meter.node.info()["events"].get("zeroized", 0) > 0
