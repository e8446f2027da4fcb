"""The key store: its image, load errors, sealing, and the key lifecycle (root key delivery,
confirmation and fallback, signer rotation with grace, usage flags).

ECDSA costs a few ms per operation on MicroPython: public keys are made once, at import.
"""

import struct
import sys

from ami import crypto
from ami.keyschedule import ROOT_KEK_INFO, derive_storage_key, mic_key
from ami.keystore import (
    ACTIVE,
    DEVICE,
    PENDING,
    RECORD,
    RETIRING,
    ROOT,
    ROOT_ATTEMPTS,
    SIGNER,
    T_CA_PUBLIC,
    T_CERT,
    T_EUI,
    T_HE_EUI,
    T_HE_PUBLIC,
    T_KEY,
    U_DERIVE,
    U_SIGN,
    U_UNWRAP,
    U_VERIFY,
    Keystore,
    KeystoreError,
    decode,
    encode,
    encode_key,
    image,
)
from ami.link.join import request_mic
from ami.ports.anchor import MemoryAnchor
from ami.ports.entropy import DeterministicEntropy
from ami.ports.storage import MemoryStorage
from ami.store.records import RecordStore
from fwtest import raises

EUI = b"\x02AMI\x00\x00\x00\x07"
HE = b"\x02AMI\xff\xff\x00\x01"
CERT = bytes(range(116))
CA_PUB = crypto.p256_public_key(b"\x66" * 32)
HE_PUB = crypto.p256_public_key(b"\x77" * 32)
# Distinctive key values, easy to look for in the storage.
ROOT1 = b"\xa1\x1a\xb2\x2b\xc3\x3c\xd4\x4d\xe5\x5e\xf6\x6f\x07\x70\x18\x81"
ROOT2 = b"\x2a\xa2\x3b\xb3\x4c\xc4\x5d\xd5\x6e\xe6\x7f\xf7\x80\x08\x91\x19"
DEV = b"\x5c" * 16 + b"\xc5" * 16
SIGNER_PUB = crypto.p256_public_key(b"\x31" * 32)
SIGNER2_PUB = crypto.p256_public_key(b"\x32" * 32)
SECRET = b"\x33" * 32
NOW = 1767225600
COVERED = b"join request header and payload up to the mic"
_HDR = ">BBBBII"
MICRO = sys.implementation.name == "micropython"


def _records(storage, anchor=None, secret=SECRET, seed=b"ks"):
    return RecordStore(storage, derive_storage_key(secret), DeterministicEntropy(seed), anchor,
                       (RECORD,))


def _image(signers=((3, SIGNER_PUB),)):
    return image(EUI, CERT, CA_PUB, HE, HE_PUB, ROOT1, DEV, signers)


def _provisioned(anchor=None, storage=None):
    storage = storage or MemoryStorage()
    anchor = anchor or MemoryAnchor()
    records = _records(storage, anchor)
    records.write(RECORD, _image())
    return storage, anchor, records


def _identity(extra=()):
    return [(T_EUI, EUI), (T_CERT, CERT), (T_CA_PUBLIC, CA_PUB), (T_HE_EUI, HE),
            (T_HE_PUBLIC, HE_PUB)] + list(extra)


def _raw_key(cls, key_id, usage, state, gen, expires, value):
    """A T_KEY value packed by hand (encode_key always sets the class's usage)."""
    return struct.pack(_HDR, cls, key_id, usage, state, gen, expires) + value


def _wrap_root(root, under=ROOT1):
    kek = crypto.hkdf_sha256(under, b"", ROOT_KEK_INFO, 16)
    return crypto.aes_key_wrap(kek, root)


def _chunks(value, size=8):
    return [value[i : i + size] for i in range(0, len(value) - size + 1, size)]


def _found(storage, values):
    """Any 8-byte piece of values that appears in any stored blob."""
    snap = storage.snapshot()
    for name in snap:
        for v in values:
            for c in _chunks(v):
                if c in snap[name]:
                    return name
    return None


# --- image ---------------------------------------------------------------------------------------


