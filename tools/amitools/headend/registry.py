"""The head end's persistent store (SQLite): devices, join nonces, sessions, readings, and
the state that guards against replay: uplink counter floors, outstanding commands, pending
decommissions, groups (key, generation, frame counter reservation, members) and request ids.

Every key is stored wrapped (RFC 3394) under the head end's key-encryption key, which stands
for the key held by the head end's hardware security module: the database file alone
reveals no root or session key.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ami import crypto

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    eui BLOB PRIMARY KEY, role INTEGER NOT NULL, cert BLOB NOT NULL, public BLOB NOT NULL,
    root_wrapped BLOB NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,
    last_dev_nonce INTEGER, join_nonce INTEGER NOT NULL DEFAULT 0,
    root_gen INTEGER NOT NULL DEFAULT 1, pending_wrapped BLOB, pending_gen INTEGER,
    decommission_counter INTEGER, decommission_deadline INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
    eui BLOB PRIMARY KEY, join_nonce INTEGER NOT NULL, up_wrapped BLOB NOT NULL,
    down_wrapped BLOB NOT NULL, down_limit INTEGER NOT NULL, up_floor INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outstanding (
    eui BLOB NOT NULL, counter INTEGER NOT NULL, command INTEGER NOT NULL,
    PRIMARY KEY (eui, counter)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS groups (
    group_id BLOB PRIMARY KEY, key_wrapped BLOB NOT NULL, key_gen INTEGER NOT NULL,
    fcnt_limit INTEGER NOT NULL, last_counter INTEGER NOT NULL, members BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS readings (
    eui BLOB NOT NULL, seq INTEGER NOT NULL, time INTEGER NOT NULL, wh INTEGER NOT NULL,
    received_ms INTEGER NOT NULL, PRIMARY KEY (eui, seq)
) WITHOUT ROWID;
"""
# SQLite integers are signed 64-bit: a u64 energy at or above 2^63 is stored as its two's
# complement (negative) and read back as sent.
_U64 = 1 << 64
_I64_TOP = 1 << 63


@dataclass
class DeviceRow:
    """A registered device as stored (root key unwrapped on load)."""

    eui: bytes
    role: int
    cert: bytes
    public: bytes
    root_key: bytes
    revoked: bool
    last_dev_nonce: int | None
    join_nonce: int
    root_gen: int = 1
    pending_root: bytes | None = None  # a delivered root key not yet confirmed by a join
    pending_gen: int | None = None
    decommission: tuple[int, int] | None = None  # (command counter, deadline ms) pending


@dataclass
class SessionRow:
    """A stored session (keys unwrapped on load)."""

    eui: bytes
    join_nonce: int
    k_up: bytes
    k_down: bytes
    down_limit: int
    up_floor: int | None = None  # the highest uplink counter accepted (None: none yet)


@dataclass
class GroupRow:
    """A stored group (key unwrapped on load)."""

    group_id: bytes
    key: bytes
    key_gen: int
    fcnt_limit: int
    last_counter: int
    members: set[bytes]


