"""A meter as a process of the MicroPython unix port, driven over stdin/stdout.

    micropython -m ami.unixnode NODE_DIR BOOT

NODE_DIR holds `secret.bin` (the device-unique secret), `seed.bin` (entropy seed, so a run
is repeatable), `config.json` (Meter configuration), `flash/` (the node's storage: its
files survive a restart, as flash survives a power cut) and `anchor/` (the anchor port,
standing for a secure element's monotonic counters: apart from `flash/`). BOOT numbers the
power-on, so a restarted node never replays the entropy of an earlier boot.

The harness owns time. Requests and replies are SLIP frames, as a board speaks over USB:
request `op (1) || now_ms (8) || data`, op S start, R receive (data = radio frame), T tick,
B local button press, Z tamper input, Q stats, X exit. The node answers with `F || frame`
per frame to transmit, then `D || next_wakeup_ms (8, all ones for none) || reason` (empty reason:
accepted).
"""

import json
import sys

from ami.meter import Config, Meter
from ami.ports.anchor import StorageAnchor
from ami.ports.entropy import DeterministicEntropy
from ami.ports.metrology import SimMetrology
from ami.ports.storage import FileStorage
from ami.ports.transport import stdio_transport

_NONE = b"\xff" * 8


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _done(transport, meter, reason):
    wake = meter.next_wakeup()
    head = _NONE if wake is None else wake.to_bytes(8, "big")
    transport.send(b"D" + head + (reason or "").encode())


def serve(node_dir, boot):
    """Run the request loop until X or end of input."""
    import select

    from ami.crypto import p256

    p256.warm()  # first: the long-lived tables get contiguous memory
    secret = _read(node_dir + "/secret.bin")
    seed = _read(node_dir + "/seed.bin")
    try:
        cfg = Config(**json.loads(_read(node_dir + "/config.json")))
    except OSError:
        cfg = Config()
    storage = FileStorage(node_dir + "/flash")
    entropy = DeterministicEntropy(seed + b"/boot" + str(boot).encode())
    anchor = StorageAnchor(FileStorage(node_dir + "/anchor"))
    meter = Meter(storage, secret, entropy, SimMetrology(seed), cfg, anchor=anchor)
    transport = stdio_transport()
    poller = select.poll()
    poller.register(sys.stdin, select.POLLIN)
    while True:
        requests = transport.poll()
        if not requests:
            if transport.eof:
                return
            poller.poll(-1)
            continue
        for req in requests:
            op = req[0:1]
            now = int.from_bytes(req[1:9], "big")
            reason = None
            if op == b"S":
                out = meter.start(now)
            elif op == b"R":
                reason, out = meter.receive(req[9:], now)
            elif op == b"T":
                out = meter.tick(now)
            elif op == b"B":
                meter.press_button(now)
                out = []
            elif op == b"Z":
                meter.tamper(now)
                out = []
            elif op == b"Q":
                out = []
                transport.send(b"J" + json.dumps(meter.info()).encode())
            elif op == b"X":
                return
            else:
                out = []
                reason = "bad_request"
            for fr in out:
                transport.send(b"F" + fr)
            _done(transport, meter, reason)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
