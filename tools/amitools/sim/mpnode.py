"""A meter running the firmware on the MicroPython unix port, as a node of the harness.

The process speaks the SLIP request protocol of `ami.unixnode` over pipes, the framing a
board uses over USB; the harness drives its clock, so runs stay repeatable. Its storage is a
real directory, so `reboot()` (kill and restart) behaves like a power cut.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ami.ports.framing import SlipDecoder, slip_encode

from amitools.runtimes import micropython_binary, micropython_path

HEAP = "256K"


class MicroPythonMeter:
    """Node interface (start, receive, tick, next_wakeup) over a unix-port process."""

    def __init__(
        self, address: bytes, node_dir: Path, image: dict[str, bytes], secret: bytes,
        seed: bytes, config: dict | None = None,
    ) -> None:
        self.address = address
        self.dir = node_dir
        flash = node_dir / "flash"
        flash.mkdir(parents=True, exist_ok=True)
        for name, blob in image.items():
            (flash / name).write_bytes(blob)
        (node_dir / "secret.bin").write_bytes(secret)
        (node_dir / "seed.bin").write_bytes(seed)
        (node_dir / "config.json").write_text(json.dumps(config or {}))
        self.boots = 0
        self._wake: int | None = None
        self._proc: subprocess.Popen | None = None
        self._decoder = SlipDecoder(4096)
        self._spawn()

    def _spawn(self) -> None:
        env = dict(os.environ, MICROPYPATH=micropython_path())
        self._proc = subprocess.Popen(
            [micropython_binary(), "-X", "heapsize=" + HEAP, "-m", "ami.unixnode",
             str(self.dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0,
        )
        self._decoder = SlipDecoder(4096)
        self.boots += 1

    def _call(self, op: bytes, now_ms: int, data: bytes = b"") -> tuple[str | None, list[bytes]]:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise RuntimeError("MicroPython node is not running")
        proc.stdin.write(slip_encode(op + now_ms.to_bytes(8, "big") + data))
        frames: list[bytes] = []
        self.info: dict | None = None
        while True:
            chunk = proc.stdout.read(65536)  # unbuffered: one read(2), whatever is there
            if not chunk:
                raise RuntimeError(f"MicroPython node {self.address.hex()} exited")
            for msg in self._decoder.feed(chunk):
                kind, body = msg[:1], msg[1:]
                if kind == b"F":
                    frames.append(body)
                elif kind == b"J":
                    self.info = json.loads(body)
                elif kind == b"D":
                    wake = int.from_bytes(body[:8], "big")
                    self._wake = None if wake == (1 << 64) - 1 else wake
                    reason = body[8:].decode() or None
                    return reason, frames

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

    def query(self, now_ms: int) -> dict:
        """Stats, state and queue length from inside the firmware."""
        self._call(b"Q", now_ms)
        return self.info or {}

    def reboot(self) -> None:
        """Power cut: kill the process, keep its flash directory, start it again."""
        self.close()
        self._spawn()

    def close(self) -> None:
        """Stop the process."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
