"""Device-side link benchmarks; runs unchanged on MicroPython and CPython.

    micropython mplinkbench.py NODE_DIR

NODE_DIR (written by amitools.sim.nodedir) holds a provisioned device: `flash/` with its
key store image, `secret.bin`, `he.key` (the head end's private key) and `root.key` (the
registry's copy of the device root key), used here only to play the head end's side of the
join outside the timed sections. Prints one JSON line: medians in microseconds of the
device's join computation and of the receive path of a secured downlink (CRC, parse, replay
check, CCM, dispatch).
"""

import json
import sys

try:
    from time import ticks_diff, ticks_us
except ImportError:
    from time import perf_counter

    def ticks_us():
        return int(perf_counter() * 1000000)

    def ticks_diff(a, b):
        return a - b


from ami import crypto
from ami.keyschedule import derive_storage_key, mic_key
from ami.keystore import Keystore
from ami.link import frame, join, messages
from ami.link.headend_join import HeadEndJoin, open_request
from ami.meter import Meter
from ami.outcomes import Rejected
from ami.ports.entropy import DeterministicEntropy
from ami.ports.metrology import SimMetrology
from ami.ports.storage import FileStorage, MemoryStorage
from ami.store.records import RecordStore


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def load(node_dir):
    read = FileStorage(node_dir).read
    return (FileStorage(node_dir + "/flash").snapshot(), read("secret.bin"), read("he.key"),
            read("root.key"))


def bench_join(image, secret, he_private, root_key, rounds):
    """Device work of one join: request (DevNonce record, ephemeral key, mic) and response
    (verify the head end, ECDH, key schedule, sign, confirm); the head end's part untimed."""
    entropy = DeterministicEntropy(b"join bench")
    records = RecordStore(MemoryStorage(dict(image)), derive_storage_key(secret), entropy)
    ks = Keystore.load(records)
    dj = join.DeviceJoin(ks, records, entropy)
    he_entropy = DeterministicEntropy(b"he bench")
    mic_keys = (mic_key(root_key),)
    times = []
    for i in range(rounds):
        t0 = ticks_us()
        req = dj.request()
        t1 = ticks_us()
        m1 = frame.decode(req)
        he = HeadEndJoin(ks.he_eui, he_private, he_entropy)
        resp = frame.decode(he.respond(m1, open_request(m1, mic_keys), root_key, i + 1))
        t2 = ticks_us()
        out = dj.respond(resp, i)
        t3 = ticks_us()
        if isinstance(out, Rejected):
            raise RuntimeError("join bench: " + out.reason)
        times.append(ticks_diff(t1, t0) + ticks_diff(t3, t2))
    return times


def bench_receive(image, secret, rounds):
    """Meter.receive of secured ACK downlinks (13 sequence numbers, 88-byte frames)."""
    storage = MemoryStorage(dict(image))
    entropy = DeterministicEntropy(b"rx bench")
    records = RecordStore(storage, derive_storage_key(secret), entropy)
    k_up = b"\x01" * 16
    k_down = b"\x02" * 16
    records.write("session", (7).to_bytes(4, "big") + k_up + k_down)
    records.write("txctr", (0).to_bytes(4, "big"))
    records.write("rxfloor", b"")
    meter = Meter(storage, secret, entropy, SimMetrology(b"rx"))
    if meter.state != "active":
        raise RuntimeError("receive bench: no session")
    ks = meter.keys
    frames = []
    for i in range(rounds):
        seqs = [i * 13 + j for j in range(13)]
        ack = messages.encode_ack(seqs)
        frames.append(frame.seal(k_down, frame.DATA, ks.he_eui, ks.eui, frame.KEY_SESSION, 7,
                                 i + 1, ack, True))
    times = []
    now = 1767225600000
    for i in range(rounds):
        for _ in range(13):  # queued readings i * 13 .. i * 13 + 12, for the ACK to drop
            meter.queue.append(0, 0)
        t0 = ticks_us()
        reason, _ = meter.receive(frames[i], now)
        t1 = ticks_us()
        if reason:
            raise RuntimeError("receive bench: " + reason)
        times.append(ticks_diff(t1, t0))
    return times, len(frames[0])


def main():
    image, secret, he_private, root_key = load(sys.argv[1])
    join_times = bench_join(image, secret, he_private, root_key, 9)
    rx_times, size = bench_receive(image, secret, 101)
    print(json.dumps({
        "runtime": sys.implementation.name,
        "backend": crypto.BACKEND,
        "join_us": median(join_times),
        "join_first_us": join_times[0],
        "receive_us": median(rx_times),
        "frame_bytes": size,
    }))


main()