def test_image_round_trip_and_layout():
    data = _image(((3, SIGNER_PUB), (9, SIGNER2_PUB)))
    assert data[:11] == b"\x01\x00\x08" + EUI
    ident, keys, other = decode(data)
    assert ident == {T_EUI: EUI, T_CERT: CERT, T_CA_PUBLIC: CA_PUB, T_HE_EUI: HE,
                     T_HE_PUBLIC: HE_PUB}
    assert keys == [
        [ROOT, 0, U_DERIVE | U_UNWRAP, ACTIVE, 1, 0, ROOT1],
        [DEVICE, 0, U_SIGN, ACTIVE, 1, 0, DEV],
        [SIGNER, 3, U_VERIFY, ACTIVE, 1, 0, SIGNER_PUB],
        [SIGNER, 9, U_VERIFY, ACTIVE, 1, 0, SIGNER2_PUB],
    ]
    assert other == []
    # A key entry: class | id | usage | state | generation (4) | expires (4) | value.
    root = encode_key(ROOT, 0, PENDING, 0x01020304, 0x0A0B0C0D, ROOT2)
    assert root == b"\x01\x00\x09\x02\x01\x02\x03\x04\x0a\x0b\x0c\x0d" + ROOT2
    assert encode(((T_KEY, root),)) == b"\x09\x00\x1c" + root
    # Unknown tags are kept, in order, and survive a save.
    future = encode(_identity([(T_KEY, encode_key(ROOT, 0, ACTIVE, 1, 0, ROOT1)),
                               (T_KEY, encode_key(DEVICE, 0, ACTIVE, 1, 0, DEV)),
                               (200, b"later field"), (201, b"")]))
    assert decode(future)[2] == [(200, b"later field"), (201, b"")]
    storage = MemoryStorage()
    records = _records(storage, MemoryAnchor())
    records.write(RECORD, future)
    ks = Keystore.load(records)
    assert ks.signers(NOW) == {}
    ks.install_signer(4, SIGNER_PUB, 0, 0, NOW)
    assert decode(records.read(RECORD))[2] == [(200, b"later field"), (201, b"")]
    assert Keystore.load(records).signers(NOW) == {4: SIGNER_PUB}


def test_encoders_check_their_input():
    raises(ValueError, encode_key, ROOT, 0, ACTIVE, 1, 0, ROOT1[:15])
    raises(ValueError, encode_key, DEVICE, 0, ACTIVE, 1, 0, ROOT1)
    raises(ValueError, encode_key, SIGNER, 0, ACTIVE, 1, 0, SIGNER_PUB[:33])
    raises(ValueError, encode_key, 7, 0, ACTIVE, 1, 0, ROOT1)
    raises(ValueError, encode, ((0, b"x"),))
    raises(ValueError, encode, ((256, b"x"),))
    if not MICRO:  # 64 KiB does not fit a board-sized heap
        raises(ValueError, encode, ((T_CERT, bytes(0x10000)),))


def test_malformed_images_are_rejected():
    good_root = (T_KEY, encode_key(ROOT, 0, ACTIVE, 1, 0, ROOT1))
    good_dev = (T_KEY, encode_key(DEVICE, 0, ACTIVE, 1, 0, DEV))
    data = _image()
    cases = [
        data[:-1],  # the last key entry cut short
        data + b"\x09",  # a TLV header cut short
        data + b"\x09\x00",
        data + b"\x09\x00\x05",  # a length past the end
        encode(_identity([good_root, good_dev, (T_KEY, bytes(11))])),  # key header short
        encode(_identity([good_root, good_dev, (T_KEY, _raw_key(ROOT, 0, 9, ACTIVE, 1, 0,
                                                                ROOT1 + b"\x00"))])),
        encode(_identity([good_root, good_dev, (T_KEY, _raw_key(DEVICE, 0, 2, ACTIVE, 1, 0,
                                                                ROOT1))])),
        encode(_identity([good_root, good_dev, (T_KEY, _raw_key(0, 0, 9, ACTIVE, 1, 0, ROOT1))])),
        encode(_identity([good_root, good_dev, (T_KEY, _raw_key(4, 0, 9, ACTIVE, 1, 0, ROOT1))])),
        encode(_identity([good_root, good_dev, (T_KEY, _raw_key(ROOT, 0, 9, 0, 1, 0, ROOT1))])),
        encode(_identity([good_root, good_dev, (T_KEY, _raw_key(ROOT, 0, 9, 4, 1, 0, ROOT1))])),
        encode(_identity([good_root, good_dev, (T_EUI, EUI)])),  # an identity field twice
        encode(_identity()[1:] + [good_root, good_dev]),  # no EUI
        encode(_identity()[:4] + [good_root, good_dev]),  # no head-end public key
        encode([(T_EUI, EUI[:7])] + _identity()[1:] + [good_root, good_dev]),
        encode(_identity()[:2] + [(T_CA_PUBLIC, CA_PUB[:33])] + _identity()[3:]
               + [good_root, good_dev]),
        encode(_identity()[:3] + [(T_HE_EUI, HE + b"\x00")] + _identity()[4:]
               + [good_root, good_dev]),
        encode(_identity([good_root, good_dev])) + b"\x00\x00\x00",  # tag 0: encode refuses
    ]
    for bad in cases:
        assert raises(KeystoreError, decode, bad).reason == "keystore_malformed", bad
    # Well formed but unusable: no active root key, no device key.
    unusable = (
        encode(_identity([good_dev])),
        encode(_identity([(T_KEY, encode_key(ROOT, 0, PENDING, 2, 0, ROOT1)), good_dev])),
        encode(_identity([good_root])),
        encode(_identity([good_root, (T_KEY, encode_key(DEVICE, 0, RETIRING, 1, 0, DEV))])),
    )
    for bad in cases + list(unusable):
        records = _records(MemoryStorage())
        records.write(RECORD, bad)
        assert raises(KeystoreError, Keystore.load, records).reason == "keystore_malformed"


