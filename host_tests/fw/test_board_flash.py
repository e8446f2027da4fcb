"""The board runtime's flash and boot pieces (ami.board): the RAM block device, littlefs
on it as a flash image, the seeded entropy's boot counter, the board profiles, the
watchdog port."""

from ami.board import config, flash
from ami.ports.entropy import DeterministicEntropy, seeded_entropy
from ami.ports.storage import FileStorage, MemoryStorage
from fwtest import raises


def test_ram_block_device():
    mem = bytearray(4 * 512)
    dev = flash.RAMBlockDev(mem)
    assert dev.ioctl(4, 0) == 4 and dev.ioctl(5, 0) == 512 and dev.ioctl(6, 1) == 0
    dev.writeblocks(1, b"abc", 510)
    buf = bytearray(3)
    dev.readblocks(1, buf, 510)
    assert bytes(buf) == b"abc" and mem[1022:1025] == b"abc"
    raises(OSError, dev.writeblocks, 3, b"xy", 511)
    raises(OSError, dev.readblocks, 4, buf)
    raises(ValueError, flash.RAMBlockDev, bytearray(700))


def test_littlefs_on_a_ram_block_device_survives_as_an_image():
    """Where the runtime has littlefs (the unix port, boards): format, store, copy the
    bytes as QEMU saves a flash image, mount the copy. CPython has no vfs module."""
    try:
        import vfs
    except ImportError:
        return
    mem = bytearray(64 * 512)
    assert flash.mount(flash.RAMBlockDev(mem), "/amitest") is True
    try:
        FileStorage("/amitest/d").write("keystore.a", b"k" * 600)
    finally:
        vfs.umount("/amitest")
    image = bytearray(mem)
    assert flash.mount(flash.RAMBlockDev(image), "/amitest") is False
    try:
        assert FileStorage("/amitest/d").read("keystore.a") == b"k" * 600
    finally:
        vfs.umount("/amitest")


def test_seeded_entropy_advances_its_boot_counter_before_drawing():
    store = MemoryStorage()
    first = seeded_entropy(store, b"seed").random_bytes(32)
    assert store.read("boots") == b"\x00\x00\x00\x01"
    assert first == DeterministicEntropy(b"seed/boot0").random_bytes(32)
    second = seeded_entropy(store, b"seed").random_bytes(32)
    assert second != first and store.read("boots") == b"\x00\x00\x00\x02"


def test_profiles():
    mps2 = config.profile("mps2")
    data, secure = mps2["data"], mps2["secure"]
    assert data[0] == secure[0] == "ram"
    assert data[1] + data[2] <= secure[1], "the secure partition lies apart from the records"
    assert mps2["relay"] is None and mps2["wdt_ms"] == 0
    pico = config.profile("rp2", relay=2)
    assert pico["relay"] == 2 and pico["button"] == 14 and pico["wdt_ms"] == 8000
    raises(ValueError, config.profile, "no-such-board")
    if config.detect() is None:  # the unix port and CPython are no board
        raises(ValueError, config.profile)


def test_no_watchdog_where_machine_has_none():
    """machine.WDT is absent on the unix port, CPython and the emulated boards; a board
    that has one gets it (and this test would start it, so it runs only where none is)."""
    try:
        from machine import WDT  # noqa: F401
    except ImportError:
        from ami.ports.watchdog import watchdog

        assert watchdog(1000) is None