class Registry:
    """SQLite-backed registry; `commit()` makes pending changes durable."""

    def __init__(self, path: str | Path, kek: bytes, synchronous: str = "FULL") -> None:
        self.db = sqlite3.connect(str(path))
        # WAL with synchronous=FULL: every commit is on disk when it returns, so a reading
        # acknowledged after its commit survives a power cut of the host (NORMAL would
        # survive only a crash of the process). Cost: docs/benchmarks.md.
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.executescript(SCHEMA)
        self._kek = kek

    def _wrap(self, key: bytes) -> bytes:
        return crypto.aes_key_wrap(self._kek, key)

    def _unwrap(self, wrapped: bytes) -> bytes:
        return crypto.aes_key_unwrap(self._kek, wrapped)

    def add_device(self, eui: bytes, role: int, cert: bytes, public: bytes, root: bytes) -> None:
        """Register a provisioned device (replaces an earlier registration of the EUI)."""
        self.db.execute(
            "INSERT OR REPLACE INTO devices (eui, role, cert, public, root_wrapped) "
            "VALUES (?, ?, ?, ?, ?)",
            (eui, role, cert, public, self._wrap(root)),
        )

    def devices(self) -> list[DeviceRow]:
        """Every registered device."""
        rows = self.db.execute(
            "SELECT eui, role, cert, public, root_wrapped, revoked, last_dev_nonce, join_nonce, "
            "root_gen, pending_wrapped, pending_gen, decommission_counter, decommission_deadline "
            "FROM devices"
        )
        return [
            DeviceRow(
                r[0], r[1], r[2], r[3], self._unwrap(r[4]), bool(r[5]), r[6], r[7], r[8],
                None if r[9] is None else self._unwrap(r[9]), r[10],
                None if r[11] is None else (r[11], r[12]),
            )
            for r in rows
        ]

    def sessions(self) -> list[SessionRow]:
        """Every stored session."""
        rows = self.db.execute(
            "SELECT eui, join_nonce, up_wrapped, down_wrapped, down_limit, up_floor FROM sessions"
        )
        return [
            SessionRow(r[0], r[1], self._unwrap(r[2]), self._unwrap(r[3]), r[4], r[5])
            for r in rows
        ]

    def save_join(self, eui: bytes, last_dev_nonce: int, join_nonce: int) -> None:
        """Record an accepted DevNonce and the JoinNonce about to be sent (durable at once)."""
        self.db.execute(
            "UPDATE devices SET last_dev_nonce = ?, join_nonce = ? WHERE eui = ?",
            (last_dev_nonce, join_nonce, eui),
        )
        self.db.commit()

    def save_session(
        self, eui: bytes, join_nonce: int, k_up: bytes, k_down: bytes, down_limit: int
    ) -> None:
        """Store a new session with its reserved downlink counter limit (durable at once)."""
        self.db.execute(
            "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, NULL)",
            (eui, join_nonce, self._wrap(k_up), self._wrap(k_down), down_limit),
        )
        self.db.commit()

    def save_up_floors(self, floors: dict[bytes, int]) -> None:
        """Record the highest uplink counter accepted per device (durable at the commit)."""
        self.db.executemany("UPDATE sessions SET up_floor = ? WHERE eui = ?",
                            [(fcnt, eui) for eui, fcnt in floors.items()])

    def forget_session(self, eui: bytes) -> None:
        """Drop a device's session (its counters are used up: it must join again)."""
        self.db.execute("DELETE FROM sessions WHERE eui = ?", (eui,))
        self.db.commit()

    def save_outstanding(self, items: list[tuple[bytes, int, int]]) -> None:
        """Commands sent and awaiting their result: (eui, counter, command); durable at once."""
        self.db.executemany("INSERT OR REPLACE INTO outstanding VALUES (?, ?, ?)", items)
        self.db.commit()

    def drop_outstanding(self, eui: bytes, counter: int) -> None:
        """A command's result arrived (durable with the next commit)."""
        self.db.execute("DELETE FROM outstanding WHERE eui = ? AND counter = ?", (eui, counter))

    def outstanding(self) -> list[tuple[bytes, int, int]]:
        """Every command awaiting its result: (eui, counter, command)."""
        return list(self.db.execute("SELECT eui, counter, command FROM outstanding"))

    def save_decommission(self, eui: bytes, pending: tuple[int, int] | None) -> None:
        """A DECOMMISSION awaiting its result: (counter, deadline ms), or None; durable."""
        counter, deadline = pending if pending is not None else (None, None)
        self.db.execute(
            "UPDATE devices SET decommission_counter = ?, decommission_deadline = ? "
            "WHERE eui = ?", (counter, deadline, eui),
        )
        self.db.commit()

    def save_group(self, g: GroupRow) -> None:
        """Store a group's key, generation, reserved frame counters and members; durable."""
        self.db.execute(
            "INSERT OR REPLACE INTO groups VALUES (?, ?, ?, ?, ?, ?)",
            (g.group_id, self._wrap(g.key), g.key_gen, g.fcnt_limit, g.last_counter,
             b"".join(sorted(g.members))),
        )
        self.db.commit()

    def groups(self) -> list[GroupRow]:
        """Every stored group."""
        rows = self.db.execute(
            "SELECT group_id, key_wrapped, key_gen, fcnt_limit, last_counter, members FROM groups"
        )
        return [
            GroupRow(r[0], self._unwrap(r[1]), r[2], r[3], r[4],
                     {r[5][i : i + 8] for i in range(0, len(r[5]), 8)})
            for r in rows
        ]

    def reserve(self, name: str, limit: int) -> None:
        """Reserve a counter's values below limit before any is used (durable at once)."""
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, limit))
        self.db.commit()

    def reserved(self, name: str) -> int:
        """The limit last reserved for a counter (0: never)."""
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return 0 if row is None else row[0]

    def save_down_limit(self, eui: bytes, limit: int) -> None:
        """Reserve downlink counters up to limit before any of them is used."""
        self.db.execute("UPDATE sessions SET down_limit = ? WHERE eui = ?", (limit, eui))
        self.db.commit()

    def save_pending_root(self, eui: bytes, gen: int, root: bytes | None) -> None:
        """Store a root key about to be delivered (None: drop it); durable at once."""
        self.db.execute(
            "UPDATE devices SET pending_wrapped = ?, pending_gen = ? WHERE eui = ?",
            (None if root is None else self._wrap(root), None if root is None else gen, eui),
        )
        self.db.commit()

    def promote_root(self, eui: bytes) -> None:
        """A join under the pending root succeeded: it replaces the old root for good."""
        self.db.execute(
            "UPDATE devices SET root_wrapped = pending_wrapped, root_gen = pending_gen, "
            "pending_wrapped = NULL, pending_gen = NULL "
            "WHERE eui = ? AND pending_wrapped IS NOT NULL",
            (eui,),
        )
        self.db.commit()

    def revoke(self, eui: bytes) -> None:
        """Mark a device identity revoked and forget its session."""
        self.db.execute("UPDATE devices SET revoked = 1, decommission_counter = NULL, "
                        "decommission_deadline = NULL WHERE eui = ?", (eui,))
        self.db.execute("DELETE FROM sessions WHERE eui = ?", (eui,))
        self.db.commit()

    def add_readings(self, rows: list[tuple[bytes, int, int, int, int]]) -> None:
        """Store readings (eui, seq, time, wh, received_ms); a stored (eui, seq) is kept."""
        self.db.executemany(
            "INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?, ?)",
            [(e, q, t, wh - _U64 if wh >= _I64_TOP else wh, r) for e, q, t, wh, r in rows],
        )

    def reading_count(self) -> int:
        """Number of stored readings."""
        return self.db.execute("SELECT COUNT(*) FROM readings").fetchone()[0]

    def count_below(self, eui: bytes, seq: int) -> int:
        """Number of stored readings of a device with a sequence number below seq."""
        q = "SELECT COUNT(*) FROM readings WHERE eui = ? AND seq < ?"
        return self.db.execute(q, (eui, seq)).fetchone()[0]

    def readings(self, eui: bytes) -> list[tuple[int, int, int]]:
        """(seq, time, wh) of one device, by seq."""
        q = "SELECT seq, time, wh FROM readings WHERE eui = ? ORDER BY seq"
        return [(seq, t, wh % _U64) for seq, t, wh in self.db.execute(q, (eui,))]

    def commit(self) -> None:
        """Make pending changes durable."""
        self.db.commit()
