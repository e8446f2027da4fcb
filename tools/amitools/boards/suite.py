"""The firmware test suite (host_tests/fw) on the emulated boards, over their UART.

Both boards boot the same ROMFS test image (firmware in lib/, compiled tests, the project's
runner host_tests/mprun.py, the compact vector subsets, and a RAM disk with littlefs for the
tests that write files) and run in parallel. Each test module runs after a soft reset, so it
has the whole heap to itself, as in `make test-micropython`. Each board ends with one line,
``qemu-an385: N passed, N failed``.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from amitools import REPO
from amitools.boards import qemu
from amitools.boards.build import BOARDS, Board, Variant, build
from amitools.boards.romfs import build_image, stage

FW_TESTS = REPO / "host_tests" / "fw"
VECTORS = REPO / "build" / "vectors"
RAMDISK = REPO / "boards" / "qemu" / "ramdisk.py"
# A test module that prints nothing for this long has hung (the slowest takes about a minute).
MODULE_TIMEOUT_S = 900.0
# The suite's heap, as the unix-port suite's (-X heapsize=256K): some test modules hold several
# meters at once. The firmware's own budget is measured by `ami heapbench` (make bench).
TEST_VARIANT = Variant(heap=256 * 1024)
RESULT = re.compile(r"RESULT (\d+) (\d+)")

# Run on the board after each soft reset: the RAM disk, the settings the tests read through
# ami.runtime.getenv (bare-metal os has no environment), then one module.
SETUP = """\
import sys, ramdisk
ramdisk.mount("/flash")
sys.path.append("/rom/tests")
import ami.runtime
ami.runtime.board_env["AMI_VECTORS"] = "/rom/vectors"
ami.runtime.board_env["AMI_TMP"] = "/flash/tmp"
del ami, ramdisk
"""
RUN = """\
import mprun
print("RESULT %d %d" % mprun.run("/rom/tests", [{module!r}]))
"""


def test_modules() -> list[str]:
    """The firmware test modules, sorted."""
    return sorted(p.stem for p in FW_TESTS.glob("test_*.py"))


def test_image() -> Path:
    """The ROMFS image the suite boots: firmware, tests, runner, vectors and the RAM disk."""
    if not VECTORS.exists():
        from amitools.reference.vectors import build as build_vectors

        build_vectors(str(VECTORS))
    modules = {f"tests/{p.stem}.mpy": p for p in FW_TESTS.glob("*.py")}
    modules["tests/mprun.mpy"] = REPO / "host_tests" / "mprun.py"
    modules["lib/ramdisk.mpy"] = RAMDISK
    files = {f"vectors/{p.name}": p for p in VECTORS.glob("*.json")}
    return build_image(stage("tests", modules, files))


@dataclass
class BoardRun:
    """One board's results: counts, the output of failed modules, and the time taken."""

    key: str
    passed: int = 0
    failed: int = 0
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The closing line, e.g. "qemu-an385: 333 passed, 0 failed"."""
        return f"qemu-{self.key}: {self.passed} passed, {self.failed} failed"


def run_module(b: qemu.QemuBoard, module: str) -> tuple[int, int, str]:
    """Soft-reset the board and run one test module: (passed, failed, output)."""
    b.soft_reset()
    b.exec(SETUP)
    out = b.exec(RUN.format(module=module), timeout=MODULE_TIMEOUT_S)
    found = RESULT.search(out)
    if found is None:
        raise qemu.BoardError("the runner did not report:\n" + out)
    return int(found.group(1)), int(found.group(2)), out


def run_board(key: str, board: Board, firmware: Path, image: Path, modules: list[str],
              result: BoardRun, lock: threading.Lock) -> None:
    """Run every module on one board, rebooting it after a module that hangs or crashes."""
    start = time.monotonic()
    b = None
    try:
        for module in modules:
            if b is None:
                b = qemu.start(board, firmware, image)
            t0 = time.monotonic()
            try:
                passed, failed, out = run_module(b, module)
            except qemu.BoardError as exc:
                passed, failed, out = 0, 1, f"ERROR {module}: {exc}"
                b.close()
                b = None
            result.passed += passed
            result.failed += failed
            with lock:
                if failed:
                    print(out.rstrip())
                print(f"  qemu-{key} {module}: {passed} passed, {failed} failed "
                      f"({time.monotonic() - t0:.0f} s)", flush=True)
    except Exception as exc:  # the board itself failed: report it, count it, end this board
        result.failed += 1
        with lock:
            print(f"ERROR qemu-{key}: {exc}", flush=True)
    finally:
        if b is not None:
            b.close()
        result.seconds = time.monotonic() - start


def run(keys: list[str], modules: list[str] | None = None) -> list[BoardRun]:
    """Build the boards and the test image, run the suite on every board in parallel."""
    image = test_image()
    firmware = {k: build(BOARDS[k], TEST_VARIANT) for k in keys}
    modules = modules or test_modules()
    results = [BoardRun(k) for k in keys]
    lock = threading.Lock()
    # Daemon threads: on Ctrl-C the main thread leaves at once and kills the emulators,
    # instead of waiting for the boards to finish their modules.
    threads = [
        threading.Thread(target=run_board, daemon=True,
                         args=(r.key, BOARDS[r.key], firmware[r.key], image, modules, r, lock))
        for r in results
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)
    finally:
        qemu.kill_all()
    return results
