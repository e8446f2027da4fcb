"""Certificates (docs/protocol.md section 2): layout, decoding, issuing and verification."""

from ami import identity as idn
from ami.crypto import InvalidKey, ecdsa_sign, ecdsa_verify
from fwtest import raises, unhex

# RFC 6979 appendix A.2.5 key pair as the CA; the generator G as the subject key.
CA = unhex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721")
CA_PUB = unhex(
    "0460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
    "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299"
)
G = unhex(
    "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
    "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
)
G33 = unhex("036b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296")  # y is odd
OTHER_PUB = unhex(  # 2G
    "047cf27b188d034f7e8a52380304b51ac3c08969e277f21b35a60b48fc47669978"
    "07775510db8ed040293d9ac69f7430dbba7dade63ce982299e04b79d227873d1"
)
EUI = unhex("0011223344556677")
NB = 1700000000
NA = 1900000000

_cache = []


def cert_bytes():
    """One issued certificate, signed once per run (ECDSA costs ms on MicroPython)."""
    if not _cache:
        _cache.append(idn.make_certificate(CA, 9, idn.ROLE_METER, EUI, NB, NA, G).to_bytes())
    return _cache[0]


def test_constants():
    assert (idn.ROLE_METER, idn.ROLE_HUB, idn.ROLE_HEADEND) == (1, 2, 3)
    assert idn.CERT_LEN == 116 and idn.TBS_LEN == 52 and idn.CERT_LABEL == b"AMI-CERT-1"
    assert issubclass(idn.CertificateError, ValueError)


def test_compress_point():
    assert idn.compress_point(G) == G33
    assert idn.compress_point(G33) == G33
    assert idn.compress_point(OTHER_PUB)[0] == 3
    assert idn.compress_point(OTHER_PUB)[1:] == OTHER_PUB[1:33]
    raises(InvalidKey, idn.compress_point, bytes(65))
    raises(InvalidKey, idn.compress_point, G[:64])
    raises(ValueError, idn.compress_point, b"\x04" + G[1:64] + bytes((G[64] ^ 1,)))
    raises(ValueError, idn.compress_point, None)


def test_layout():
    data = cert_bytes()
    assert len(data) == 116
    assert data[0] == 1 and data[1] == idn.ROLE_METER and data[2:10] == EUI
    assert data[10:14] == NB.to_bytes(4, "big") and data[14:18] == NA.to_bytes(4, "big")
    assert data[18:51] == G33 and data[51] == 9
    assert ecdsa_verify(CA_PUB, b"AMI-CERT-1" + data[:52], data[52:])


def test_decode_round_trip():
    data = cert_bytes()
    cert = idn.decode_certificate(data)
    assert (cert.version, cert.role, cert.eui) == (1, idn.ROLE_METER, EUI)
    assert (cert.not_before, cert.not_after, cert.issuer_id) == (NB, NA, 9)
    assert cert.public33 == G33 and cert.signature == data[52:]
    assert cert.tbs() == data[:52] and cert.to_bytes() == data
    assert idn.decode_certificate(bytearray(data)).to_bytes() == data
    assert idn.decode_certificate(memoryview(data)).to_bytes() == data


def test_verify():
    data = cert_bytes()
    cert = idn.decode_certificate(data)
    assert idn.verify_certificate(data, CA_PUB) is None
    assert (
        idn.verify_certificate(cert, CA_PUB, eui=EUI, roles=(idn.ROLE_METER, idn.ROLE_HUB), now=NB)
        is None
    )
    assert idn.verify_certificate(cert, CA_PUB, now=NA) is None
    assert idn.verify_certificate(cert, CA_PUB, now=NB - 1) == "expired_certificate"
    assert idn.verify_certificate(cert, CA_PUB, now=NA + 1) == "expired_certificate"
    assert idn.verify_certificate(cert, CA_PUB, roles=(idn.ROLE_HEADEND,)) == "bad_certificate"
    assert idn.verify_certificate(cert, CA_PUB, eui=bytes(8)) == "bad_certificate"
    # Role and EUI are checked before the window, the signature before everything.
    assert idn.verify_certificate(cert, CA_PUB, eui=bytes(8), now=0) == "bad_certificate"
    assert idn.verify_certificate(cert, OTHER_PUB, now=0) == "bad_certificate"
    assert idn.verify_certificate(cert, b"\x04" + bytes(64)) == "bad_certificate"


