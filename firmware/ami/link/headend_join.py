"""The head end's half of the join (docs/protocol.md section 3), sans-IO like the device's
half in ami.link.join, whose transcripts and key confirmation it shares.

A JOIN_REQUEST goes through `open_request` (payload and mic: is it the device's?), then the
caller's own policy (a rate limit), then `HeadEndJoin.respond` (DevNonce and G_X), which
returns the JOIN_RESPONSE; the caller makes both nonces durable before sending it.
`HeadEndJoin.confirm` checks the device's JOIN_CONFIRM and derives the session keys. The
certificate is the caller's to check before confirm (`confirm_certificate` reads it): which
CA, roles and registered key a head end trusts is its policy, not the protocol's.
"""

from ami import crypto
from ami.crypto import p256
from ami.keyschedule import session_keys
from ami.link import frame, messages
from ami.link.join import (
    LABEL2,
    LABEL3,
    confirm_mac,
    ephemeral,
    request_mic,
    transcript2,
    transcript3,
)
from ami.outcomes import Rejected


class JoinRequest:
    """An authentic JOIN_REQUEST: its fields, and the index of the mic key that proved it."""

    def __init__(self, dev_nonce, gx, key_index):
        self.dev_nonce = dev_nonce
        self.gx = gx
        self.key_index = key_index


class Joined:
    """A JOIN_CONFIRM that completed the join: the session's JoinNonce and keys."""

    def __init__(self, join_nonce, k_up, k_down):
        self.join_nonce = join_nonce
        self.key_gen = join_nonce & 0xFF
        self.k_up = k_up
        self.k_down = k_down


def open_request(fr, mic_keys):
    """A decoded JOIN_REQUEST checked against the device's mic keys, tried in order (a root
    key being confirmed first): JoinRequest, or Rejected (auth, malformed)."""
    try:
        dev_nonce, gx, mic = messages.decode_join_request(fr.payload)
    except frame.FrameError as exc:
        return Rejected(exc.reason)
    covered = fr.raw[: -len(mic)]
    for i in range(len(mic_keys)):
        if crypto.constant_time_eq(request_mic(mic_keys[i], covered), mic):
            return JoinRequest(dev_nonce, gx, i)
    return Rejected("auth")  # nothing else runs for a request the device did not send


def confirm_certificate(fr):
    """The certificate a decoded JOIN_CONFIRM carries (raises FrameError on a bad length)."""
    return messages.decode_join_confirm(fr.payload)[0]


class HeadEndJoin:
    """One device's join, from the head end: respond() to an authentic request, then
    confirm() the device's answer."""

    def __init__(self, eui, private, entropy):
        """eui and private: the head end's identity (its static P-256 signing key)."""
        self._eui = eui
        self._private = private
        self._entropy = entropy
        self.join_nonce = None
        self._th2 = self._sig = self._eph = self._gx = self._root = None

    def respond(self, fr, request, root, join_nonce, last_dev_nonce=None):
        """The JOIN_RESPONSE (bytes) to an authentic request under root, or Rejected
        (dev_nonce_replay, malformed). last_dev_nonce: the highest DevNonce accepted (None:
        never, or the caller keeps its own check)."""
        if last_dev_nonce is not None and request.dev_nonce <= last_dev_nonce:
            return Rejected("dev_nonce_replay")
        try:
            p256.decode_point(request.gx)
        except ValueError:
            return Rejected("malformed")
        eph, gy = ephemeral(self._entropy)
        dev = fr.src
        h2 = frame.header(frame.JOIN_RESPONSE, self._eui, dev, down=True)
        th2 = transcript2(fr.raw, h2, join_nonce, gy)
        sig = crypto.ecdsa_sign(self._private, LABEL2 + th2)
        self.join_nonce = join_nonce
        self._th2, self._sig, self._eph, self._gx, self._root = th2, sig, eph, request.gx, root
        payload = messages.encode_join_response(join_nonce, gy, sig)
        return frame.encode(frame.JOIN_RESPONSE, self._eui, dev, payload, down=True)

    def confirm(self, fr, device_public):
        """A decoded JOIN_CONFIRM: Joined, or Rejected (unexpected, malformed,
        bad_signature, key_confirmation). sig_D is checked under device_public (None: a
        model head end that takes the device's key on trust checks only the key
        confirmation)."""
        if self._th2 is None:
            return Rejected("unexpected")
        try:
            cert, sig_d, mac = messages.decode_join_confirm(fr.payload)
        except frame.FrameError as exc:
            return Rejected(exc.reason)
        th3 = transcript3(self._th2, self._sig, fr.header, cert)
        if device_public is not None and not crypto.ecdsa_verify(device_public, LABEL3 + th3,
                                                                 sig_d):
            return Rejected("bad_signature")
        root = self._root
        k_up, k_down, kc = session_keys(
            lambda ikm, info, n: crypto.hkdf_sha256(ikm, root, info, n),
            crypto.ecdh(self._eph, self._gx), th3,
        )
        if not crypto.constant_time_eq(confirm_mac(kc, th3, sig_d), mac):
            return Rejected("key_confirmation")
        self._th2 = self._sig = self._eph = self._gx = None  # forward secrecy
        return Joined(self.join_nonce, k_up, k_down)
