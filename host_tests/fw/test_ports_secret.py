"""Device secret port: the storage key of a board binds its chip id and its provisioned
secret; both runtimes."""

import sys

from ami.keyschedule import derive_storage_key
from ami.ports import secret
from ami.ports.entropy import DeterministicEntropy
from ami.ports.storage import MemoryStorage
from ami.store.records import RecordCorrupt, RecordStore
from fwtest import raises, unhex

PROVISIONED = bytes(range(32))
CHIP = unhex("e66038b713a1")  # an RP2040-style unique id
# HKDF-SHA-256(PROVISIONED, salt CHIP, "AMI device secret", 32), computed with the
# cryptography package's HKDF (RFC 5869), not with ami.crypto.
EXPECTED = unhex("6debe6603bfdcc7d879e2526fec63393521e4dcda4872429118ae74a90a1c2e2")


def test_known_answer_and_binding():
    assert secret.device_secret(PROVISIONED, CHIP) == EXPECTED
    assert secret.device_secret(bytearray(PROVISIONED), CHIP) == EXPECTED
    other_chip = secret.device_secret(PROVISIONED, CHIP[:-1] + b"\x00")
    other_secret = secret.device_secret(PROVISIONED[:-1] + b"\x00", CHIP)
    assert len({EXPECTED, other_chip, other_secret}) == 3


def test_a_record_store_moved_to_another_chip_opens_nothing():
    storage = MemoryStorage()
    key = derive_storage_key(secret.device_secret(PROVISIONED, CHIP))
    RecordStore(storage, key, DeterministicEntropy(b"s")).write("keystore", b"keys")
    moved = derive_storage_key(secret.device_secret(PROVISIONED, b"\x01" * 6))
    raises(RecordCorrupt, RecordStore(storage, moved, DeterministicEntropy(b"t")).read,
           "keystore")
    assert RecordStore(storage, key, DeterministicEntropy(b"u")).read("keystore") == b"keys"


def test_bad_arguments_and_no_chip_id():
    raises(ValueError, secret.device_secret, PROVISIONED[:15], CHIP)
    raises(ValueError, secret.device_secret, "text secret here!", CHIP)
    raises(ValueError, secret.device_secret, PROVISIONED, b"")
    if secret.chip_id() is None:  # the unix port and CPython have no machine.unique_id()
        raises(ValueError, secret.device_secret, PROVISIONED)


class _Machine:
    """A board's machine module, as far as the port uses it."""

    @staticmethod
    def unique_id():
        return bytearray(CHIP)


def test_the_chip_id_comes_from_machine_unique_id():
    saved = sys.modules.get("machine")
    sys.modules["machine"] = _Machine
    try:
        assert secret.chip_id() == CHIP
        assert secret.device_secret(PROVISIONED) == EXPECTED
    finally:
        if saved is None:
            del sys.modules["machine"]
        else:
            sys.modules["machine"] = saved
