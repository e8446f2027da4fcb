"""Device identities: the fixed 116-byte certificate of docs/protocol.md section 2.

decode_certificate checks the structure only; verify_certificate checks the CA signature,
then what the caller expects (EUI, roles), then the validity window.
"""

import struct

from ami.crypto import ecdsa_sign, ecdsa_verify
from ami.crypto.p256 import decode_point
from ami.runtime import const

CERT_VERSION = const(1)
CERT_LEN = const(116)
TBS_LEN = const(52)  # bytes 0..51: everything but the signature

ROLE_METER = const(1)
ROLE_HUB = const(2)
ROLE_HEADEND = const(3)

BAD_CERTIFICATE = "bad_certificate"
EXPIRED_CERTIFICATE = "expired_certificate"

CERT_LABEL = b"AMI-CERT-1"

_TBS = ">BB8sII33sB"


class CertificateError(ValueError):
    """A certificate that is not a well-formed version 1 structure."""

    reason = BAD_CERTIFICATE


class Certificate:
    """The fields of a certificate; public33 is the compressed SEC1 subject key."""

    def __init__(self, version, role, eui, not_before, not_after, public33, issuer_id, signature):
        self.version = version
        self.role = role
        self.eui = eui
        self.not_before = not_before
        self.not_after = not_after
        self.public33 = public33
        self.issuer_id = issuer_id
        self.signature = signature

    def tbs(self):
        """Bytes 0..51, the part the CA signs (after the CERT_LABEL prefix)."""
        # Range checks first: struct would truncate or pad a bad field silently.
        for value, bits in (
            (self.version, 8),
            (self.role, 8),
            (self.not_before, 32),
            (self.not_after, 32),
            (self.issuer_id, 8),
        ):
            if not isinstance(value, int) or not 0 <= value < 1 << bits:
                raise ValueError("certificate field out of range")
        if not _is_bytes(self.eui, 8) or not _is_bytes(self.public33, 33):
            raise ValueError("certificate eui or key of the wrong size")
        return struct.pack(
            _TBS,
            self.version,
            self.role,
            bytes(self.eui),
            self.not_before,
            self.not_after,
            bytes(self.public33),
            self.issuer_id,
        )

    def to_bytes(self):
        """The 116-byte encoding."""
        if not _is_bytes(self.signature, 64):
            raise ValueError("signature must be 64 bytes")
        return self.tbs() + bytes(self.signature)


def _is_bytes(value, size):
    return isinstance(value, (bytes, bytearray, memoryview)) and len(value) == size


def _roles_ok(role):
    return ROLE_METER <= role <= ROLE_HEADEND


def decode_certificate(data):
    """Parse 116 bytes into a Certificate; raises CertificateError on a bad structure.

    Checked: length, version, a known role, not_before <= not_after, a compressed key prefix.
    The key itself is validated by verify_certificate.
    """
    if not _is_bytes(data, CERT_LEN):
        raise CertificateError("certificate must be 116 bytes")
    data = bytes(data)
    version, role, eui, nb, na, pub, issuer = struct.unpack(_TBS, data[:TBS_LEN])
    if version != CERT_VERSION:
        raise CertificateError("certificate version")
    if not _roles_ok(role):
        raise CertificateError("certificate role")
    if nb > na:
        raise CertificateError("empty validity window")
    if pub[0] != 2 and pub[0] != 3:
        raise CertificateError("subject key not compressed")
    return Certificate(version, role, eui, nb, na, pub, issuer, data[TBS_LEN:])


def compress_point(public):
    """Compressed SEC1 form (33 bytes) of a P-256 point given in either form.

    Raises InvalidKey (a ValueError) for a malformed or off-curve point.
    """
    x, y = decode_point(public)
    return bytes((2 | (y & 1),)) + x.to_bytes(32, "big")


def make_certificate(ca_private32, issuer_id, role, eui, not_before, not_after, public_key):
    """Issue a certificate signed by ca_private32; raises ValueError on a bad argument."""
    if not isinstance(role, int) or not _roles_ok(role):
        raise ValueError("unknown role")
    if (
        not isinstance(not_before, int)
        or not isinstance(not_after, int)
        or (not_before > not_after)
    ):
        raise ValueError("empty validity window")
    cert = Certificate(
        CERT_VERSION, role, eui, not_before, not_after, compress_point(public_key), issuer_id, b""
    )
    cert.signature = ecdsa_sign(ca_private32, CERT_LABEL + cert.tbs())
    return cert


def verify_certificate(cert, ca_public, eui=None, roles=None, now=None):
    """None if cert is genuine and fits, else bad_certificate or expired_certificate.

    cert is a Certificate or its 116 bytes. Order: CA signature, role (one of roles), EUI,
    subject key on the curve, then the validity window (inclusive; skipped when now is None).
    """
    if not isinstance(cert, Certificate):
        try:
            cert = decode_certificate(cert)
        except CertificateError:
            return BAD_CERTIFICATE
    try:
        tbs = cert.tbs()
        sig = cert.signature
        if not _is_bytes(sig, 64) or not ecdsa_verify(ca_public, CERT_LABEL + tbs, sig):
            return BAD_CERTIFICATE
        if cert.version != CERT_VERSION or not _roles_ok(cert.role):
            return BAD_CERTIFICATE
        if roles is not None and cert.role not in roles:
            return BAD_CERTIFICATE
        if eui is not None and bytes(cert.eui) != bytes(eui):
            return BAD_CERTIFICATE
        decode_point(cert.public33)
    except (ValueError, TypeError):  # InvalidKey is a ValueError
        return BAD_CERTIFICATE
    if now is not None and not cert.not_before <= now <= cert.not_after:
        return EXPIRED_CERTIFICATE
    return None
