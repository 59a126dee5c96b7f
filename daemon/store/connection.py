"""The SQLite state store: connections with the pragmas every process needs, and schema migrations.

Several processes (ingest, inference, trainer, autoretrainctl) write the same file. WAL lets readers
run beside a writer; every write transaction starts with `BEGIN IMMEDIATE`, so a writer waits for
the lock (busy timeout) instead of failing half-way when it upgrades from reading to writing.
A process killed with SIGKILL in the middle of a transaction leaves the store as it was before
that transaction: SQLite rolls the unfinished transaction back when the next connection opens it.

Durability: `synchronous=NORMAL` in WAL mode. A committed transaction survives any crash or kill of
a process (it is in the WAL, in the OS page cache); only an OS crash or power loss can drop the
last few commits, and never corrupts the file. Everything the daemon stores can be rebuilt after
that: candles are fetched again by ingest's backfill, signals are recomputed for every candle that
has none, outcomes are settled again. In exchange a commit costs ~20 µs instead of ~0.4 ms of
fsync, which keeps the candle-close-to-signal latency at a few milliseconds. For the same reason the
processes on that path (ingest, inference) open their connection with `autocheckpoint=False`, and the
supervisor checkpoints the WAL in the background (`checkpoint`), so no candle waits for a checkpoint.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from autoretrain.daemon.foundation.errors import StoreError
from autoretrain.daemon.store.schema import MIGRATIONS

BUSY_TIMEOUT_S = 30.0

def _apply_migrations(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= len(MIGRATIONS):
        return
    with transaction(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version, len(MIGRATIONS)):
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")


def connect(path: str | Path, *, create: bool = True, autocheckpoint: bool = True) -> sqlite3.Connection:
    """Open the store (creating it and its directory unless `create` is false): WAL, busy timeout, migrations."""
    path = Path(path)
    if not create and not path.exists():
        raise StoreError(f"no store at {path}: nothing has been stored yet")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if not autocheckpoint:
            conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("PRAGMA foreign_keys=ON")
        _apply_migrations(conn)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open store {path}: {exc}") from None
    except OSError as exc:
        raise StoreError(f"cannot create store {path}: {exc}") from None
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the write lock up front and rolls back on any error."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise StoreError(f"store is busy, could not start a write: {exc}") from None
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def checkpoint(conn: sqlite3.Connection) -> None:
    """Copy the WAL back into the database without blocking readers or writers (PASSIVE)."""
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.OperationalError:
        pass  # busy: the next call catches up
