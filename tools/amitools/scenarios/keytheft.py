"""Key theft: one meter opened in a lab, everything it stores in the attacker's hands.

The attacker reads the stolen meter's whole flash and its device-unique secret, so it holds
what that meter holds: the key store (root key, device private key and certificate, trust
anchors), the session keys and the group keys. With that it tries to read another meter's
traffic, to command another meter, to impersonate the head end in another meter's join, to
join as another meter, and (after the head end revokes the stolen identity) to come back
as the stolen meter itself. A second attacker holds only a copy of the key store file,
without the device secret. Radio attempts go through the Attacker (scored by the target
node's own verdict); offline attempts (decryption, opening the file) are scored here.
"""

from __future__ import annotations

from collections import Counter

from ami import crypto
from ami import identity as ident
from ami import keystore as K
from ami.commands import envelope as E
from ami.keyschedule import derive_storage_key, mic_key
from ami.link import frame, join, messages
from ami.link.groups import Groups
from ami.meter import SESSION_RECORD, session_keys
from ami.ports.entropy import DeterministicEntropy
from ami.ports.storage import MemoryStorage
from ami.store.records import RecordStore

from amitools.office.provision import SIGNER_KEY_ID, new_private
from amitools.scenarios.stage import Handle, Stage

KIND = "key_theft"
FORGED_COUNTER = 0xFFFFFF00  # the envelope counter of the thief's forged commands


class Loot:
    """What the attacker extracts from the stolen meter with its device secret."""

    def __init__(self, blobs: dict[str, bytes], secret: bytes) -> None:
        self.blobs = blobs
        records = RecordStore(MemoryStorage(dict(blobs)), derive_storage_key(secret),
                              DeterministicEntropy(b"thief"))
        ident_, keys, _ = K.decode(records.read(K.RECORD))
        self.eui = ident_[K.T_EUI]
        self.cert = ident_[K.T_CERT]
        active = {k[0]: k[6] for k in keys if k[3] == K.ACTIVE}
        self.root, self.device_key = active[K.ROOT], active[K.DEVICE]
        session = records.read(SESSION_RECORD)
        # None when the meter was between sessions (rejoining) when it was stolen.
        _nonce, self.k_up, self.k_down = session_keys(session) if session else (0, None, None)
        groups = Groups(records)
        self.group_keys = [groups.current(gid)[1] for gid in groups.ids()]

    def keys(self) -> list[bytes]:
        """Every symmetric key the stolen meter held."""
        return [k for k in (self.root, self.k_up, self.k_down, *self.group_keys) if k]


