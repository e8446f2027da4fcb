"""A meter running the firmware in this CPython process, as a node of the harness.

The same node adapter interface as `amitools.sim.mpnode.MicroPythonMeter` (the radio's node
interface plus `info`, `press_button`, `tamper`, `reboot`), so the harness observes and
drives a meter the same way on every runtime. In-process, the harness can also reach what a
lab would: the flash image and device secret (`extract`) and the session (`drop_session`).
"""

from __future__ import annotations

from ami.meter import Config, Meter
from ami.ports.anchor import MemoryAnchor
from ami.ports.entropy import DeterministicEntropy
from ami.ports.metrology import SimMetrology

from amitools.office.provision import DeviceKit


class CPythonMeter:
    """Node adapter over the firmware's `Meter`; a reboot boots a new one on the same flash."""

    def __init__(self, kit: DeviceKit, seed: bytes, config: dict | None = None) -> None:
        self.address = kit.eui
        self._secret = kit.secret
        self._seed = seed
        self._boot(Meter(
            kit.storage(), kit.secret, DeterministicEntropy(seed), SimMetrology(seed),
            Config(**(config or {})), anchor=MemoryAnchor(),
        ))

    def _boot(self, meter: Meter) -> None:
        self.meter = meter
        # The radio calls the firmware's own bound methods: no extra call per frame.
        self.start = meter.start
        self.receive = meter.receive
        self.tick = meter.tick
        self.next_wakeup = meter.next_wakeup

    def info(self) -> dict:
        """The firmware's `Meter.info()`: what the unix-port node answers to a query."""
        return self.meter.info()

    def press_button(self, now_ms: int) -> None:
        """The local restore button (handled by the firmware at its next tick)."""
        self.meter.press_button(now_ms)

    def tamper(self, now_ms: int) -> None:
        """The tamper input fires: the firmware erases its secrets."""
        self.meter.tamper(now_ms)

    def reboot(self) -> None:
        """Power cut: RAM is lost; the flash and the anchor survive."""
        m = self.meter
        self._boot(Meter(
            m.storage, self._secret, DeterministicEntropy(self._seed + b"/reboot"),
            SimMetrology(self._seed), m.cfg, anchor=m.anchor,
        ))

    def close(self) -> None:
        """Nothing to stop: the meter lives in this process."""

    # ---- in-process only ---------------------------------------------------------------

    def extract(self) -> tuple[dict[str, bytes], bytes]:
        """What a lab reads out of the opened meter: every flash record and the device
        secret."""
        storage = self.meter.storage
        return {n: storage.read(n) for n in storage.names()}, self._secret

    def drop_session(self, reason: str) -> None:
        """Make the firmware give up its session and join again (as after `reason`)."""
        self.meter.drop_session(reason)
