"""NIST P-256 curve arithmetic: field, points, scalar multiplication, SEC1 encoding.

Points are Jacobian triples (X, Y, Z) standing for (X/Z^2, Y/Z^3); Z == 0 is the point at
infinity. Costs are counted in modular multiplies, the unit that matters on both runtimes
(about 1 us each on the MicroPython unix port, 0.3 us on CPython): doubling uses the a = -3
formula (3M + 5S), mixed addition with an affine point 8M + 3S, full addition 12M + 4S.
Field elements may be left unreduced in (-p, p) where they only feed a product: Python's %
returns the non-negative residue on both runtimes.

Python integers are not constant-time: see docs/crypto.md for what that means here.
"""

from ami.crypto.errors import InvalidKey

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

# Window widths: G's table is computed once and cached (32 affine points, 2 KB), a
# variable point's table is built per call (8 Jacobian points), so it stays small.
_WG = 7
_WQ = 5

_INF = (1, 1, 0)


def inv_mod(a, m):
    """Inverse of a modulo the prime m by the extended Euclidean algorithm.

    Cheaper than Fermat's pow(a, m - 2, m) on both runtimes; pow(a, -1, m) silently
    returns 0 on MicroPython, so it is never used. Raises ValueError for a = 0 mod m.
    """
    r0, r1 = m, a % m
    x0, x1 = 0, 1
    while r1:
        q, r = divmod(r0, r1)
        r0, r1 = r1, r
        x0, x1 = x1, x0 - q * x1
    if r0 != 1:
        raise ValueError("not invertible")
    return x0 % m


def is_on_curve(x, y):
    """True if (x, y) are field elements satisfying y^2 = x^3 - 3x + b."""
    p = P
    return 0 <= x < p and 0 <= y < p and (y * y - x * x * x + 3 * x - B) % p == 0


