"""Clock port: virtual time arithmetic and wrap-around, and the system clock's basics."""

import time

from ami.ports.clock import (
    DEFAULT_START,
    EPOCH_2000_OFFSET,
    TICKS_PERIOD,
    SystemClock,
    VirtualClock,
)
from fwtest import raises


def test_virtual_clock_starts_where_told():
    assert VirtualClock().now() == DEFAULT_START
    c = VirtualClock(start=1000, ticks=5)
    assert c.now() == 1000
    assert c.ticks_ms() == 5


def test_advance_moves_wall_time_and_ticks_together():
    c = VirtualClock(start=100)
    t0 = c.ticks_ms()
    c.advance_ms(999)
    assert c.now() == 100  # sub-second advances accumulate, no rounding up
    c.advance_ms(1)
    assert c.now() == 101
    c.advance_ms(60000)
    assert c.now() == 161
    assert c.ticks_diff(c.ticks_ms(), t0) == 61000
    c.advance_ms(0)
    assert c.now() == 161


def test_set_steps_wall_time_only():
    c = VirtualClock(start=100)
    t0 = c.ticks_ms()
    c.advance_ms(5)
    c.set(50)  # an RTC sync may step backwards; ticks must not
    assert c.now() == 50
    assert c.ticks_diff(c.ticks_ms(), t0) == 5


def test_ticks_wrap_like_a_board():
    c = VirtualClock(ticks=TICKS_PERIOD - 10)
    t0 = c.ticks_ms()
    c.advance_ms(25)
    t1 = c.ticks_ms()
    assert t1 == 15  # wrapped
    assert c.ticks_diff(t1, t0) == 25
    assert c.ticks_diff(t0, t1) == -25
    deadline = c.ticks_add(t0, 20)
    assert deadline == 10
    assert c.ticks_diff(t1, deadline) == 5  # deadline passed, across the wrap
    assert c.ticks_add(5, -10) == TICKS_PERIOD - 5


def test_small_period():
    c = VirtualClock(ticks=0, period=16)
    c.advance_ms(20)
    assert c.ticks_ms() == 4
    assert c.ticks_diff(4, 14) == 6
    assert c.ticks_diff(14, 4) == -6


def test_bad_arguments():
    c = VirtualClock()
    raises(ValueError, c.advance_ms, -1)
    raises(TypeError, c.advance_ms, 1.5)
    raises(TypeError, c.advance_ms, True)
    raises(TypeError, c.set, "0")
    raises(TypeError, VirtualClock, 1.0)
    raises(ValueError, VirtualClock, 0, 0, 1000)
    raises(ValueError, VirtualClock, 0, 0, 1)


def test_system_clock():
    c = SystemClock()
    now = c.now()
    assert isinstance(now, int)
    if hasattr(time, "time"):
        assert now > 1577836800  # after 2020: the host clock is set, on the Unix epoch
    else:  # no RTC (emulated boards): time since boot, counted from 2000-01-01
        assert EPOCH_2000_OFFSET <= now < EPOCH_2000_OFFSET + 86400
        time.sleep_ms(1100)
        assert c.now() - now in (1, 2)
    t0 = c.ticks_ms()
    t1 = c.ticks_ms()
    assert isinstance(t0, int)
    assert c.ticks_diff(t1, t0) >= 0
    assert c.ticks_diff(c.ticks_add(t0, 123), t0) == 123
