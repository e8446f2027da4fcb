"""An emulated board boots, answers over its UART, and its QEMU never outlives the command
that started it: not after a normal exit, not after SIGTERM, not after Ctrl-C (SIGINT)."""

import os
import signal
import subprocess
import sys
import time

from amitools.boards import qemu
from amitools.boards.build import BOARDS, build
from amitools.boards.romfs import firmware_image


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_boot_exec_and_close():
    board = BOARDS["an385"]
    with qemu.boot(board, build(board), firmware_image()) as b:
        pid = b.proc.pid
        out = b.exec("import sys, cryptolib, vfs\nprint(sys.platform, '/rom/lib' in sys.path)")
        assert out.split() == ["qemu", "True"]
        assert "3" in b.exec("from ami.runtime import getenv\nprint(getenv('X', 3))")
    assert not _alive(pid)


def _run_and_signal(sig: int) -> None:
    build(BOARDS["an385"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "amitools", "board", "run", "--board", "an385"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "UART at /dev/pts/" in line, line
        pids = _qemu_children(proc.pid)
        assert len(pids) == 1
        proc.send_signal(sig)
        proc.wait(30)
        deadline = time.monotonic() + 10
        while _alive(pids[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pids[0])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _qemu_children(parent: int) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                comm, rest = f.read().split(") ", 1)
        except OSError:
            continue
        if comm.endswith("(qemu-system-arm") and int(rest.split()[1]) == parent:
            out.append(int(pid))
    return out


def test_sigterm_kills_the_emulator():
    _run_and_signal(signal.SIGTERM)


def test_ctrl_c_kills_the_emulator():
    _run_and_signal(signal.SIGINT)