def decode_point(data):
    """Parse a SEC1 point (uncompressed 65 bytes or compressed 33 bytes) into affine (x, y).

    Raises InvalidKey for any other length or prefix, coordinates not below p, a point off
    the curve, or the infinity encoding.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidKey("public point must be bytes")
    data = bytes(data)
    p = P
    if len(data) == 65 and data[0] == 4:
        x = int.from_bytes(data[1:33], "big")
        y = int.from_bytes(data[33:], "big")
        if not is_on_curve(x, y):
            raise InvalidKey("point not on P-256")
        return x, y
    if len(data) == 33 and data[0] in (2, 3):
        x = int.from_bytes(data[1:], "big")
        if x >= p:
            raise InvalidKey("x not a field element")
        rhs = (x * x * x - 3 * x + B) % p
        y = pow(rhs, (p + 1) // 4, p)  # p = 3 mod 4
        if y * y % p != rhs:
            raise InvalidKey("x not on P-256")
        if (y & 1) != (data[0] & 1):
            y = p - y
        return x, y
    raise InvalidKey("malformed SEC1 point")


def encode_point(x, y):
    """Uncompressed SEC1 encoding (65 bytes) of an affine point."""
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def double(X, Y, Z):
    """2P for a Jacobian point (dbl-2001-b, a = -3)."""
    if not Z:
        return _INF
    p = P
    d = Z * Z % p
    g = Y * Y % p
    b = X * g % p
    a = 3 * (X - d) * (X + d) % p
    X3 = (a * a - 8 * b) % p
    return X3, (a * (4 * b - X3) - 8 * g * g) % p, 2 * Y * Z % p


def _combine(u1, s1, h, r, z, X1, Y1, Z1):
    """The common end of both additions: h = U2 - U1 and r = S2 - S1 (each in (-p, p)),
    z the product of the input Z coordinates; handles P1 = +-P2."""
    if not h:  # the operands were reduced, so h = 0 exactly when the x coordinates agree
        if r:
            return _INF
        return double(X1, Y1, Z1)
    p = P
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    X3 = (r * r - hhh - 2 * v) % p
    return X3, (r * (v - X3) - s1 * hhh) % p, z * h % p


def add_affine(X1, Y1, Z1, x2, y2):
    """P1 + P2 for Jacobian P1 and affine P2 (madd-2004-hmv); handles P1 = +-P2."""
    if not Z1:
        return x2, y2, 1
    p = P
    zz = Z1 * Z1 % p
    return _combine(X1, Y1, x2 * zz % p - X1, y2 * Z1 % p * zz % p - Y1, Z1, X1, Y1, Z1)


def add(X1, Y1, Z1, X2, Y2, Z2):
    """P1 + P2 for Jacobian points (add-1998-cmo-2); handles infinity and P1 = +-P2."""
    if not Z1:
        return X2, Y2, Z2
    if not Z2:
        return X1, Y1, Z1
    p = P
    z1z1 = Z1 * Z1 % p
    z2z2 = Z2 * Z2 % p
    u1 = X1 * z2z2 % p
    s1 = Y1 * Z2 % p * z2z2 % p
    h = X2 * z1z1 % p - u1
    r = Y2 * Z1 % p * z1z1 % p - s1
    return _combine(u1, s1, h, r, Z1 * Z2 % p, X1, Y1, Z1)


def to_affine(X, Y, Z):
    """Affine (x, y) of a Jacobian point; ValueError for infinity."""
    if not Z:
        raise ValueError("point at infinity")
    p = P
    zi = inv_mod(Z, p)
    zi2 = zi * zi % p
    return X * zi2 % p, Y * zi2 % p * zi % p


def _put(buf, i, X, Y, Z):
    """Store Jacobian point i of a blob of 96-byte records."""
    o = i * 96
    buf[o : o + 32] = X.to_bytes(32, "big")
    buf[o + 32 : o + 64] = Y.to_bytes(32, "big")
    buf[o + 64 : o + 96] = Z.to_bytes(32, "big")


def _get(buf, i):
    """Jacobian point i of a blob of 96-byte records."""
    o = i * 96
    return (
        int.from_bytes(buf[o : o + 32], "big"),
        int.from_bytes(buf[o + 32 : o + 64], "big"),
        int.from_bytes(buf[o + 64 : o + 96], "big"),
    )


def _buffers(count):
    """The blobs a table of count points is built in: Jacobian records, prefix products and
    the affine output, allocated together before any arithmetic (see _batch_affine)."""
    return bytearray(96 * count), bytearray(32 * count), bytearray(64 * count)


def _batch_affine(jac, prefix, out, count):
    """Fill out (64 bytes x || y per point) with the affine forms of the count finite
    Jacobian points held in jac, with one inversion (Montgomery's trick); returns out.

    Tables are blobs, not lists of integers: a 256-bit integer costs about 130 bytes of a
    MicroPython heap, and long-lived small objects scattered over the heap leave no room
    for the next large block: the buffers are allocated before the work for the same reason.
    """
    p = P
    acc = 1
    for i in range(count):
        prefix[32 * i : 32 * i + 32] = acc.to_bytes(32, "big")
        acc = acc * _get(jac, i)[2] % p
    inv = inv_mod(acc, p)
    for i in range(count - 1, -1, -1):
        X, Y, Z = _get(jac, i)
        zi = inv * int.from_bytes(prefix[32 * i : 32 * i + 32], "big") % p
        inv = inv * Z % p
        zi2 = zi * zi % p
        o = i << 6
        out[o : o + 32] = (X * zi2 % p).to_bytes(32, "big")
        out[o + 32 : o + 64] = (Y * zi2 % p * zi % p).to_bytes(32, "big")
    return out


def _entry(table, i, negate):
    """Affine point i of a table blob, negated if asked."""
    o = i << 6
    y = int.from_bytes(table[o + 32 : o + 64], "big")
    return int.from_bytes(table[o : o + 32], "big"), P - y if negate else y


def _odd_table(x, y, w):
    """Affine table of the odd multiples P, 3P, ..., (2^(w-1) - 1)P of the point (x, y)."""
    count = 1 << (w - 2)
    jac, prefix, out = _buffers(count)
    tX, tY, tZ = double(x, y, 1)
    X, Y, Z = x, y, 1
    _put(jac, 0, X, Y, Z)
    for i in range(1, count):
        X, Y, Z = add(X, Y, Z, tX, tY, tZ)
        _put(jac, i, X, Y, Z)
    return _batch_affine(jac, prefix, out, count)


_g_table = None


def _gtable():
    global _g_table
    if _g_table is None:
        _g_table = _odd_table(GX, GY, _WG)
    return _g_table


def wnaf(k, w, length):
    """Width-w NAF digits of k >= 0, least significant first, zero-padded to length, as a
    bytearray of two's-complement bytes (w <= 8).

    Every non-zero digit is odd with |digit| < 2^(w-1), and any w consecutive digits hold
    at most one non-zero, so a scalar of n bits costs about n / (w + 1) additions.
    """
    out = bytearray(length)
    full = 1 << w
    half = full >> 1
    mask = full - 1
    i = 0
    while k:
        if k & 1:
            d = k & mask
            if d >= half:
                d -= full
            k -= d
            out[i] = d & 0xFF
        k >>= 1
        i += 1
    return out


def mul_add(u1, u2, qx, qy):
    """u1*G + u2*Q as a Jacobian point, for scalars in [0, n), sharing one doubling chain.

    Q's odd multiples are made affine with one batched inversion: that costs less than
    the four multiplies per addition it saves.
    """
    g = _gtable()
    q = _odd_table(qx, qy, _WQ) if u2 else None
    n1 = wnaf(u1, _WG, 258)
    n2 = wnaf(u2, _WQ, 258)
    X, Y, Z = _INF
    p = P
    top = 257
    while top >= 0 and not n1[top] and not n2[top]:
        top -= 1
    for i in range(top, -1, -1):
        if Z:  # double(), inlined: this line runs 256 times per verify
            d = Z * Z % p
            g2 = Y * Y % p
            b = X * g2 % p
            a = 3 * (X - d) * (X + d) % p
            Z = 2 * Y * Z % p
            X = (a * a - 8 * b) % p
            Y = (a * (4 * b - X) - 8 * g2 * g2) % p
        d = n1[i]
        if d:
            x2, y2 = _entry(g, (256 - d if d & 0x80 else d) >> 1, d & 0x80)
            X, Y, Z = add_affine(X, Y, Z, x2, y2)
        d = n2[i]
        if d:
            x2, y2 = _entry(q, (256 - d if d & 0x80 else d) >> 1, d & 0x80)
            X, Y, Z = add_affine(X, Y, Z, x2, y2)
    return X, Y, Z


def mul_base(k):
    """k*G as a Jacobian point, for a scalar in [0, n)."""
    return comb_mul_add(k, 0, None)


def mul_point(k, qx, qy):
    """k*Q as a Jacobian point, for a scalar in [0, n) and an affine point Q on the curve."""
    return mul_add(0, k, qx, qy)


# Fixed-base comb (Lim-Lee): a table of the 63 sums of {P, 2^43 P, 2^86 P, ..., 2^215 P}
# turns a scalar multiplication into 43 doublings and at most 43 mixed additions. G's comb
# serves signing and key generation; a public key verified more than once gets one too, so
# a meter checking commands from its trust anchor pays 43 doublings instead of 256.
_TEETH = 6
_SPACING = 43  # ceil(258 / 6): covers every scalar below 2^258
_CACHE_KEYS = 2  # comb tables kept for repeatedly used public keys (4 KB each)


def comb_table(x, y):
    """Comb table blob of the point (x, y): entry i - 1 = sum of 2^(43 j) P over bits j of i."""
    count = (1 << _TEETH) - 1
    jac, prefix, out = _buffers(count)
    X, Y, Z = x, y, 1
    for t in range(_TEETH):
        if t:
            for _ in range(_SPACING):
                X, Y, Z = double(X, Y, Z)
        _put(jac, (1 << t) - 1, X, Y, Z)
        for rest in range(1, 1 << t):  # entries with this tooth on top: base + earlier entry
            _put(jac, (1 << t) + rest - 1, *add(X, Y, Z, *_get(jac, rest - 1)))
    return _batch_affine(jac, prefix, out, count)


def _comb_columns(k):
    """Comb column indices of k, most significant column first."""
    mask = (1 << _SPACING) - 1
    chunks = [(k >> (_SPACING * i)) & mask for i in range(_TEETH)]
    out = bytearray(_SPACING)
    for j in range(_SPACING):
        idx = 0
        for i in range(_TEETH - 1, -1, -1):
            idx = (idx << 1) | ((chunks[i] >> (_SPACING - 1 - j)) & 1)
        out[j] = idx
    return out


def comb_mul_add(u1, u2, qtable):
    """u1*G + u2*Q as a Jacobian point, with Q given by its comb table (qtable may be None
    when u2 is 0)."""
    g = _gcomb()
    c1 = _comb_columns(u1)
    c2 = _comb_columns(u2) if u2 else bytearray(_SPACING)
    X, Y, Z = _INF
    for j in range(_SPACING):
        X, Y, Z = double(X, Y, Z)
        i = c1[j]
        if i:
            x2, y2 = _entry(g, i - 1, 0)
            X, Y, Z = add_affine(X, Y, Z, x2, y2)
        i = c2[j]
        if i:
            x2, y2 = _entry(qtable, i - 1, 0)
            X, Y, Z = add_affine(X, Y, Z, x2, y2)
    return X, Y, Z


_g_comb = None


def warm():
    """Build G's cached tables now. A device calls this at boot, while its heap is still
    unfragmented: both tables live for good and each needs a contiguous block."""
    _gtable()
    _gcomb()



def _gcomb():
    global _g_comb
    if _g_comb is None:
        _g_comb = comb_table(GX, GY)
    return _g_comb


# Keys seen once are remembered by coordinates only; a second use builds the comb table.
# Both lists are bounded and evict the oldest entry (dict order is not reliable on MicroPython).
_seen = []
_tables = []


def key_table(x, y):
    """The comb table of public point (x, y) if it has been used before, else None."""
    for entry in _tables:
        if entry[0] == x and entry[1] == y:
            return entry[2]
    if (x, y) in _seen:
        _seen.remove((x, y))
        try:
            table = comb_table(x, y)
        except MemoryError:  # a small, fragmented heap: verify on the one-shot path instead
            return None
        _tables.append((x, y, table))
        if len(_tables) > _CACHE_KEYS:
            _tables.pop(0)
        return table
    _seen.append((x, y))
    if len(_seen) > _CACHE_KEYS:
        _seen.pop(0)
    return None