# --- load errors and sealing ---------------------------------------------------------------


def test_load_errors_never_default():
    storage = MemoryStorage()
    anchor = MemoryAnchor()
    records = _records(storage, anchor)
    assert raises(KeystoreError, Keystore.load, records).reason == "unprovisioned"
    records.write(RECORD, _image())
    assert Keystore.load(records).eui == EUI
    copy = storage.snapshot()
    # Rolled back: an older genuine key store put back after two more writes.
    ks = Keystore.load(records)
    ks.install_signer(4, SIGNER2_PUB, 3, 60, NOW)
    ks.install_root(2, _wrap_root(ROOT2))
    for name in copy:
        storage.write(name, copy[name])
    assert raises(KeystoreError, Keystore.load, records).reason == "keystore_rollback"
    # Deleted (after it was written): a rollback too, not "unprovisioned".
    for name in storage.names():
        storage.delete(name)
    assert raises(KeystoreError, Keystore.load, records).reason == "keystore_rollback"
    # Corrupt: both slots fail their tags.
    storage, _, records = _provisioned()
    records.write(RECORD, _image())
    for name in ("keystore.a", "keystore.b"):
        blob = bytearray(storage.read(name))
        blob[30] ^= 1
        storage.write(name, bytes(blob))
    assert raises(KeystoreError, Keystore.load, records).reason == "keystore_corrupt"
    # Zeroized: the record wiped.
    storage, _, records = _provisioned()
    records.wipe(RECORD)
    assert raises(KeystoreError, Keystore.load, records).reason == "zeroized"


def test_a_copied_key_store_is_useless_without_the_device_secret():
    storage, anchor, records = _provisioned()
    ks = Keystore.load(records)
    ks.install_root(2, _wrap_root(ROOT2))  # a pending root too
    copied = MemoryStorage(storage.snapshot())  # the files moved to another device
    other = _records(copied, MemoryAnchor(), secret=b"another device's secret")
    assert raises(KeystoreError, Keystore.load, other).reason == "keystore_corrupt"
    # No byte run of any key is in the sealed blobs (CCM: ciphertext only).
    assert _found(storage, (ROOT1, ROOT2, DEV, EUI + CERT[:8])) is None
    assert Keystore.load(_records(copied, anchor)).pending_root() == 2  # the right secret


def test_keys_stay_inside():
    _, _, records = _provisioned()
    ks = Keystore.load(records)
    names = dir(ks)
    for value in (ROOT1, DEV):
        for name in names:
            if not name.startswith("_"):
                assert getattr(ks, name) != value, name
    # What it does with them: sign, derive and mic under the right keys.
    sig = ks.sign(b"message")
    assert crypto.ecdsa_verify(crypto.p256_public_key(DEV), b"message", sig)
    assert ks.begin_join() == (1, False)
    assert ks.join_mic(COVERED) == request_mic(mic_key(ROOT1), COVERED)
    assert ks.derive(b"ikm", b"info", 48) == crypto.hkdf_sha256(b"ikm", ROOT1, b"info", 48)
    assert ks.signers(NOW) == {3: SIGNER_PUB}
    assert ks.generation(ROOT) == 1 and ks.generation(DEVICE) == 1


