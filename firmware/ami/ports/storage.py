"""Storage port: small named blobs, the only persistence the core uses.

Every implementation offers `read(name)` (bytes, or None if absent), `write(name, data)`,
`delete(name)` and `names()`, checks names the same way and counts wear per name.
Whether one write is atomic depends on the implementation (FileStorage on POSIX or littlefs:
yes; FAT or raw flash: no), so the core keeps critical state in A/B records of its own.
A new back end (e.g. a simulated flash that tears writes) subclasses `Storage` and provides
`_load`, `_store`, `_remove` and `_list`.
"""

import os
from errno import EEXIST, ENOENT

from ami.runtime import const

MAX_NAME = const(32)
TEMP_SUFFIX = ".tmp"

_replace = getattr(os, "replace", None) or os.rename  # os.rename refuses to overwrite on Windows
_fsync = getattr(os, "fsync", None)
_open_dir = getattr(os, "open", None)  # only where directories can be opened and synced


_valid = set()  # names already checked: a device uses a handful, on every write


def check_name(name):
    """Return name if it is a valid blob name, else raise TypeError or ValueError.

    Lower case only, so names cannot collide on case-insensitive FAT; no '/', and no leading
    or trailing '.', so a name never leaves its directory or clashes with a temp file.
    """
    if not isinstance(name, str):
        raise TypeError("storage name must be a str")
    if name in _valid:
        return name
    n = len(name)
    if not 0 < n <= MAX_NAME:
        raise ValueError("storage name must be 1..%d characters" % MAX_NAME)
    for i in range(n):
        c = name[i]
        if "a" <= c <= "z" or "0" <= c <= "9":
            continue
        if i and (c == "_" or c == "-" or (c == "." and i < n - 1)):
            continue
        raise ValueError("bad storage name %r" % name)
    if len(_valid) < 64:
        _valid.add(name)
    return name


def _as_bytes(data):
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError("storage data must be bytes-like")


def _errno(exc):
    return exc.args[0] if exc.args else None


class Storage:
    """Base of the storage port: name checks and wear counters around four primitives."""

    def __init__(self):
        self._writes = {}
        self._bytes = {}
        self._deletes = {}

    def read(self, name):
        """The blob stored under name, or None."""
        return self._load(check_name(name))

    def write(self, name, data):
        """Store data (bytes-like) under name, replacing any previous blob."""
        check_name(name)
        data = _as_bytes(data)
        # Counted before storing: a write cut short by power loss has still worn the flash,
        # and a fault injector can use the count to pick its cut point.
        _bump(self._writes, name, 1)
        _bump(self._bytes, name, len(data))
        self._store(name, data)

    def delete(self, name):
        """Remove the blob under name; True if there was one."""
        if self._remove(check_name(name)):
            _bump(self._deletes, name, 1)
            return True
        return False

    def names(self):
        """Sorted list of stored names."""
        out = self._list()
        out.sort()
        return out

    def snapshot(self):
        """A copy of the contents (name -> bytes), e.g. a key store image to provision."""
        out = {}
        for name in self.names():
            out[name] = self.read(name)
        return out

    def writes(self, name=None):
        """Writes attempted for name, or for all names."""
        return _total(self._writes, name)

    def bytes_written(self, name=None):
        """Bytes passed to write for name, or for all names."""
        return _total(self._bytes, name)

    def deletes(self, name=None):
        """Successful deletes of name, or of all names."""
        return _total(self._deletes, name)

    def _load(self, name):
        raise NotImplementedError

    def _store(self, name, data):
        raise NotImplementedError

    def _remove(self, name):
        raise NotImplementedError

    def _list(self):
        raise NotImplementedError


def _bump(counts, name, n):
    counts[name] = counts.get(name, 0) + n


def _total(counts, name):
    if name is None:
        return sum(counts.values())
    return counts.get(name, 0)


class MemoryStorage(Storage):
    """Blobs in a dict: for tests, hosts and as the base of simulated flash."""

    def __init__(self, initial=None):
        Storage.__init__(self)
        self._blobs = {}
        if initial:
            for name in initial:
                self._blobs[check_name(name)] = _as_bytes(initial[name])

    def snapshot(self):
        """As Storage.snapshot, from the dict itself: also on a simulated flash whose power
        is cut, e.g. to start another run from what the cut left."""
        return dict(self._blobs)

    def _load(self, name):
        return self._blobs.get(name)

    def _store(self, name, data):
        self._blobs[name] = data

    def _remove(self, name):
        return self._blobs.pop(name, None) is not None

    def _list(self):
        return list(self._blobs)


class FileStorage(Storage):
    """One file per blob in a directory, through `os` only (CPython, unix port, littlefs/FAT).

    A write goes to a temp file that is synced, then renamed over the old file. Leftover temp
    files (a write cut off by power loss) are removed when the storage is opened.
    """

    def __init__(self, root):
        Storage.__init__(self)
        if not isinstance(root, str) or not root:
            raise ValueError("storage root must be a non-empty str")
        self._root = root
        _makedirs(root)
        self.cleaned = self._clean()

    def _path(self, name):
        return self._root + "/" + name

    def _temp(self, name):
        # A leading '.' is never valid in a name, so temp files cannot shadow blobs.
        return self._root + "/." + name + TEMP_SUFFIX

    def _clean(self):
        n = 0
        for entry in os.listdir(self._root):
            if entry.startswith(".") and entry.endswith(TEMP_SUFFIX):
                os.remove(self._root + "/" + entry)
                n += 1
        return n

    def _load(self, name):
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except OSError as exc:
            if _errno(exc) == ENOENT:
                return None
            raise

    def _store(self, name, data):
        temp = self._temp(name)
        try:
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                if _fsync is not None:
                    _fsync(f.fileno())
            _replace(temp, self._path(name))
        except OSError:
            _remove_quietly(temp)
            raise
        self._sync_dir()

    def _sync_dir(self):
        # POSIX only makes the rename durable once the directory itself is synced.
        if _open_dir is None or _fsync is None:
            return
        try:
            fd = _open_dir(self._root, os.O_RDONLY)
        except OSError:  # e.g. Windows cannot open a directory
            return
        try:
            _fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _remove(self, name):
        try:
            os.remove(self._path(name))
        except OSError as exc:
            if _errno(exc) == ENOENT:
                return False
            raise
        return True

    def _list(self):
        out = []
        for entry in os.listdir(self._root):
            try:
                out.append(check_name(entry))
            except ValueError:  # not ours: temp files, foreign files
                pass
        return out


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _makedirs(path):
    parts = path.split("/")
    current = ""
    for i in range(len(parts)):
        current = parts[i] if i == 0 else current + "/" + parts[i]
        if not parts[i]:  # leading or doubled '/'
            continue
        try:
            os.stat(current)
            continue  # there already: a read-only fs (ROMFS) has no mkdir at all
        except OSError:
            pass
        try:
            os.mkdir(current)
        except OSError as exc:
            if _errno(exc) != EEXIST:
                raise
