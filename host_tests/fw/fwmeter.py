"""A provisioned meter for firmware tests (test_meter, test_meter_lifecycle, test_board_node):
its identity, a key store written with firmware code only, and frame helpers. A module of
its own, so a test module that needs a meter does not load test_meter's tests too."""

import sys

from ami import crypto
from ami.keystore import image
from ami.link import frame
from ami.link.records import RecordStore, derive_storage_key
from ami.meter import Config, Meter
from ami.ports.entropy import DeterministicEntropy
from ami.ports.metrology import SimMetrology

EUI = b"\x02AMI\x00\x00\x00\x01"
HE = b"\x02AMI\xff\xff\x00\x01"
SECRET = b"\x33" * 32
K_UP = b"\x01" * 16
K_DOWN = b"\x02" * 16
GEN = 5
T0 = 1767225600000
MICRO = sys.implementation.name == "micropython"


def provision(storage, with_session=True):
    """A key store (and optionally an active session) written with firmware code only."""
    records = RecordStore(storage, derive_storage_key(SECRET), DeterministicEntropy(b"p"))
    records.write("keystore", image(
        EUI, bytes(116), crypto.p256_public_key(b"\x66" * 32), HE,
        crypto.p256_public_key(b"\x77" * 32), b"\x44" * 16, b"\x55" * 32, (),
    ))
    if with_session:
        records.write("session", GEN.to_bytes(4, "big") + K_UP + K_DOWN)
        records.write("txctr", (0).to_bytes(4, "big"))
        records.write("rxfloor", b"")
    return storage


def meter(storage, boot=0, config=None):
    return Meter(storage, SECRET, DeterministicEntropy(b"boot%d" % boot), SimMetrology(b"m"),
                 config or Config(reserve=8))


def down(fcnt, plaintext, key=K_DOWN, gen=GEN, dst=EUI):
    return frame.seal(key, frame.DATA, HE, dst, frame.KEY_SESSION, gen, fcnt, plaintext, True)


def uplinks(frames):
    """(key generation, fcnt, plaintext) of uplinks sent by the meter."""
    out = []
    for data in frames:
        fr = frame.decode(data)
        out.append((fr.key_gen, fr.fcnt, frame.open_frame(K_UP, fr)))
    return out