def test_usage_flags_limit_what_a_key_can_do():
    def store(root_usage, dev_usage):
        records = _records(MemoryStorage())
        records.write(RECORD, encode(_identity([
            (T_KEY, _raw_key(ROOT, 0, root_usage, ACTIVE, 1, 0, ROOT1)),
            (T_KEY, _raw_key(DEVICE, 0, dev_usage, ACTIVE, 1, 0, DEV)),
        ])))
        return Keystore.load(records)

    # A device key without U_SIGN cannot sign.
    ks = store(U_DERIVE | U_UNWRAP, U_VERIFY | U_DERIVE)
    assert raises(KeystoreError, ks.sign, b"m").reason == "key_usage"
    assert ks.join_mic(COVERED) == request_mic(mic_key(ROOT1), COVERED)
    # A root key with only U_SIGN: no mic, no derivation, no unwrapping.
    ks = store(U_SIGN, U_SIGN)
    ks.begin_join()
    assert raises(KeystoreError, ks.join_mic, COVERED).reason == "key_usage"
    assert raises(KeystoreError, ks.derive, b"ikm", b"info", 16).reason == "key_usage"
    assert raises(KeystoreError, ks.install_root, 2, _wrap_root(ROOT2)).reason == "key_usage"
    # Derivation but no unwrapping: joins work, a delivered root key is not opened.
    ks = store(U_DERIVE, U_SIGN)
    assert ks.derive(b"i", b"j", 16) == crypto.hkdf_sha256(b"i", ROOT1, b"j", 16)
    assert raises(KeystoreError, ks.install_root, 2, _wrap_root(ROOT2)).reason == "key_usage"
    assert ks.pending_root() is None


# --- root key delivery ---------------------------------------------------------------------


def test_delivered_root_is_pending_until_a_join_confirms_it():
    storage, anchor, records = _provisioned()
    ks = Keystore.load(records)
    assert ks.pending_root() is None
    gen_before = records.generation(RECORD)
    assert ks.install_root(2, _wrap_root(ROOT2)) is None
    assert records.generation(RECORD) == gen_before + 1  # persisted before it returned
    assert ks.pending_root() == 2 and ks.generation(ROOT) == 1
    ks = Keystore.load(_records(storage, anchor, seed=b"reboot"))  # it survives a reboot
    assert ks.pending_root() == 2 and ks.generation(ROOT) == 1
    # The next join tries the delivered root.
    assert ks.begin_join() == (2, False)
    assert ks.join_mic(COVERED) == request_mic(mic_key(ROOT2), COVERED)
    assert ks.derive(b"ikm", b"info", 16) == crypto.hkdf_sha256(b"ikm", ROOT2, b"info", 16)
    assert ks.join_confirmed() is True
    assert ks.generation(ROOT) == 2 and ks.pending_root() is None
    assert ks.join_confirmed() is False  # nothing pending any more
    payload = records.read(RECORD)
    roots = [k for k in decode(payload)[1] if k[0] == ROOT]
    assert roots == [[ROOT, 0, U_DERIVE | U_UNWRAP, ACTIVE, 2, 0, ROOT2]]
    assert ROOT1 not in payload
    # Destroyed, not only superseded: the older slot does not keep the old root either.
    key = derive_storage_key(SECRET)
    for suffix in (".a", ".b"):
        blob = storage.read(RECORD + suffix)
        plain = crypto.aes_ccm_decrypt(key, blob[7:20], blob[20:], RECORD.encode() + blob[:7],
                                       16)
        assert ROOT1 not in plain, suffix
    # Later joins use it, and the next delivery is wrapped under it.
    ks = Keystore.load(records)
    assert ks.begin_join() == (2, False)
    assert ks.join_mic(COVERED) == request_mic(mic_key(ROOT2), COVERED)
    assert ks.install_root(3, _wrap_root(ROOT1, under=ROOT1)) == "unwrap_failed"
    assert ks.install_root(3, _wrap_root(ROOT1, under=ROOT2)) is None


def test_join_under_the_active_root_leaves_a_pending_one_alone():
    _, _, records = _provisioned()
    ks = Keystore.load(records)
    ks.begin_join()  # chosen before the delivery: the active root
    ks.install_root(2, _wrap_root(ROOT2))
    assert ks.join_confirmed() is False
    assert ks.pending_root() == 2 and ks.generation(ROOT) == 1
    assert _pending_count(records) == 0  # a join under the active root counts nothing


def test_bad_deliveries_are_refused_and_change_nothing():
    _, _, records = _provisioned()
    ks = Keystore.load(records)
    gen = records.generation(RECORD)
    good = _wrap_root(ROOT2)
    tampered = bytearray(good)
    tampered[10] ^= 1
    for generation, wrapped, reason in (
        (2, _wrap_root(ROOT2, under=ROOT2), "unwrap_failed"),  # another KEK
        (2, crypto.aes_key_wrap(ROOT1, ROOT2), "unwrap_failed"),  # the root itself as KEK
        (2, bytes(tampered), "unwrap_failed"),
        (2, good[:16], "unwrap_failed"),  # too short to be a wrapped key
        (2, good + bytes(8), "unwrap_failed"),
        (2, _wrap_root(ROOT2 + ROOT1), "unwrap_failed"),  # a 32-byte key is not a root key
        (1, good, "key_generation"),  # not above the active root
        (0, good, "key_generation"),
    ):
        assert ks.install_root(generation, wrapped) == reason, (generation, reason)
    assert records.generation(RECORD) == gen and ks.pending_root() is None