class KeyTheft:
    """The key-theft attacks on a stage, around one stolen in-process meter (`stolen.node`
    is a `CPythonMeter`: the lab images its flash)."""

    def __init__(self, stage: Stage, stolen: Handle | None, other: Handle) -> None:
        self.stage = stage
        self.stolen = stolen
        self.other = other
        self.loot: Loot | None = None
        self.offline: Counter[str] = Counter()  # attempted / accepted, per attempt name
        self.attempts: Counter[str] = Counter()
        self.rng = DeterministicEntropy(b"thief%d" % stage.seed)

    def _offline(self, name: str, succeeded: bool) -> None:
        self.attempts[name] += 1
        self.offline["attempted"] += 1
        self.offline["accepted"] += int(succeeded)

    def _radio(self, name: str, data: bytes, to: bytes | None) -> None:
        self.attempts[name] += 1
        self.stage.attacker.attempt(KIND, data, to, self.stage.now() + 1 + len(self.attempts))

    def steal(self) -> None:
        """Image the stolen meter's flash and read out its secrets."""
        blobs, secret = self.stolen.node.extract()
        self.loot = Loot(blobs, secret)
        self._copied_file_only(blobs)

    def _copied_file_only(self, blobs: dict[str, bytes]) -> None:
        """Only the key store file, no device secret: guesses of the secret open nothing,
        and no key byte appears in the file."""
        image = b"".join(v for n, v in blobs.items() if n.startswith(K.RECORD))
        for _ in range(16):
            guess = self.rng.random_bytes(32)
            records = RecordStore(MemoryStorage(dict(blobs)), derive_storage_key(guess),
                                  DeterministicEntropy(b"guess"))
            try:
                opened = records.read(K.RECORD) is not None
            except Exception:  # RecordCorrupt: no slot opens under that key
                opened = False
            self._offline("copied_keystore_guess", opened)
        loot = self.loot
        leaked = any(k in image for k in (loot.root, loot.device_key))
        self._offline("copied_keystore_plaintext", leaked)

    def attack_others(self) -> None:
        """Use the stolen keys against another meter and the head end."""
        loot = self.loot
        stage = self.stage
        he = stage.headend.address
        victim = self.other.address

        def unicast_of_victim(data: bytes) -> bool:
            ftype, flags, src, dst = frame.peek(data)
            return ftype == frame.DATA and victim in (src, dst) and not flags & frame.GROUP

        # 1. Read the other meter's unicast traffic with every stolen key.
        captured = stage.attacker.captures(lambda c: unicast_of_victim(c.frame))
        frames = [c.frame for c in captured][-20:]
        for data in frames:
            fr = frame.decode(data)
            opened = False
            for key in loot.keys():
                try:
                    frame.open_frame(key, fr)
                    opened = True
                except crypto.AuthError:
                    pass
            self._offline("decrypt_other_meter", opened)
        # 2. Command the other meter: an envelope signed with the stolen device key in the
        # signer's name, sealed under the stolen session key with the victim's key generation.
        now = stage.now() // 1000
        gen = frame.peek_secured(frames[-1])[1] if frames else 0
        body = E.encode(E.DISCONNECT, E.TARGET_DEVICE, victim, FORGED_COUNTER, now - 60, now + 600,
                        SIGNER_KEY_ID)
        forged = E.sign(body, loot.device_key)
        plain = messages.encode_command(forged)
        if loot.k_down:
            self._radio("command_other_meter", frame.seal(
                loot.k_down, frame.DATA, he, victim, frame.KEY_SESSION, gen, 1 << 20, plain,
                True,
            ), victim)
        # 3. The same forged command under a stolen group key, to the whole group.
        for gid, key in zip(self._group_ids(), loot.group_keys, strict=False):
            self._radio("forged_group_command", frame.seal(
                key, frame.DATA, he, gid, frame.KEY_GROUP, stage.headend.groups[gid].key_gen,
                1 << 20, messages.encode_command(
                    E.sign(E.encode(E.DISCONNECT, E.TARGET_GROUP, gid, FORGED_COUNTER, now - 60,
                                    now + 600, SIGNER_KEY_ID), loot.device_key)),
                down=True, group=True,
            ), None)
        # 4. Join as the other meter with the stolen root key's mic.
        gx = ident.compress_point(crypto.p256_public_key(new_private(self.rng)))
        body = messages.join_request_body(1 << 30, gx)
        mic = join.request_mic(mic_key(loot.root),
                               frame.header(frame.JOIN_REQUEST, victim, he) + body)
        self._radio("join_as_other_meter",
                    frame.encode(frame.JOIN_REQUEST, victim, he, body + mic), he)
        # 5. Impersonate the head end: a JOIN_RESPONSE signed with the stolen device key.
        self._impersonate_headend(victim)

    def _group_ids(self) -> list[bytes]:
        return sorted(gid for gid, g in self.stage.headend.groups.items()
                      if self.stolen.address in g.members)

    def _impersonate_headend(self, victim: bytes) -> None:
        """Answer the other meter's next JOIN_REQUEST before the head end does, signing the
        transcript with the best key the attacker has (the stolen meter's)."""
        stage = self.stage
        loot = self.loot
        he = stage.headend.address
        armed = [True]

        def on_sniff(t: int, src: bytes, data: bytes) -> None:
            if not armed[0] or src != victim or frame.peek(data)[0] != frame.JOIN_REQUEST:
                return
            armed[0] = False
            eph = new_private(self.rng)
            gy = ident.compress_point(crypto.p256_public_key(eph))
            join_nonce = 0xFFFFFF00
            h2 = frame.header(frame.JOIN_RESPONSE, he, victim, down=True)
            th2 = join.transcript2(frame.decode(data).raw, h2, join_nonce, gy)
            sig = crypto.ecdsa_sign(loot.device_key, join.LABEL2 + th2)
            payload = messages.encode_join_response(join_nonce, gy, sig)
            self.attempts["impersonate_head_end"] += 1
            stage.attacker.attempt(KIND, frame.encode(frame.JOIN_RESPONSE, he, victim, payload,
                                                      down=True), victim, t + 1)

        stage.sniff(on_sniff)

    def after_revocation(self) -> None:
        """The head end revoked the stolen identity: the attacker, holding all of it, tries
        to come back as the stolen meter."""
        loot = self.loot
        he = self.stage.headend.address
        gx = ident.compress_point(crypto.p256_public_key(new_private(self.rng)))
        body = messages.join_request_body(1 << 30, gx)
        mic = join.request_mic(mic_key(loot.root),
                               frame.header(frame.JOIN_REQUEST, loot.eui, he) + body)
        self._radio("join_after_revocation",
                    frame.encode(frame.JOIN_REQUEST, loot.eui, he, body + mic), he)
        if not loot.k_up:
            return
        reading = messages.encode_readings([(1 << 30, self.stage.now() // 1000, 1)])
        session = self.stage.headend.devices[loot.eui]
        gen = session.join_nonce & 0xFF
        self._radio("uplink_after_revocation", frame.seal(
            loot.k_up, frame.DATA, loot.eui, he, frame.KEY_SESSION, gen, 1 << 20, reading,
        ), he)

    def report(self) -> dict:
        """{attempted, accepted, attempts: {name: count}}, radio and offline together."""
        radio = self.stage.attacker.report().get(KIND, {"attempted": 0, "accepted": 0})
        return {
            "attempted": radio["attempted"] + self.offline["attempted"],
            "accepted": radio["accepted"] + self.offline["accepted"],
            "attempts": dict(sorted(self.attempts.items())),
        }
