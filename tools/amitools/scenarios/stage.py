"""What a demo campaign acts on, passed in explicitly by whoever runs it (`Fleet.stage()`).

A campaign schedules actions and scores its own attacks; it reports its own sections
(`report()`) and attack entries (`attacks()`), and the fleet assembles the demo report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from amitools.headend import HeadEnd
from amitools.office.provision import Provisioned
from amitools.sim.attacker import Attacker
from amitools.sim.meternode import MeterNode
from amitools.sim.radio import Sniffer


class Handle(Protocol):
    """A meter as the harness holds it: its address and its node adapter (swapped by
    nothing a campaign does; a reboot keeps the adapter)."""

    address: bytes
    node: MeterNode


@dataclass
class Stage:
    """The head end (a service on the radio: it transmits by itself), the attacker, the
    meters in fleet order, the office's provisioning (signer, HSM, device kits), the
    virtual clock, and the few harness actions a campaign may take."""

    headend: HeadEnd
    attacker: Attacker
    meters: list[Handle]
    # Meters running in this process (`amitools.sim.cpnode.CPythonMeter`), whose flash a
    # lab can image and whose session the harness can drop; fleet order.
    in_process: list[Handle]
    prov: Provisioned
    seed: int
    hours: int  # the reporting period campaigns schedule within
    now: Callable[[], int]  # virtual time now, in ms
    reboot: Callable[[bytes], None]  # power-cycle a meter, by address
    press_button: Callable[[bytes], None]  # the local restore button of a meter, now
    sniff: Callable[[Sniffer], None]  # see every transmission from now on
    # The meters in session at both ends now, fleet order (a lossy radio leaves stragglers):
    # campaigns pick their actors here.
    live_meters: Callable[[], list[Handle]]
