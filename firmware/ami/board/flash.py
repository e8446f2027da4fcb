"""Block devices for littlefs, and mounting them.

A board keeps its records and its secrets on two littlefs file systems, each on its own
block device: an `esp32.Partition`, an `rp2.Flash` range, or on the emulated boards a RAM
region (`RAMBlockDev`, which QEMU can save and load as a flash image). A block device that
holds no file system yet is formatted when first mounted.
"""

from ami.runtime import const

BLOCK_SIZE = const(512)
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)


class RAMBlockDev:
    """The extended block protocol (offsets within a block, as littlefs uses it) over a
    bytearray or a memory region (`uctypes.bytearray_at`)."""

    def __init__(self, mem, block_size=BLOCK_SIZE):
        if len(mem) < 2 * block_size or len(mem) % block_size:
            raise ValueError("a block device is a whole number of blocks, at least 2")
        self.mem = memoryview(mem)
        self.block_size = block_size
        self.blocks = len(mem) // block_size

    def _span(self, block, offset, n):
        start = block * self.block_size + offset
        if block < 0 or offset < 0 or start + n > len(self.mem):
            raise OSError(22)  # EINVAL: outside the device
        return start

    def readblocks(self, block, buf, offset=0):
        """Copy len(buf) bytes from block (at offset) into buf."""
        start = self._span(block, offset, len(buf))
        buf[:] = self.mem[start : start + len(buf)]

    def writeblocks(self, block, buf, offset=0):
        """Write buf at block (at offset); RAM needs no erase."""
        start = self._span(block, offset, len(buf))
        self.mem[start : start + len(buf)] = buf

    def ioctl(self, op, arg):
        """Block count and size; init, deinit, sync and erase succeed at once."""
        if op == _IOCTL_BLOCK_COUNT:
            return self.blocks
        if op == _IOCTL_BLOCK_SIZE:
            return self.block_size
        return 0


def memory_region(address, size):
    """The memory at address as a bytearray (no copy): an emulated board's spare RAM."""
    import uctypes

    return uctypes.bytearray_at(address, size)


def block_device(spec):
    """The block device a profile names: ("ram", address, size), ("partition", label)
    (esp32) or ("flash", start, size) (rp2)."""
    kind = spec[0]
    if kind == "ram":
        return RAMBlockDev(memory_region(spec[1], spec[2]))
    if kind == "partition":
        import esp32

        found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=spec[1])
        if not found:
            raise OSError(2)  # ENOENT: the partition table lacks it
        return found[0]
    if kind == "flash":
        import rp2

        return rp2.Flash(start=spec[1], len=spec[2])
    raise ValueError("unknown block device %r" % kind)


def mount(bdev, path):
    """Mount bdev's littlefs at path, formatting it first if it holds none; True if it
    was formatted."""
    import vfs

    formatted = False
    try:
        fs = vfs.VfsLfs2(bdev)
    except OSError:  # never formatted (an erased or zeroed device)
        vfs.VfsLfs2.mkfs(bdev)
        fs = vfs.VfsLfs2(bdev)
        formatted = True
    vfs.mount(fs, path)
    return formatted
