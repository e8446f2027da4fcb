"""Storage port: the same contract for MemoryStorage and FileStorage, plus file specifics."""

import os

from ami.ports.storage import MAX_NAME, FileStorage, MemoryStorage, check_name
from fwtest import raises, remove_tree, temp_dir

GOOD_NAMES = ("a", "keys.a", "ctr_b-1", "0", "a" * MAX_NAME, "x.tmp")
BAD_NAMES = (
    "",
    "A",
    "Keys",
    "../x",
    "a/b",
    "/a",
    ".hidden",
    ".a.tmp",
    "x.",
    "-x",
    "_x",
    "a b",
    "a\x00",
    "\u00e9",
    "a" * (MAX_NAME + 1),
    "..",
    ".",
)


def _contract(store):
    assert store.read("a") is None
    assert store.names() == []
    store.write("b", b"two")
    store.write("a", b"\x00\xff" * 100)
    store.write("empty", b"")
    assert store.read("b") == b"two"
    assert store.read("a") == b"\x00\xff" * 100
    assert store.read("empty") == b""  # empty is not absent
    assert store.names() == ["a", "b", "empty"]
    store.write("b", bytearray(b"three"))
    assert store.read("b") == b"three"
    assert isinstance(store.read("b"), bytes)
    store.write("c", memoryview(b"xyz")[1:])
    assert store.read("c") == b"yz"
    assert store.delete("b") is True
    assert store.delete("b") is False
    assert store.read("b") is None
    assert store.names() == ["a", "c", "empty"]
    for name in GOOD_NAMES:
        store.write(name, name.encode())
        assert store.read(name) == name.encode()
    for name in BAD_NAMES:
        raises(ValueError, store.read, name)
        raises(ValueError, store.write, name, b"x")
        raises(ValueError, store.delete, name)
    raises(TypeError, store.read, b"a")
    raises(TypeError, store.read, None)
    raises(TypeError, store.write, "a", "text")
    raises(TypeError, store.write, "a", None)
    assert store.read("a") == b"a"


def _counters(store):
    store.write("k", b"12345")
    store.write("k", b"67")
    store.write("j", b"")
    assert store.writes("k") == 2
    assert store.bytes_written("k") == 7
    assert store.writes("j") == 1
    assert store.writes() == 3
    assert store.bytes_written() == 7
    assert store.writes("none") == 0
    store.delete("k")
    store.delete("k")
    assert store.deletes("k") == 1
    assert store.deletes() == 1
    raises(ValueError, store.write, "BAD", b"x")  # refused writes are not counted
    assert store.writes() == 3


def test_check_name():
    for name in GOOD_NAMES:
        assert check_name(name) == name
    for name in BAD_NAMES:
        raises(ValueError, check_name, name)
    raises(TypeError, check_name, 1)


def test_memory_contract():
    _contract(MemoryStorage())


def test_memory_counters():
    _counters(MemoryStorage())


def test_memory_initial_and_snapshot():
    store = MemoryStorage({"a": b"1", "b": bytearray(b"2")})
    assert store.names() == ["a", "b"]
    assert store.writes() == 0  # preloading is not wear
    snap = store.snapshot()
    store.write("a", b"changed")
    assert snap == {"a": b"1", "b": b"2"}
    assert MemoryStorage(snap).read("a") == b"1"
    raises(ValueError, MemoryStorage, {"../a": b""})


class PowerCut(Exception):
    pass


class TearingStorage(MemoryStorage):
    """What a power-loss simulator looks like: cut write number `at` after `keep` bytes."""

    def __init__(self, at, keep):
        MemoryStorage.__init__(self)
        self.at = at
        self.keep = keep

    def _store(self, name, data):
        if self.writes() == self.at:
            MemoryStorage._store(self, name, data[: self.keep])
            raise PowerCut()
        MemoryStorage._store(self, name, data)


def test_storage_can_be_extended_with_torn_writes():
    for keep in range(4):
        store = TearingStorage(at=2, keep=keep)
        store.write("r", b"old")
        raises(PowerCut, store.write, "r", b"new")
        assert store.read("r") == b"new"[:keep]
        assert store.writes("r") == 2


def test_file_contract():
    root = temp_dir()
    try:
        _contract(FileStorage(root))
    finally:
        remove_tree(root)


def test_file_counters():
    root = temp_dir()
    try:
        _counters(FileStorage(root))
    finally:
        remove_tree(root)


def test_file_storage_survives_reopen():
    root = temp_dir()
    try:
        store = FileStorage(root + "/nested/dir")
        store.write("keys.a", b"\x01" * 64)
        store.write("keys.b", b"\x02" * 64)
        store.delete("keys.b")
        again = FileStorage(root + "/nested/dir")
        assert again.names() == ["keys.a"]
        assert again.read("keys.a") == b"\x01" * 64
        assert again.cleaned == 0
        assert again.snapshot() == {"keys.a": b"\x01" * 64}  # e.g. an image to provision
    finally:
        remove_tree(root)


def test_file_storage_cleans_leftover_temp_files():
    root = temp_dir()
    try:
        store = FileStorage(root)
        store.write("ctr", b"good")
        # What a write cut off before its rename leaves behind, plus one for a new name.
        for leftover in (".ctr.tmp", ".fresh.tmp"):
            with open(root + "/" + leftover, "wb") as f:
                f.write(b"torn")
        with open(root + "/README.TXT", "wb") as f:  # not a valid name: never listed
            f.write(b"x")
        again = FileStorage(root)
        assert again.cleaned == 2
        assert again.names() == ["ctr"]
        assert again.read("ctr") == b"good"
        assert again.read("fresh") is None
        listing = os.listdir(root)
        listing.sort()
        assert listing == ["README.TXT", "ctr"]
    finally:
        remove_tree(root)


def test_file_storage_leaves_no_temp_files():
    root = temp_dir()
    try:
        store = FileStorage(root)
        for i in range(5):
            store.write("n", bytes([i]) * 10)
        assert os.listdir(root) == ["n"]
        assert store.read("n") == b"\x04" * 10
    finally:
        remove_tree(root)


def test_file_storage_bad_root():
    raises(ValueError, FileStorage, "")
    raises(ValueError, FileStorage, None)
