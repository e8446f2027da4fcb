"""Boot a board from its profile (ami.board.config) and serve the node protocol.

The order matters for the heap and for safety: the code, then the P-256 tables (they
want contiguous memory), then the file systems, the device secret, the entropy (its boot
counter is stored before any byte is drawn), the meter and its pins, and the watchdog
last, once nothing slow is left before the loop.
"""

import gc
import json

from ami.board.node import NodeLoop

# Where a profile's block devices are mounted.
SECURE = "/secure"
DATA = "/data"


def _read(storage, name):
    data = storage.read(name)
    if data is None:
        raise OSError("not provisioned: %s missing" % name)
    return data


def storage_root(spec, mount_point):
    """The directory holding a profile's storage, mounting its block device if needed."""
    if spec[0] == "dir":
        return spec[1]
    from ami.board import flash

    flash.mount(flash.block_device(spec), mount_point)
    return mount_point


def device_secret(provisioned):
    """The device secret: the provisioned half bound to machine.unique_id() where the board
    has one (ami.ports.secret); where none exists (the emulated boards, host nodes) the
    provisioned secret alone."""
    from ami.ports import secret

    return secret.device_secret(provisioned) if secret.chip_id() else provisioned


def entropy(secure):
    """The seeded generator where a seed was provisioned (emulated boards, repeatable
    benches: ami.ports.entropy.seeded_entropy, not a true RNG), else the board's RNG."""
    from ami.ports import entropy as E

    seed = secure.read("seed.bin")
    return E.seeded_entropy(secure, seed) if seed else E.SystemEntropy()


def _transport(uart):
    from ami.ports import transport

    if uart is None:
        return transport.stdio_transport()
    from machine import UART

    uid, baud, tx, rx = uart
    port = UART(uid, baud) if tx is None else UART(uid, baud, tx=tx, rx=rx)
    return transport.StreamTransport(port, port)


def build(prof, link=None):
    """The NodeLoop of a board profile: storage mounted, meter built, pins wired; over
    link (a transport port), or the profile's stream."""
    from ami.crypto import p256
    from ami.meter import Config, Meter

    # gpio and transport are loaded before the tables too, though used later: a module
    # loaded after them would split the heap (gpio: the meter's SimRelay).
    from ami.ports import gpio, transport  # noqa: F401
    from ami.ports.anchor import StorageAnchor
    from ami.ports.metrology import SimMetrology
    from ami.ports.storage import FileStorage

    gc.collect()
    p256.warm()  # before the meter: the long-lived tables get contiguous memory

    secure_dir = storage_root(prof["secure"], SECURE)
    secure = FileStorage(secure_dir)
    records = FileStorage(storage_root(prof["data"], DATA))
    raw = secure.read("config.json")
    cfg = Config(**json.loads(raw)) if raw else Config()
    relay = button = tamper = None
    if prof["relay"] is not None or prof["button"] is not None or prof["tamper"] is not None:
        from ami.ports import board

        if prof["relay"] is not None:
            relay = board.relay(prof["relay"], prof["relay_active_high"])
        if prof["button"] is not None:
            button = board.button(prof["button"], prof["button_active_low"])
        if prof["tamper"] is not None:
            tamper = board.tamper(prof["tamper"], prof["tamper_active_high"])
    meter = Meter(records, device_secret(_read(secure, "secret.bin")), entropy(secure),
                  SimMetrology(secure.read("seed.bin") or b""), cfg, relay=relay,
                  anchor=StorageAnchor(FileStorage(secure_dir + "/anchor")))
    dog = None
    if prof["wdt_ms"]:
        from ami.ports.watchdog import watchdog

        dog = watchdog(prof["wdt_ms"])
    clock = None
    if tamper is not None:  # the clock only stamps a tamper event between two requests
        from ami.ports.clock import SystemClock

        clock = SystemClock()
    return NodeLoop(meter, link or _transport(prof["uart"]), button, tamper, dog, clock)


def provision(prof, secure_files, record_files):
    """Factory provisioning, run by the host over the raw REPL before the loop starts
    (amitools.sim.hil): erase the records, the anchors and the boot counter, then write
    secure_files (secret.bin, seed.bin, config.json) and record_files (the key store
    image), each a dict name -> bytes."""
    from ami.ports.storage import FileStorage

    secure_dir = storage_root(prof["secure"], SECURE)
    secure = FileStorage(secure_dir)
    records = FileStorage(storage_root(prof["data"], DATA))
    anchors = FileStorage(secure_dir + "/anchor")
    for store in (records, anchors):
        for name in store.names():
            store.delete(name)
    secure.delete("boots")
    secure.delete("seed.bin")  # a board with a RNG is provisioned without one
    for name in secure_files:
        secure.write(name, secure_files[name])
    for name in record_files:
        records.write(name, record_files[name])


def host(node_dir):
    """A host node directory as a board profile (ami.unixnode): records in NODE_DIR/flash,
    the rest in NODE_DIR; no pins, no watchdog, the process's stdin/stdout as the stream."""
    return {"data": ("dir", node_dir + "/flash"), "secure": ("dir", node_dir),
            "relay": None, "button": None, "tamper": None, "uart": None, "wdt_ms": 0}


def serve(prof):
    """Build the board and serve until the host says X; Ctrl-C works again afterwards."""
    loop = build(prof)
    try:
        loop.run()
    finally:
        try:
            import micropython

            micropython.kbd_intr(3)
        except (ImportError, AttributeError):
            pass
    return loop


def main(name=None, **overrides):
    """The board entry point (main.py): this board's profile, with overrides."""
    from ami.board import config

    return serve(config.profile(name, **overrides))
