"""The node adapter interface: what the harness may do with a meter on any runtime.

Implemented by `amitools.sim.cpnode.CPythonMeter` (the firmware in this process) and
`amitools.sim.mpnode.MicroPythonMeter` (the firmware in a unix-port process); the harness
never asks which one it holds.
"""

from __future__ import annotations

from typing import Protocol

from amitools.sim.radio import Node


class MeterNode(Node, Protocol):
    """A meter on the radio that the harness can observe, press, tamper with and reboot."""

    def info(self) -> dict:
        """The firmware's `Meter.info()`: stats, state, queue, next_seq, relay, events,
        commands."""
        ...

    def press_button(self, now_ms: int) -> None: ...

    def tamper(self, now_ms: int) -> None: ...

    def reboot(self) -> None:
        """Power cut: RAM lost, flash kept; the radio's `restart` then starts it again."""
        ...

    def close(self) -> None: ...
