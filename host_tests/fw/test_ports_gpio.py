"""GPIO ports: host simulations, and the Pin* classes over a fake pin."""

from ami.ports import board
from ami.ports.gpio import (
    PinButton,
    PinRelay,
    PinTamper,
    SimButton,
    SimRelay,
    SimTamper,
)
from fwtest import raises


class FakePin:
    """Just `.value()`, like the simplest machine.Pin."""

    def __init__(self, level=0):
        self.level = level
        self.writes = []

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v
        self.writes.append(v)


class FakeIrqPin(FakePin):
    """A pin with edge interrupts; fire() plays the role of the hardware."""

    IRQ_FALLING = 1
    IRQ_RISING = 2

    def __init__(self, level=0):
        FakePin.__init__(self, level)
        self.handler = None
        self.trigger = None

    def irq(self, handler=None, trigger=None):
        self.handler = handler
        self.trigger = trigger

    def fire(self):
        self.handler(self)


def test_sim_relay_records_operations():
    r = SimRelay()
    assert not r.is_closed()
    r.close()
    assert r.is_closed()
    r.close()
    r.open()
    assert not r.is_closed()
    assert r.ops == ["close", "close", "open"]
    assert SimRelay(closed=True).is_closed()


def test_pin_relay_active_high_and_low():
    pin = FakePin(0)
    r = PinRelay(pin)
    assert not r.is_closed()
    r.close()
    assert pin.level == 1 and r.is_closed()
    r.open()
    assert pin.level == 0 and not r.is_closed()
    low = FakePin(1)
    r = PinRelay(low, active_high=False)
    assert not r.is_closed()  # state read back from the pin, nothing driven
    assert low.writes == []
    r.close()
    assert low.level == 0 and r.is_closed()
    assert PinRelay(FakePin(0), active_high=False).is_closed()


def test_sim_button_events():
    b = SimButton()
    assert not b.poll()
    b.press()
    b.press()  # two presses between polls are one event
    assert b.poll()
    assert not b.poll()
    assert b.presses == 2
    assert not b.is_active()


def test_sim_tamper_events():
    t = SimTamper()
    assert not t.poll() and not t.is_active()
    t.trigger()
    assert t.is_active()
    assert t.poll()
    assert not t.poll()  # one event per trigger, though still open
    assert t.is_active()
    t.clear()
    assert not t.is_active() and not t.poll()
    assert t.triggers == 1
    already = SimTamper(active=True)
    assert already.poll()
    assert not already.poll()


def test_pin_button_sampled_edges():
    pin = FakePin(1)  # pulled up, released
    b = PinButton(pin)
    assert not b.uses_irq
    assert not b.poll()
    pin.level = 0
    assert b.is_active()
    assert b.poll()
    assert not b.poll()  # held: no new event
    pin.level = 1
    assert not b.poll()
    pin.level = 0
    assert b.poll()


def test_pin_button_held_at_start_is_no_press():
    pin = FakePin(0)
    b = PinButton(pin)
    assert not b.poll()


def test_pin_button_active_high():
    pin = FakePin(0)
    b = PinButton(pin, active_low=False)
    pin.level = 1
    assert b.poll()


def test_pin_button_irq_catches_short_presses():
    pin = FakeIrqPin(1)
    b = PinButton(pin)
    assert b.uses_irq
    assert pin.trigger == FakeIrqPin.IRQ_FALLING
    pin.fire()  # pressed and released between two polls
    assert b.poll()
    assert not b.poll()
    for _ in range(3):
        pin.fire()
    assert b.poll()
    assert not b.poll()
    no_irq = PinButton(FakeIrqPin(1), use_irq=False)
    assert not no_irq.uses_irq


def test_pin_tamper_active_at_start_is_an_event():
    pin = FakePin(1)
    t = PinTamper(pin)
    assert t.is_active()
    assert t.poll()
    assert not t.poll()
    pin.level = 0
    assert not t.poll()
    pin.level = 1
    assert t.poll()


def test_pin_tamper_irq_and_polarity():
    pin = FakeIrqPin(1)
    t = PinTamper(pin, active_high=False)
    assert pin.trigger == FakeIrqPin.IRQ_FALLING
    assert not t.poll()
    pin.fire()
    assert t.poll()
    rising = FakeIrqPin(0)
    PinTamper(rising)
    assert rising.trigger == FakeIrqPin.IRQ_RISING


def test_board_factory_needs_machine_pin():
    if board.has_pins():  # on a board: build the real thing
        return
    raises(board.NoPinSupport, board.relay, 5)
    raises(board.NoPinSupport, board.button, 6)
    raises(board.NoPinSupport, board.tamper, 7)
