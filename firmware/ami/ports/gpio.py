"""GPIO ports: the load relay, the local restore button and the tamper input.

Inputs are event based: `poll()` says whether an event happened since the last poll, so the
core looks once per loop and never busy-waits. `is_active()` gives the level now.
Board classes take an already-built pin (anything with `.value()`), so they are testable
with a fake pin; `ami.ports.board` builds them from `machine.Pin`.
"""

from ami.runtime import const

_EDGE_MASK = const(0x3FFF)  # keeps the IRQ edge count a small int: no heap use in an IRQ


class SimRelay:
    """Host relay: a state plus the list of every operation ("close"/"open"), in order."""

    def __init__(self, closed=False):
        self._closed = bool(closed)
        self.ops = []

    def close(self):
        """Connect the load."""
        self._closed = True
        self.ops.append("close")

    def open(self):
        """Disconnect the load."""
        self._closed = False
        self.ops.append("open")

    def is_closed(self):
        """True while the load is connected."""
        return self._closed


class PinRelay:
    """Relay driven by an output pin; the commanded state starts as read back from the pin."""

    def __init__(self, pin, active_high=True):
        self.pin = pin
        self._on = 1 if active_high else 0
        self._closed = pin.value() == self._on

    def close(self):
        """Connect the load."""
        self.pin.value(self._on)
        self._closed = True

    def open(self):
        """Disconnect the load."""
        self.pin.value(1 - self._on)
        self._closed = False

    def is_closed(self):
        """True while the load is commanded connected."""
        return self._closed


class SimButton:
    """Host button: `press()` queues one press event for the next poll."""

    def __init__(self):
        self._pending = False
        self.presses = 0

    def press(self):
        """Simulate one press."""
        self._pending = True
        self.presses += 1

    def poll(self):
        """True if pressed since the last poll."""
        pending = self._pending
        self._pending = False
        return pending

    def is_active(self):
        """A simulated press is momentary: never held."""
        return False


class SimTamper:
    """Host tamper switch: `trigger()` opens it (an event and a level), `clear()` closes it."""

    def __init__(self, active=False):
        self._active = bool(active)
        self._pending = self._active  # already open at start counts, as on a board
        self.triggers = 0

    def trigger(self):
        """Simulate the enclosure being opened."""
        self._active = True
        self._pending = True
        self.triggers += 1

    def clear(self):
        """Simulate the switch closing again; no event."""
        self._active = False

    def poll(self):
        """True if tampering happened since the last poll."""
        pending = self._pending
        self._pending = False
        return pending

    def is_active(self):
        """True while the switch is open."""
        return self._active


class _PinInput:
    """Edge detector on an input pin: IRQ edges where the pin has them, plus sampled edges.

    Sampling alone misses a pulse shorter than the poll interval; the IRQ catches it. The IRQ
    handler only bumps a counter that poll() reads and never writes, so no edge is lost
    between reading and clearing a flag.
    """

    def __init__(self, pin, active_level, use_irq, event_if_active):
        self.pin = pin
        self._active = active_level
        self._edges = 0
        self._seen = 0
        # Not yet seen as active: an input already active at start raises an event at once.
        self._last = False if event_if_active else self.is_active()
        self.uses_irq = False
        trigger = getattr(pin, "IRQ_RISING" if active_level else "IRQ_FALLING", None)
        if use_irq and trigger is not None and hasattr(pin, "irq"):
            pin.irq(handler=self._on_edge, trigger=trigger)
            self.uses_irq = True

    def _on_edge(self, pin):
        self._edges = (self._edges + 1) & _EDGE_MASK

    def is_active(self):
        """True while the input is at its active level."""
        return self.pin.value() == self._active

    def poll(self):
        """True if the input became active since the last poll."""
        level = self.is_active()
        edges = self._edges
        event = edges != self._seen or (level and not self._last)
        self._seen = edges
        self._last = level
        return event


class PinButton(_PinInput):
    """Push button on an input pin; active low by default (switch to ground, pull-up)."""

    def __init__(self, pin, active_low=True, use_irq=True):
        _PinInput.__init__(self, pin, 0 if active_low else 1, use_irq, False)


class PinTamper(_PinInput):
    """Tamper switch on an input pin; active high by default, so with a pull-up a cut wire
    reads as tampering. Already active when built counts as an event (opened while off)."""

    def __init__(self, pin, active_high=True, use_irq=True):
        _PinInput.__init__(self, pin, 1 if active_high else 0, use_irq, True)
