"""Boot an emulated board under qemu-system-arm and talk to it over its UART.

    with boot(BOARDS["an385"], elf, romfs=image) as b:
        out = b.exec("import ami.meter; print('ok')")
        b.soft_reset()

The UART is a pseudo-terminal (``b.port``, a path like /dev/pts/7) that pyserial and mpremote
open like a board's /dev/ttyACM0; ``b.exec`` runs code through mpremote's raw REPL on it.
QEMU runs in a process group of its own and is killed (SIGKILL to the group) on every way out:
the context manager's exit, ``close()``, interpreter exit (atexit), SIGTERM/SIGHUP once
``kill_on_signals()`` is installed, and the death of the thread that started it (Linux
PR_SET_PDEATHSIG), so no emulator outlives the command that started it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from amitools.boards.build import Board

QEMU = "qemu-system-arm"
# How long QEMU may take to announce its pty, and the raw REPL to answer after a reset.
BOOT_TIMEOUT_S = 30.0
PTY_LINE = re.compile(rb"char device redirected to (/dev/pts/\d+)")

_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


class BoardError(RuntimeError):
    """The emulated board did not boot, answer, or finish in time."""


def _die_with_parent() -> None:
    # In the child between fork and exec: SIGKILL it when the thread that spawned it dies.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    if proc.stdout is not None:
        proc.stdout.close()
    with _live_lock:
        _live.discard(proc)


@atexit.register
def kill_all() -> None:
    """Kill every emulator this process started and that is still running."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        _kill(proc)


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def kill_on_signals() -> None:
    """Turn SIGTERM and SIGHUP into SystemExit in the main thread, so every `with boot(...)`
    unwinds and kills its emulator (Ctrl-C already raises KeyboardInterrupt)."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _raise_exit)


def qemu_command(board: Board, firmware: Path, romfs: Path | None = None,
                 extra: tuple[str, ...] = ()) -> list[str]:
    """The qemu-system-arm command line that boots firmware with an optional ROMFS image."""
    cmd = [QEMU, "-machine", board.machine, "-nographic", "-monitor", "null", "-semihosting",
           "-serial", "pty", "-kernel", str(firmware)]
    if romfs is not None:
        if romfs.stat().st_size > board.romfs_size:
            raise ValueError(f"{romfs} is larger than the ROMFS partition ({board.romfs_size})")
        cmd += ["-device", f"loader,file={romfs},addr={board.romfs_addr:#x},force-raw=on"]
    return cmd + list(extra)


class QemuBoard:
    """A running emulated board: the QEMU process and, once connected, a raw-REPL link."""

    def __init__(self, proc: subprocess.Popen, port: str) -> None:
        self.proc = proc
        self.port = port
        self._transport = None

    def connect(self) -> None:
        """Open the UART with mpremote's serial transport and enter the raw REPL."""
        from mpremote.transport_serial import SerialTransport

        # A finite read timeout: a hung guest must end in an error, never a blocked host.
        self._transport = SerialTransport(self.port, timeout=BOOT_TIMEOUT_S)
        self._transport.enter_raw_repl(soft_reset=False, timeout_overall=BOOT_TIMEOUT_S)

    def soft_reset(self) -> None:
        """Soft-reset MicroPython (a fresh heap and fresh modules; /rom stays mounted)."""
        self._link().enter_raw_repl(soft_reset=True, timeout_overall=BOOT_TIMEOUT_S)

    def exec(self, code: str, timeout: float = 60.0) -> str:
        """Run code on the board; its printed output. Raises BoardError with the board's
        traceback if the code raised, or if the board stays silent for `timeout` seconds."""
        from mpremote.transport import TransportError

        try:
            out, err = self._link().exec_raw(code, timeout=timeout)
        except TransportError as exc:
            raise BoardError(f"{self.port}: {exc}") from exc
        if err:
            raise BoardError(err.decode(errors="replace"))
        return out.decode(errors="replace")

    def _link(self):
        if self._transport is None:
            self.connect()
        return self._transport

    def close(self) -> None:
        """Close the UART and kill the emulator (safe to call more than once)."""
        if self._transport is not None:
            with contextlib.suppress(Exception):
                self._transport.serial.close()
            self._transport = None
        _kill(self.proc)


def start(board: Board, firmware: Path, romfs: Path | None = None,
          extra: tuple[str, ...] = ()) -> QemuBoard:
    """Start QEMU and wait for its pty; the caller must close() the result (boot() does)."""
    proc = subprocess.Popen(
        qemu_command(board, firmware, romfs, extra), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    with _live_lock:
        _live.add(proc)
    try:
        port = _wait_for_pty(proc)
    except BaseException:
        _kill(proc)
        raise
    # QEMU says little after the pty line; drain it so a full pipe can never stall it.
    threading.Thread(target=_drain, args=(proc,), daemon=True).start()
    return QemuBoard(proc, port)


def _wait_for_pty(proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    seen = b""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
            found = PTY_LINE.search(seen)
            if found:
                return found.group(1).decode()
        elif proc.poll() is not None:
            break
    raise BoardError("QEMU did not start: " + seen.decode(errors="replace").strip())


def _drain(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError, ValueError):
        while proc.stdout is not None and proc.stdout.read1(4096):
            pass


@contextlib.contextmanager
def boot(board: Board, firmware: Path, romfs: Path | None = None,
         extra: tuple[str, ...] = ()) -> Iterator[QemuBoard]:
    """A booted board connected in raw-REPL mode; QEMU is killed when the block exits."""
    b = start(board, firmware, romfs, extra)
    try:
        b.connect()
        yield b
    finally:
        b.close()
