"""Board profiles: where the storage lives, which pins drive the relay and read the
button and tamper switch, which stream carries the node protocol, the watchdog timeout.

Profile keys (docs/boards.md has the tables):
- data, secure: ("dir", path) on a file system already mounted (the root littlefs of an
  ESP32 or RP2 build, a host directory), or a block device to mount littlefs from
  (ami.board.flash.block_device: ("ram", address, size), ("partition", label),
  ("flash", start, size)); the secure one holds the provisioned half of the device
  secret, the entropy seed, the anchors and the boot counter, apart from the records;
- relay, button, tamper: machine.Pin ids (None: the board has none; the host sends B and
  Z requests instead); relay_active_high, button_active_low, tamper_active_high;
- uart: None for the REPL's stream (USB-CDC or the board's console UART), else
  (id, baudrate, tx, rx) for a machine.UART (tx, rx None: the port's default pins);
- wdt_ms: the watchdog timeout (0: none).
"""

import sys

_BASE = {
    "relay": None, "button": None, "tamper": None, "relay_active_high": True,
    "button_active_low": True, "tamper_active_high": True, "uart": None, "wdt_ms": 8000,
}

# The emulated MPS2 boards (AN385, AN500): the 4 MB of RAM at 0x20000000 are unused by the
# MicroPython build; QEMU saves and loads them as the flash image (docs/boards.md).
MPS2_DATA = ("ram", 0x20000000, 0x40000)
MPS2_SECURE = ("ram", 0x20040000, 0x10000)

PROFILES = {
    "mps2": {"data": MPS2_DATA, "secure": MPS2_SECURE, "wdt_ms": 0},
    # ESP32 DevKitC: relay driver on GPIO26, the BOOT button (GPIO0, to ground) as restore
    # button, a tamper loop to ground on GPIO27 (pull-up: a cut wire reads as tamper).
    "esp32": {"data": ("dir", "/ami/data"), "secure": ("dir", "/ami/secure"),
              "relay": 26, "button": 0, "tamper": 27},
    # Raspberry Pi Pico (RP2040/RP2350): relay GP15, button GP14 to ground, tamper GP13.
    "rp2": {"data": ("dir", "/ami/data"), "secure": ("dir", "/ami/secure"),
            "relay": 15, "button": 14, "tamper": 13},
}


def detect():
    """The profile name of this board: by the modules it offers (esp32, rp2), else by the
    machine name (the emulated MPS2 boards have no module of their own); None elsewhere
    (the unix port, CPython)."""
    for name in ("esp32", "rp2"):
        try:
            __import__(name)
            return name
        except ImportError:
            pass
    machine = getattr(sys.implementation, "_machine", "")
    if "mps2" in machine.lower():
        return "mps2"
    return None


def profile(name=None, **overrides):
    """The profile of name (default: detect()) with overrides applied."""
    name = name or detect()
    if name not in PROFILES:
        raise ValueError("no board profile %r: pass data= and secure= for this board" % name)
    out = dict(_BASE)
    out.update(PROFILES[name])
    out.update(overrides)
    return out
