"""A littlefs filesystem in the emulated boards' spare RAM, for the test and benchmark images.

The MPS2 boards have 4 MB of RAM at 0x20000000 that the MicroPython build leaves alone: it is
outside the GC heap, so files there survive a soft reset, and the blocks are read and written
in place through a uctypes view (no copy of the disk on the heap).
"""

import uctypes
import vfs

BASE = 0x20000000
BLOCK_SIZE = 4096
BLOCKS = 256  # 1 MB


class RamBlocks:
    """A block device (littlefs's extended interface) over a fixed RAM region."""

    def __init__(self, base=BASE, blocks=BLOCKS, block_size=BLOCK_SIZE):
        self.mem = memoryview(uctypes.bytearray_at(base, blocks * block_size))
        self.blocks = blocks
        self.block_size = block_size

    def readblocks(self, block, buf, offset=0):
        start = block * self.block_size + offset
        buf[:] = self.mem[start : start + len(buf)]

    def writeblocks(self, block, buf, offset=0):
        start = block * self.block_size + offset
        self.mem[start : start + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.blocks
        if op == 5:  # block size
            return self.block_size
        if op == 6:  # erase: RAM needs none
            return 0
        return None


def mount(path="/flash", fresh=True):
    """Mount the RAM disk at path, formatting it first if fresh (or if it holds no fs)."""
    bd = RamBlocks()
    if fresh:
        vfs.VfsLfs2.mkfs(bd)
    try:
        fs = vfs.VfsLfs2(bd)
    except OSError:
        vfs.VfsLfs2.mkfs(bd)
        fs = vfs.VfsLfs2(bd)
    vfs.mount(fs, path)
    return fs