def _pending_count(records):
    """Joins begun with the pending root, as persisted (its `expires` field)."""
    (k,) = [k for k in decode(records.read(RECORD))[1] if k[0] == ROOT and k[3] == PENDING]
    return k[5]


def test_pending_root_falls_back_after_root_attempts_joins_even_across_reboots():
    storage, anchor, records = _provisioned()
    ks = Keystore.load(records)
    assert ks.install_root(2, _wrap_root(ROOT2)) is None
    for i in range(ROOT_ATTEMPTS):
        gen = records.generation(RECORD)
        assert ks.begin_join() == (2, False)
        # Counted before the request leaves: a reboot mid-join spends the attempt.
        assert _pending_count(records) == i + 1 and records.generation(RECORD) == gen + 1
        assert ks.join_mic(COVERED) == request_mic(mic_key(ROOT2), COVERED)
        ks = Keystore.load(_records(storage, anchor, seed=b"boot%d" % i))
    # Attempts used up: the next join drops the pending root and uses the active one.
    assert ks.begin_join() == (1, True)
    assert ks.join_mic(COVERED) == request_mic(mic_key(ROOT1), COVERED)
    assert ks.join_confirmed() is False and ks.generation(ROOT) == 1
    ks = Keystore.load(_records(storage, anchor, seed=b"reboot"))
    assert ks.pending_root() is None and ks.begin_join() == (1, False)
    assert ROOT2 not in records.read(RECORD)
    # A new delivery starts a fresh count, even after joins with the one it replaces.
    assert ks.install_root(3, _wrap_root(ROOT2)) is None
    for _ in range(ROOT_ATTEMPTS - 1):
        assert ks.begin_join() == (3, False)
    assert ks.install_root(4, _wrap_root(ROOT2)) is None
    assert _pending_count(records) == 0
    for _ in range(ROOT_ATTEMPTS - 1):
        assert ks.begin_join() == (4, False)
    assert ks.begin_join() == (4, False) and ks.join_confirmed() is True
    assert ks.generation(ROOT) == 4 and ks.pending_root() is None


# --- command signers -----------------------------------------------------------------------


def test_signer_rotation_keeps_the_old_key_until_its_grace_ends():
    storage, anchor, records = _provisioned()
    ks = Keystore.load(records)
    ks.install_signer(4, SIGNER2_PUB, 3, 600, NOW)
    for k in decode(records.read(RECORD))[1]:
        if k[0] == SIGNER:
            assert k in ([SIGNER, 3, U_VERIFY, RETIRING, 1, NOW + 600, SIGNER_PUB],
                         [SIGNER, 4, U_VERIFY, ACTIVE, 2, 0, SIGNER2_PUB]), k
    both = {3: SIGNER_PUB, 4: SIGNER2_PUB}
    assert ks.signers(NOW) == both and ks.signers(NOW + 600) == both
    assert ks.signers(NOW + 601) == {4: SIGNER2_PUB}
    rebooted = Keystore.load(_records(storage, anchor, seed=b"reboot"))
    assert rebooted.signers(NOW + 600) == both
    assert ks.expire(NOW + 600) is False  # still in its grace: kept
    assert ks.expire(NOW + 601) is True
    assert ks.signers(NOW) == {4: SIGNER2_PUB}  # gone for good, whatever the clock says
    assert ks.expire(NOW + 10**6) is False
    signers = [k for k in decode(records.read(RECORD))[1] if k[0] == SIGNER]
    assert signers == [[SIGNER, 4, U_VERIFY, ACTIVE, 2, 0, SIGNER2_PUB]]
    assert Keystore.load(records).signers(0) == {4: SIGNER2_PUB}
    # The grace saturates; replacing a key id keeps one entry per id.
    ks.install_signer(5, SIGNER_PUB, 4, 0xFFFFFFFF, NOW)
    assert ks.signers(0xFFFFFFFF) == {4: SIGNER2_PUB, 5: SIGNER_PUB}
    ks.install_signer(5, SIGNER2_PUB, 4, 0, NOW)
    assert ks.signers(NOW) == {4: SIGNER2_PUB, 5: SIGNER2_PUB}
    assert len([k for k in decode(records.read(RECORD))[1] if k[0] == SIGNER]) == 2