def test_tampering_breaks_the_signature():
    data = cert_bytes()
    # One flip in each field that decoding alone would accept.
    for offset, mask in ((2, 1), (11, 0x80), (17, 1), (30, 4), (51, 1), (60, 1), (115, 1)):
        bad = bytearray(data)
        bad[offset] ^= mask
        assert idn.verify_certificate(bytes(bad), CA_PUB) == "bad_certificate"
    cert = idn.decode_certificate(data)
    cert.role = idn.ROLE_HUB
    assert idn.verify_certificate(cert, CA_PUB) == "bad_certificate"


def test_decode_rejections():
    data = cert_bytes()

    def bad(blob):
        exc = raises(idn.CertificateError, idn.decode_certificate, blob)
        assert exc.reason == "bad_certificate"
        assert idn.verify_certificate(blob, CA_PUB) == "bad_certificate"

    bad(data[:115])
    bad(data + b"\x00")
    bad(b"")
    bad(None)
    bad("x" * 116)
    for offset, value in (
        (0, 0),
        (0, 2),
        (0, 0xFF),
        (1, 0),
        (1, 4),
        (1, 0xFF),
        (18, 4),
        (18, 0),
        (18, 5),
    ):
        blob = bytearray(data)
        blob[offset] = value
        bad(bytes(blob))
    swapped = data[:10] + data[14:18] + data[10:14] + data[18:]  # not_before > not_after
    bad(swapped)


def test_signed_bad_key_rejected():
    # A CA signature does not make an off-curve subject key acceptable.
    cert = idn.decode_certificate(cert_bytes())
    cert.public33 = b"\x02" + b"\xff" * 32
    cert.signature = ecdsa_sign(CA, idn.CERT_LABEL + cert.tbs())
    assert idn.verify_certificate(cert, CA_PUB) == "bad_certificate"


def test_certificate_field_checks():
    cert = idn.decode_certificate(cert_bytes())
    for name, value in (
        ("role", 256),
        ("not_before", 1 << 32),
        ("not_after", -1),
        ("issuer_id", 256),
        ("eui", EUI[:7]),
        ("public33", G),
        ("version", -1),
        ("signature", bytes(63)),
    ):
        saved = getattr(cert, name)
        setattr(cert, name, value)
        raises(ValueError, cert.to_bytes)
        assert idn.verify_certificate(cert, CA_PUB) == "bad_certificate"
        setattr(cert, name, saved)
    assert cert.to_bytes() == cert_bytes()


def test_make_checks():
    def bad(*args):
        raises(ValueError, idn.make_certificate, *args)

    bad(CA, 1, 0, EUI, NB, NA, G)
    bad(CA, 1, 4, EUI, NB, NA, G)
    bad(CA, 1, idn.ROLE_HUB, EUI[:7], NB, NA, G)
    bad(CA, 1, idn.ROLE_HUB, EUI + b"\x00", NB, NA, G)
    bad(CA, 1, idn.ROLE_HUB, EUI, -1, NA, G)
    bad(CA, 1, idn.ROLE_HUB, EUI, NB, 1 << 32, G)
    bad(CA, 1, idn.ROLE_HUB, EUI, NA, NB, G)
    bad(CA, 256, idn.ROLE_HUB, EUI, NB, NA, G)
    bad(CA, 1, idn.ROLE_HUB, EUI, NB, NA, bytes(65))
    bad(CA, 1, idn.ROLE_HUB, EUI, NB, NA, G[:33])
    bad(bytes(32), 1, idn.ROLE_HUB, EUI, NB, NA, G)
    bad(CA[:31], 1, idn.ROLE_HUB, EUI, NB, NA, G)


def test_make_compressed_key_and_zero_window():
    cert = idn.make_certificate(CA, 0, idn.ROLE_HEADEND, EUI, 5, 5, G33)
    assert cert.public33 == G33 and cert.role == idn.ROLE_HEADEND
    data = cert.to_bytes()
    assert idn.verify_certificate(data, CA_PUB, now=5) is None
    assert idn.verify_certificate(data, CA_PUB, now=6) == "expired_certificate"
