"""Build the GPIO ports from `machine.Pin`, on platforms that have it."""

from ami.ports.gpio import PinButton, PinRelay, PinTamper

try:
    from machine import Pin
except ImportError:
    Pin = None
if Pin is not None and not hasattr(Pin, "OUT"):  # e.g. a machine module without GPIO
    Pin = None


class NoPinSupport(RuntimeError):
    """This platform has no machine.Pin: use the Sim* ports instead."""


def has_pins():
    """True if machine.Pin is available."""
    return Pin is not None


def _pin_class():
    if Pin is None:
        raise NoPinSupport("machine.Pin is not available on this platform")
    return Pin


def relay(pin_id, active_high=True, closed=None):
    """PinRelay on pin_id; closed=True/False sets the level before the output is enabled."""
    pin_cls = _pin_class()
    if closed is None:
        pin = pin_cls(pin_id, pin_cls.OUT)
    else:
        on = 1 if active_high else 0
        pin = pin_cls(pin_id, pin_cls.OUT, value=on if closed else 1 - on)
    return PinRelay(pin, active_high)


def button(pin_id, active_low=True):
    """PinButton on pin_id with the pull that holds it inactive."""
    pin_cls = _pin_class()
    return PinButton(_input(pin_cls, pin_id, active_low), active_low)


def tamper(pin_id, active_high=True):
    """PinTamper on pin_id; the pull-up (for active high) makes a cut wire read as tamper."""
    pin_cls = _pin_class()
    return PinTamper(_input(pin_cls, pin_id, active_high), active_high)


def _input(pin_cls, pin_id, pull_up):
    pull = getattr(pin_cls, "PULL_UP" if pull_up else "PULL_DOWN", None)
    if pull is None:  # some ports lack PULL_DOWN: rely on an external resistor
        return pin_cls(pin_id, pin_cls.IN)
    return pin_cls(pin_id, pin_cls.IN, pull)
