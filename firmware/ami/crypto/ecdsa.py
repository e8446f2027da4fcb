"""ECDSA P-256 with SHA-256 (FIPS 186-5, RFC 6979 deterministic nonces) and ECDH P-256."""

from ami.crypto import p256
from ami.crypto.errors import InvalidKey
from ami.crypto.kdf import hmac_sha256, sha256


def _scalar(private32):
    if not isinstance(private32, (bytes, bytearray)) or len(private32) != 32:
        raise ValueError("private key must be 32 bytes")
    d = int.from_bytes(private32, "big")
    if not 0 < d < p256.N:
        raise ValueError("private key out of range [1, n-1]")
    return d


def p256_public_key(private32):
    """65-byte uncompressed public point of a 32-byte private scalar."""
    x, y = p256.to_affine(*p256.mul_base(_scalar(private32)))
    return p256.encode_point(x, y)


def _rfc6979_nonces(x, h1):
    """Candidate nonces k of RFC 6979 section 3.2 for SHA-256 and a 256-bit order."""
    n = p256.N
    h = (int.from_bytes(h1, "big") % n).to_bytes(32, "big")
    v = b"\x01" * 32
    k = hmac_sha256(bytes(32), v + b"\x00" + x + h)
    v = hmac_sha256(k, v)
    k = hmac_sha256(k, v + b"\x01" + x + h)
    v = hmac_sha256(k, v)
    while True:
        v = hmac_sha256(k, v)
        cand = int.from_bytes(v, "big")
        if 0 < cand < n:
            yield cand
        k = hmac_sha256(k, v + b"\x00")
        v = hmac_sha256(k, v)


def ecdsa_sign(private32, msg):
    """64-byte r || s signature of SHA-256(msg); deterministic (RFC 6979), no RNG used."""
    d = _scalar(private32)
    n = p256.N
    h1 = sha256(msg)
    e = int.from_bytes(h1, "big")
    for k in _rfc6979_nonces(bytes(private32), h1):
        X, _, Z = p256.mul_base(k)
        zi = p256.inv_mod(Z, p256.P)
        r = X * zi * zi % p256.P % n
        if not r:
            continue
        s = p256.inv_mod(k, n) * (e + r * d) % n
        if s:
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def ecdsa_verify(public, msg, sig):
    """True if sig (64-byte r || s) is a valid signature of SHA-256(msg) under public.

    public is a SEC1 point, uncompressed or compressed. Any malformed input gives False.
    """
    try:
        qx, qy = p256.decode_point(public)
        if len(sig) != 64:
            return False
        r = int.from_bytes(sig[:32], "big")
        s = int.from_bytes(sig[32:], "big")
        e = int.from_bytes(sha256(msg), "big")
    except (TypeError, ValueError):
        return False
    n = p256.N
    if not (0 < r < n and 0 < s < n):
        return False
    w = p256.inv_mod(s, n)
    u1 = e * w % n
    u2 = r * w % n
    table = p256.key_table(qx, qy)
    if table:
        X, _, Z = p256.comb_mul_add(u1, u2, table)
    else:
        X, _, Z = p256.mul_add(u1, u2, qx, qy)
    if not Z:
        return False
    # Compare x(R) mod n with r without inverting Z: x(R) = X / Z^2, and x(R) is r or r + n.
    p = p256.P
    zz = Z * Z % p
    if (r * zz - X) % p == 0:
        return True
    return r + n < p and ((r + n) * zz - X) % p == 0


def ecdh(private32, peer_public):
    """32-byte shared x coordinate of private32 * peer_public.

    Raises InvalidKey for a malformed, off-curve or infinity peer point, and ValueError for
    a bad private scalar.
    """
    d = _scalar(private32)
    qx, qy = p256.decode_point(peer_public)
    X, Y, Z = p256.mul_point(d, qx, qy)
    if not Z:
        raise InvalidKey("shared point at infinity")
    return p256.to_affine(X, Y, Z)[0].to_bytes(32, "big")
