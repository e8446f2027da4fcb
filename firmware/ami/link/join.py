"""The three-message join of docs/protocol.md section 3: transcripts, key confirmation, and
the device's half of the handshake (the head end's half, ami.link.headend_join, shares them)."""

from ami import crypto
from ami.crypto import p256
from ami.keyschedule import session_keys
from ami.link import frame, messages
from ami.outcomes import Rejected

LABEL2 = b"AMI-JOIN-2"
LABEL3 = b"AMI-JOIN-3"
CONFIRM_INFO = b"AMI-JOIN-3 confirm"
DEVNONCE_RECORD = "devnonce"


def request_mic(k_jr, covered):
    """The 8-byte mic over the request's header and payload up to the mic."""
    return crypto.aes_cmac(k_jr, covered)[:8]


def transcript2(m1, h2, join_nonce, gy):
    """TH2 = SHA-256(M1 || H2 || join_nonce || G_Y)."""
    return crypto.sha256(m1 + h2 + join_nonce.to_bytes(4, "big") + gy)


def transcript3(th2, sig_he, h3, cert):
    """TH3 = SHA-256(TH2 || sig_HE || H3 || certificate)."""
    return crypto.sha256(th2 + sig_he + h3 + cert)


def confirm_mac(kc, th3, sig_d):
    """Key confirmation of JOIN_CONFIRM."""
    return crypto.hmac_sha256(kc, CONFIRM_INFO + th3 + sig_d)[:16]


def ephemeral(entropy):
    """A fresh P-256 key pair: (private32, compressed public 33)."""
    while True:
        d = entropy.random_bytes(32)
        if 0 < int.from_bytes(d, "big") < p256.N:
            x, y = p256.decode_point(crypto.p256_public_key(d))
            return d, bytes((2 + (y & 1),)) + x.to_bytes(32, "big")


class Pending:
    """Session keys not yet confirmed by the head end's SESSION_START: from a join, or
    delivered by a rekey (then deadline_s: given up at that time)."""

    def __init__(self, join_nonce, k_up, k_down, deadline_s=None):
        self.join_nonce = join_nonce
        self.key_gen = join_nonce & 0xFF
        self.k_up = k_up
        self.k_down = k_down
        self.deadline_s = deadline_s


class JoinAccepted:
    """A JOIN_RESPONSE the device accepted: the JOIN_CONFIRM to send, the keys it awaits."""

    def __init__(self, confirm, pending):
        self.confirm = confirm
        self.pending = pending


class DeviceJoin:
    """The device's half of the join: request, then response -> confirm + pending keys."""

    def __init__(self, keystore, records, entropy):
        self._ks = keystore
        self._records = records
        self._entropy = entropy
        self._m1 = None
        self._eph = None

    def request(self):
        """A JOIN_REQUEST frame. The next DevNonce is persisted before this one is used."""
        stored = self._records.read(DEVNONCE_RECORD)
        dev_nonce = int.from_bytes(stored, "big") if stored else 0
        if dev_nonce >= 0xFFFFFFFF:
            raise ValueError("DevNonce space exhausted")
        self._records.write(DEVNONCE_RECORD, (dev_nonce + 1).to_bytes(4, "big"))
        self._eph, gx = ephemeral(self._entropy)
        ks = self._ks
        body = messages.join_request_body(dev_nonce, gx)
        mic = ks.join_mic(frame.header(frame.JOIN_REQUEST, ks.eui, ks.he_eui) + body)
        m1 = frame.encode(frame.JOIN_REQUEST, ks.eui, ks.he_eui, body + mic)
        self._m1 = m1[:-2]
        return m1

    def respond(self, fr, last_join_nonce):
        """Check a decoded JOIN_RESPONSE: Rejected, or JoinAccepted.

        last_join_nonce is the highest JoinNonce ever accepted (None if never).
        """
        if self._m1 is None:
            return Rejected("unexpected")
        try:
            join_nonce, gy, sig_he = messages.decode_join_response(fr.payload)
        except frame.FrameError as exc:
            return Rejected(exc.reason)
        if last_join_nonce is not None and join_nonce <= last_join_nonce:
            return Rejected("join_nonce_replay")
        th2 = transcript2(self._m1, fr.header, join_nonce, gy)
        if not crypto.ecdsa_verify(self._ks.he_public, LABEL2 + th2, sig_he):
            return Rejected("bad_signature")
        try:
            z = self._ks.agree(self._eph, gy)
        except ValueError:
            return Rejected("malformed")
        ks = self._ks
        h3 = frame.header(frame.JOIN_CONFIRM, ks.eui, ks.he_eui)
        th3 = transcript3(th2, sig_he, h3, ks.cert)
        k_up, k_down, kc = session_keys(ks.derive, z, th3)
        sig_d = ks.sign(LABEL3 + th3)
        payload = messages.encode_join_confirm(ks.cert, sig_d, confirm_mac(kc, th3, sig_d))
        confirm = frame.encode(frame.JOIN_CONFIRM, ks.eui, ks.he_eui, payload)
        # One response per request: the ephemeral key is forgotten here (forward secrecy).
        self._m1 = self._eph = None
        return JoinAccepted(confirm, Pending(join_nonce, k_up, k_down))
