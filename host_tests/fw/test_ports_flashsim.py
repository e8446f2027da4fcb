"""Simulated flash: MemoryStorage semantics, torn writes per the documented model, power cuts."""

from ami.ports.flashsim import FlashSim, PowerCut
from ami.ports.storage import Storage
from fwtest import raises

OLD = b"0123456789"


def _torn(old, new, k, erase_first=False):
    """The documented model, written out independently of the implementation."""
    out = bytearray(b"\xff" * len(new))
    for i in range(len(new)):
        if i < k:
            out[i] = new[i]
        elif not erase_first and old is not None and i < len(old):
            out[i] = old[i]
    return bytes(out)


def test_is_a_storage_with_memory_semantics():
    f = FlashSim({"x": b"1"})
    assert isinstance(f, Storage)
    assert f.read("x") == b"1" and f.read("y") is None
    f.write("y", bytearray(b"22"))
    assert f.read("y") == b"22"
    assert f.names() == ["x", "y"]
    assert f.delete("x") and not f.delete("x")
    assert f.writes("y") == 1 and f.bytes_written() == 2 and f.deletes("x") == 1
    assert f.write_log == [("y", 2)]
    raises(ValueError, f.write, "Bad", b"")
    assert f.snapshot() == {"y": b"22"}


def test_torn_write_every_byte_both_models():
    for erase_first in (False, True):
        for new in (b"abcdefghijklmn", b"abcdef", b"abcdefghij", b""):
            for k in range(len(new) + 1):
                f = FlashSim({"x": OLD}, erase_first=erase_first)
                f.arm_cut(1, k)
                raises(PowerCut, f.write, "x", new)
                f.reboot()
                assert f.read("x") == _torn(OLD, new, k, erase_first), (erase_first, new, k)


def test_torn_write_of_a_new_blob_is_erased_past_the_cut():
    for k in range(6):
        f = FlashSim()
        f.arm_cut(1, k)
        raises(PowerCut, f.write, "n", b"hello")
        f.reboot()
        assert f.read("n") == b"hello"[:k] + b"\xff" * (5 - k)


def test_cut_at_or_past_the_end_completes_the_write_but_still_fails():
    for k in (5, 6, 1000):
        f = FlashSim({"x": OLD})
        f.arm_cut(1, k)
        raises(PowerCut, f.write, "x", b"hello")
        f.reboot()
        assert f.read("x") == b"hello"


def test_cut_counts_writes_from_now_and_only_once():
    f = FlashSim()
    f.write("a", b"0")
    f.arm_cut(after_writes=3, at_byte=1)
    assert f.armed
    f.write("a", b"11")
    f.write("b", b"22")
    assert f.armed
    raises(PowerCut, f.write, "a", b"33")
    assert not f.armed and f.dead and f.cuts == 1
    f.reboot()
    assert f.read("a") == b"31" and f.read("b") == b"22"
    f.write("a", b"44")  # nothing armed any more
    assert f.read("a") == b"44"
    assert f.write_log == [("a", 1), ("a", 2), ("b", 2), ("a", 2), ("a", 2)]


def test_dead_until_reboot():
    f = FlashSim({"x": b"1"})
    f.arm_cut(1, 0)
    raises(PowerCut, f.write, "y", b"2")
    writes = f.writes()
    for call, args in ((f.read, ("x",)), (f.write, ("x", b"3")), (f.delete, ("x",)), (f.names, ())):
        raises(PowerCut, call, *args)
    assert f.writes() == writes  # a dead device wears nothing
    assert f.snapshot()["x"] == b"1"  # the harness may still look at the chip
    f.reboot()
    assert f.read("x") == b"1" and f.read("y") == b"\xff"


def test_reboot_clears_an_armed_cut():
    f = FlashSim()
    f.arm_cut(2, 0)
    f.reboot()
    assert not f.armed
    f.write("a", b"1")
    f.write("a", b"2")
    assert f.read("a") == b"2"


def test_arm_cut_checks_its_arguments():
    f = FlashSim()
    raises(ValueError, f.arm_cut, 0, 0)
    raises(ValueError, f.arm_cut, 1, -1)
    raises(ValueError, f.arm_cut, "1", 0)
    raises(ValueError, f.arm_cut, 1, 0.5)


def test_cut_points_cover_every_byte_of_every_logged_write():
    f = FlashSim()
    f.write("a", b"xyz")
    f.write("b", b"")
    f.write("a", b"pq")
    points = list(f.cut_points())
    assert points == [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (3, 0), (3, 1), (3, 2)]
    assert list(f.cut_points(step=2)) == [(1, 0), (1, 2), (1, 3), (2, 0), (3, 0), (3, 2)]
    raises(ValueError, list, f.cut_points(0))
    f.clear_log()
    assert list(f.cut_points()) == []


def test_cut_points_replay_tears_the_logged_write():
    def scenario(f):
        f.write("a", b"first")
        f.write("b", b"second")
        f.write("a", b"third!")

    dry = FlashSim()
    scenario(dry)
    for n, k in dry.cut_points():
        f = FlashSim()
        f.arm_cut(n, k)
        raises(PowerCut, scenario, f)
        name, size = dry.write_log[n - 1]
        assert f.write_log[-1] == (name, size)
        assert len(f.write_log) == n
