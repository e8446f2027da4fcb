"""Meters running the firmware's board runtime (ami.board) as nodes of the harness.

`NodeClient` speaks the node protocol (docs/protocol.md section 9: SLIP-framed requests,
the harness's clock) over any byte stream; `MicroPythonMeter` runs it on the MicroPython
unix port (`ami.unixnode`) over pipes, the framing a board uses over USB. Its storage is a
real directory, so `reboot()` (kill and restart) behaves like a power cut. The serial and
emulated boards of `ami hil` are the same client over a UART (amitools.sim.hil).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ami.ports.framing import SlipDecoder, slip_encode

from amitools.outputs import secret_dir, write_secret
from amitools.runtimes import micropython_binary, micropython_path

HEAP = "320K"  # the meter imports into about 150K of the 64-bit port; the rest is its work
NO_WAKEUP = (1 << 64) - 1


class NodeClient:
    """The node adapter interface (`amitools.sim.meternode.MeterNode`) over a stream: the
    node protocol's start, receive, tick and next_wakeup, plus the harness's inputs (button,
    tamper) and `info()`; subclasses provide `_write`, `_read` and `reboot`."""

    address: bytes

    def __init__(self) -> None:
        self._wake: int | None = None
        self._decoder = SlipDecoder(4096)
        self._info: dict | None = None
        self._now = 0  # the harness time of the last request
        self.requests = 0
        self.reboots = 0  # power cycles
        self.last_info: dict = {}
        # Every command verdict a query showed: the firmware's log is in RAM, so a reboot
        # clears it, while a bench wants all it saw.
        self.verdicts: set[tuple] = set()

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _read(self) -> bytes:
        """Whatever bytes arrived (at least one); raises RuntimeError if the node is gone."""
        raise NotImplementedError

    def _call(self, op: bytes, now_ms: int, data: bytes = b"") -> tuple[str | None, list[bytes]]:
        self._write(slip_encode(op + now_ms.to_bytes(8, "big") + data))
        self.requests += 1
        self._now = now_ms
        frames: list[bytes] = []
        self._info = None
        while True:
            for msg in self._decoder.feed(self._read()):
                kind, body = msg[:1], msg[1:]
                if kind == b"F":
                    frames.append(body)
                elif kind == b"J":
                    self._info = json.loads(body)
                elif kind == b"D":
                    wake = int.from_bytes(body[:8], "big")
                    self._wake = None if wake == NO_WAKEUP else wake
                    return body[8:].decode() or None, frames
                # anything else (a REPL's "OK" before the loop started) is not ours

    def exit(self) -> None:
        """Ask the node loop to return (X): no reply."""
        self._write(slip_encode(b"X" + bytes(8)))

    # ---- node interface ----------------------------------------------------------------

    def start(self, now_ms: int) -> list[bytes]:
        return self._call(b"S", now_ms)[1]

    def receive(self, frame: bytes, now_ms: int) -> tuple[str | None, list[bytes]]:
        return self._call(b"R", now_ms, frame)

    def tick(self, now_ms: int) -> list[bytes]:
        return self._call(b"T", now_ms)[1]

    def next_wakeup(self) -> int | None:
        return self._wake

    # ---- harness -----------------------------------------------------------------------

    def press_button(self, now_ms: int) -> None:
        """The local restore button (handled by the firmware at its next tick)."""
        self._call(b"B", now_ms)

    def tamper(self, now_ms: int) -> None:
        """The tamper input fires: the firmware erases its secrets."""
        self._call(b"Z", now_ms)

    def info(self) -> dict:
        """The firmware's `Meter.info()`, asked of the node at the time it last saw."""
        self._call(b"Q", self._now)
        self.last_info = self._info or {}
        self.verdicts.update(tuple(c) for c in self.last_info.get("commands", ()))
        return self.last_info

    def reboot(self) -> None:
        """Power-cycle the node, keeping its flash."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the node."""


def write_node_dir(node_dir: Path, image: dict[str, bytes], secret: bytes, seed: bytes,
                   config: dict | None = None) -> None:
    """A provisioned node as the board runtime reads it (ami.board.boot.host): the key store
    image in flash/, secret.bin, seed.bin and config.json beside it."""
    flash = secret_dir(node_dir / "flash")
    for name, blob in image.items():
        write_secret(flash / name, blob)
    write_secret(node_dir / "secret.bin", secret)
    write_secret(node_dir / "seed.bin", seed)
    (node_dir / "config.json").write_text(json.dumps(config or {}))


class MicroPythonMeter(NodeClient):
    """A unix-port process serving one meter from a node directory."""

    def __init__(
        self, address: bytes, node_dir: Path, image: dict[str, bytes], secret: bytes,
        seed: bytes, config: dict | None = None,
    ) -> None:
        NodeClient.__init__(self)
        self.address = address
        self.dir = node_dir
        write_node_dir(node_dir, image, secret, seed, config)
        self._proc: subprocess.Popen | None = None
        self._spawn()

    def _spawn(self) -> None:
        env = dict(os.environ, MICROPYPATH=micropython_path())
        self._proc = subprocess.Popen(
            [micropython_binary(), "-X", "heapsize=" + HEAP, "-m", "ami.unixnode",
             str(self.dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0,
        )
        self._decoder = SlipDecoder(4096)

    def _pipes(self):
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise RuntimeError("MicroPython node is not running")
        return proc.stdin, proc.stdout

    def _write(self, data: bytes) -> None:
        self._pipes()[0].write(data)

    def _read(self) -> bytes:
        chunk = self._pipes()[1].read(65536)  # unbuffered: one read(2), whatever is there
        if not chunk:
            raise RuntimeError(f"MicroPython node {self.address.hex()} exited")
        return chunk

    def reboot(self) -> None:
        """Power cut: kill the process, keep its flash directory, start it again."""
        self.close()
        self.reboots += 1
        self._spawn()

    def close(self) -> None:
        """Stop the process."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
