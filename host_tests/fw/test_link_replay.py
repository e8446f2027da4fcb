"""Replay window: explicit empty state, sliding bitmap, floor, the whole u32 range, any size."""

from ami.link.replay import ReplayError, ReplayWindow
from ami.ports.entropy import DeterministicEntropy
from fwtest import raises

TOP = 0xFFFFFFFF


def _take(w, counter):
    """check then accept, as a receiver does around the tag check; True if accepted."""
    if not w.check(counter):
        return False
    w.accept(counter)
    return True


def test_empty_state_is_explicit_and_accepts_anything():
    for first in (0, 1, 63, 64, 1000, TOP):
        w = ReplayWindow()
        assert w.top is None and w.bits == 0
        assert w.check(first)
        w.accept(first)
        assert w.top == first and w.bits == 1
        assert not w.check(first)


def test_in_order_stream():
    w = ReplayWindow()
    for c in range(300):
        assert _take(w, c)
        assert not w.check(c)
    assert w.top == 299
    assert w.bits == (1 << 64) - 1  # the last 64 all seen


def test_out_of_order_within_window_accepted_once():
    w = ReplayWindow()
    assert _take(w, 100)
    for c in (99, 37, 50, 98, 40):
        assert _take(w, c), c
        assert not w.check(c)
        raises(ReplayError, w.accept, c)
    assert w.top == 100
    assert _take(w, 120)
    assert not w.check(99) and not w.check(100)
    assert _take(w, 97) and _take(w, 57)  # still inside 120 - 63
    assert not w.check(56)  # now older than the window


def test_duplicates_rejected_and_state_unchanged():
    w = ReplayWindow()
    for c in (5, 3, 9):
        w.accept(c)
    state = (w.top, w.bits)
    for c in (5, 3, 9):
        assert not w.check(c)
        exc = raises(ReplayError, w.accept, c)
        assert exc.reason == "replay"
        assert (w.top, w.bits) == state


def test_window_edges():
    w = ReplayWindow()
    w.accept(1000)
    assert w.check(1000 - 63)  # the oldest slot of a 64-frame window
    assert not w.check(1000 - 64)
    assert not w.check(0)
    w.accept(1000 - 63)
    assert not w.check(1000 - 63)
    w.accept(1001)  # slides by one: 1000 - 63 leaves the window
    assert not w.check(1000 - 63) and not w.check(1000 - 62 - 1)
    assert w.check(1000 - 62)


def test_start_near_zero():
    w = ReplayWindow()
    w.accept(3)
    for c in (0, 1, 2):
        assert _take(w, c)
    assert not w.check(0)


def test_huge_jumps():
    w = ReplayWindow()
    w.accept(0)
    w.accept(TOP)  # a jump across the whole range: no giant shift, the window restarts
    assert w.top == TOP and w.bits == 1
    assert not w.check(TOP) and not w.check(0)
    assert w.check(TOP - 63) and not w.check(TOP - 64)
    w2 = ReplayWindow()
    w2.accept(10)
    w2.accept(10 + 64)  # exactly one window ahead: 10 drops out
    assert w2.bits == 1 and not w2.check(10)
    w2.accept(10 + 64 + 63)
    assert w2.bits == 1 | 1 << 63
    assert w2.check(10 + 64 + 1)


def test_floor_after_reboot():
    w = ReplayWindow(floor=500)
    assert w.top is None
    for c in (0, 499, 500):
        assert not w.check(c)
        raises(ReplayError, w.accept, c)
    assert _take(w, 502)
    assert _take(w, 501)
    assert not w.check(500)  # the floor holds even inside the window
    w.reset()
    assert w.floor is None and w.top is None and w.check(0)
    w.reset(floor=TOP)
    assert not w.check(TOP)  # a floor at the top refuses everything


def test_counters_checked():
    w = ReplayWindow()
    for bad in (-1, TOP + 1):
        raises(ValueError, w.check, bad)
        raises(ValueError, w.accept, bad)
    raises(ValueError, w.check, "1")
    raises(ValueError, w.check, 1.0)
    raises(ValueError, ReplayWindow, 0)
    raises(ValueError, ReplayWindow, 64, -1)


def test_larger_and_smaller_windows():
    for size in (1, 8, 64, 65, 200):
        w = ReplayWindow(size)
        w.accept(1000)
        assert w.check(1001 - size) == (size > 1)  # the oldest slot (none besides top for 1)
        assert not w.check(1000 - size)
        w.accept(1000 + size)  # slides by a whole window: 1000 drops out
        assert not w.check(1000)
        assert w.check(1000 + size - 1) == (size > 1)
        if size > 1:
            w.accept(1001)  # the oldest slot of the new window
        assert w.bits >> size == 0  # the bitmap never outgrows the window


def test_against_a_reference_set():
    # A model that remembers everything, restricted to the window rule.
    rng = DeterministicEntropy(b"replay")
    for size in (64, 100):
        w = ReplayWindow(size)
        seen = set()
        top = None
        base = 1 << 20
        for _ in range(1500):
            r = rng.random_bytes(3)
            kind = r[0] % 8
            if top is None or kind == 0:
                c = base + r[1] * 3
            elif kind == 1:
                c = top + 1 + r[1] % 200  # ahead, sometimes past the window
            elif kind < 5:
                c = top - r[1] % (size + 20)  # around the bottom of the window
            else:
                c = top + 1
            c = max(c, 0)
            expected = c not in seen and (top is None or c > top - size)
            assert w.check(c) == expected, (size, c, top)
            if expected:
                w.accept(c)
                seen.add(c)
                top = c if top is None else max(top, c)
            assert w.top == top
