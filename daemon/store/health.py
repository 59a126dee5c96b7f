"""Is the store usable? What `autoretrainctl store check` reports, and what autoretraind verifies before any child.

A power cut, a full disk or a bad sector can leave `autoretrain.db` truncated, with garbage in its header or in
a page in the middle, or read-only. Without a check the daemon starts its children, each dies on its first
read or write, and the supervisor restarts them until it gives up. `inspect_store` looks once, in order: the
file itself (a regular file, readable, not empty, SQLite's header, not cut short), the schema version and its
tables, `PRAGMA quick_check` (bounded in problems and, at start, in time), the rows per table, and a write that
is rolled back. The first thing found wrong is `problem`, one `StoreProblem`.
"""

from __future__ import annotations

import functools
import os
import shutil
import sqlite3
import stat
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autoretrain.daemon.store.failures import DAMAGED, READ_ONLY, UNREADABLE, StoreProblem, classify
from autoretrain.daemon.store.schema import MIGRATIONS

SQLITE_MAGIC = b"SQLite format 3\x00"
#: quick_check stops after this many problems (the first few say enough)
MAX_PROBLEMS = 20
#: autoretraind's start check reads at most this long (a big store on a slow disk): what it read is vouched for
START_CHECK_S = 10.0
PROBE_BUSY_MS = 2000


def open_read_only(path: Path, *, relaxed: bool = False) -> sqlite3.Connection:
    """A connection that cannot change the file (it still reads the WAL beside it). `relaxed` lets SQLite read a
    store shorter than its header says (a truncated one: writable_schema only lifts that check; nothing is
    written through this connection)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                           timeout=PROBE_BUSY_MS / 1000)
    if relaxed:
        conn.execute("PRAGMA writable_schema=ON")
    return conn


@functools.cache
def tables_at(version: int) -> dict[str, int]:
    """The tables the project's schema has at `version` (its first `version` migrations), in creation order, and
    how many columns each has then."""
    conn = sqlite3.connect(":memory:")
    try:
        for migration in MIGRATIONS[:version]:
            conn.executescript(migration)
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
        return {name: len(conn.execute(f'PRAGMA table_info("{name}")').fetchall()) for name in names}
    finally:
        conn.close()


@dataclass
class StoreHealth:
    """Everything `store check` reports; `problem` is None when the store is usable."""

    path: str
    exists: bool
    problem: StoreProblem | None = None
    integrity: list[str] = field(default_factory=list)  # quick_check's findings, ["ok"] when it found none
    integrity_complete: bool = False  # False: not run, or stopped by the time bound before the end
    schema_version: int | None = None
    expected_version: int = len(MIGRATIONS)
    tables: dict[str, int | None] = field(default_factory=dict)  # rows per table; None: cannot be counted
    writable: bool | None = None  # None: not probed, or busy
    file_bytes: int | None = None
    wal_bytes: int | None = None
    page_size: int | None = None
    page_count: int | None = None
    free_pages: int | None = None
    disk_free_bytes: int | None = None
    notes: list[str] = field(default_factory=list)  # worth knowing, not a failure (a newer schema, a cut-short check)

    @property
    def healthy(self) -> bool:
        return self.exists and self.problem is None

    def message(self) -> str:
        """The one line naming the file, what is wrong and what to do ('' when healthy)."""
        return self.problem.sentence(self.path) if self.problem else ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["healthy"] = self.healthy
        data["problem"] = {"kind": self.problem.kind, "detail": self.problem.detail,
                           "message": self.message()} if self.problem else None
        return data


def _file_problem(path: Path, health: StoreHealth) -> StoreProblem | None:
    """What the OS says about the file before SQLite sees it: kind of file, readable, size, header."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        return StoreProblem(UNREADABLE, "it is not a regular file" + (" (a directory)" if stat.S_ISDIR(info.st_mode) else ""))
    health.file_bytes = info.st_size
    wal = path.with_name(path.name + "-wal")
    health.wal_bytes = wal.stat().st_size if wal.exists() else 0
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except OSError as exc:
        return StoreProblem(UNREADABLE, f"cannot read it: {exc.strerror or exc}")
    if info.st_size == 0:
        return StoreProblem(DAMAGED, "it is empty (0 bytes): it was truncated, every row is gone")
    if not header.startswith(SQLITE_MAGIC):
        return StoreProblem(DAMAGED, "its header (the start of page 1) is not SQLite's: file is not a database")
    return None


WAL_HEADER, FRAME_HEADER = 32, 24


def wal_pages(path: Path, page_size: int) -> set[int]:
    """The page numbers the WAL beside the store holds in frames of its current generation (its header's salts).

    A checkpoint writes page 1 (the new page count) before the pages past the end of the file; when the disk is
    full it stops there, and those pages are read from the WAL: the file is short, not truncated."""
    wal = path.with_name(path.name + "-wal")
    found: set[int] = set()
    try:
        with open(wal, "rb") as handle:
            header = handle.read(WAL_HEADER)
            if len(header) < WAL_HEADER or int.from_bytes(header[8:12], "big") != page_size:
                return found
            while len(frame := handle.read(FRAME_HEADER)) == FRAME_HEADER and frame[8:16] == header[16:24]:
                found.add(int.from_bytes(frame[0:4], "big"))
                handle.seek(page_size, os.SEEK_CUR)
    except OSError:
        pass
    return found


def truncation(path: Path) -> StoreProblem | None:
    """A file shorter than its header says, or not a whole number of pages, was cut short (a full disk, a crash
    of the filesystem): SQLite only says "malformed", this says why."""
    with open(path, "rb") as handle:
        header = handle.read(100)
    size = path.stat().st_size
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return None  # a damaged header field: quick_check reports it
    pages = int.from_bytes(header[28:32], "big")
    counted = header[24:28] == header[92:96]  # the in-header page count is only valid then (SQLite file format 1.3)
    if not size % page_size and counted and pages * page_size > size and \
            set(range(size // page_size + 1, pages + 1)) <= wal_pages(path, page_size):
        return None  # a checkpoint a full disk cut short: the pages past the end are still in the WAL
    if size % page_size or (counted and pages * page_size > size):
        whole = f"{pages} pages of {page_size} bytes" if counted else f"a whole number of {page_size}-byte pages"
        return StoreProblem(DAMAGED, f"it is shorter than its header says ({size} bytes, not {whole}): it was truncated")
    return None


def _damaged_tables(conn: sqlite3.Connection, pragma: str, names: list[str]) -> list[str]:
    """Which tables the check fails on, one by one (after the whole-file check itself failed)."""
    damaged = []
    for name in names:
        try:
            if conn.execute(f'PRAGMA {pragma}("{name}")').fetchall() != [("ok",)]:
                damaged.append(name)
        except sqlite3.DatabaseError as exc:
            if "interrupt" in str(exc):
                break  # out of time: the damage is found, where exactly can wait for `store check`
            damaged.append(name)
    return damaged


def _quick_check(conn: sqlite3.Connection, health: StoreHealth, names: list[str], time_limit_s: float | None,
                 full: bool) -> None:
    """`PRAGMA quick_check(N)` (or `integrity_check(N)`), interrupted after `time_limit_s` when one is given."""
    timer = threading.Timer(time_limit_s, conn.interrupt) if time_limit_s else None
    pragma = "integrity_check" if full else "quick_check"
    try:
        if timer:
            timer.start()
        try:
            rows = conn.execute(f"PRAGMA {pragma}({MAX_PROBLEMS})").fetchall()
        except sqlite3.DatabaseError as exc:
            if "interrupt" in str(exc):
                raise
            damaged = _damaged_tables(conn, pragma, names)
            rows = [(f"{exc} (in {'table ' if len(damaged) == 1 else 'tables '}{', '.join(damaged)})" if damaged else str(exc),)]
    except sqlite3.OperationalError as exc:
        if "interrupt" not in str(exc):
            raise
        health.notes.append(f"the {pragma} stopped after {time_limit_s:g} s, before the end of the file: no "
                            "damage in what it read (`autoretrainctl store check` reads it all)")
        return
    finally:
        if timer:
            timer.cancel()
    health.integrity = [" ".join(str(row[0]).split()) for row in rows]
    health.integrity_complete = True
    if health.integrity != ["ok"] and health.problem is None:
        more = f" (and {len(health.integrity) - 1} more)" if len(health.integrity) > 1 else ""
        health.problem = StoreProblem(DAMAGED, f"{pragma} found {health.integrity[0][:200]}{more}")


def _schema(conn: sqlite3.Connection, health: StoreHealth) -> list[str]:
    """The schema version and the store's tables; a table the version promises but the store lacks is damage."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    health.schema_version = version
    names = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
    if version > len(MIGRATIONS):
        health.notes.append(f"schema version {version} was written by a newer autoretrain (this one knows "
                            f"{len(MIGRATIONS)}): it is used as it is")
    missing = [name for name in tables_at(min(version, len(MIGRATIONS))) if name not in names]
    if missing and health.problem is None:
        health.problem = StoreProblem(DAMAGED, f"schema version {version} but tables missing: {', '.join(missing)}")
    return names


def _count_rows(conn: sqlite3.Connection, health: StoreHealth, names: list[str]) -> None:
    for name in names:
        try:
            health.tables[name] = int(conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0])
        except sqlite3.DatabaseError as exc:
            health.tables[name] = None
            if health.problem is None:
                health.problem = StoreProblem(DAMAGED, f"table {name} cannot be read: {exc}")


def _probe_write(path: Path, health: StoreHealth) -> None:
    """A write that is rolled back: a read-only file (or filesystem) fails here, before any child writes.

    Its own connection, closed while the read-only one is still open, so closing it never checkpoints the WAL
    into a damaged file."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=PROBE_BUSY_MS / 1000)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(f"PRAGMA user_version = {int(health.schema_version or 0)}")
            finally:
                conn.execute("ROLLBACK")
        finally:
            conn.close()
        health.writable = True
    except sqlite3.DatabaseError as exc:
        problem = classify(exc)
        if problem.kind == "busy":
            health.notes.append("busy: another process is writing it, so its writability was not probed")
            return
        health.writable = False if problem.kind == READ_ONLY else None
        if health.problem is None:
            health.problem = problem


def _pages(conn: sqlite3.Connection, health: StoreHealth) -> None:
    health.page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    health.page_count = int(conn.execute("PRAGMA page_count").fetchone()[0])
    health.free_pages = int(conn.execute("PRAGMA freelist_count").fetchone()[0])


def _step(health: StoreHealth, step: Callable[[], Any]) -> bool:
    """Run one part of the inspection; a SQLite failure is the problem (unless one was found before). False on failure."""
    try:
        step()
        return True
    except sqlite3.DatabaseError as exc:
        if health.problem is None:
            health.problem = classify(exc)
        return False


def inspect_store(path: str | Path, *, time_limit_s: float | None = None, full: bool = False, count_rows: bool = True,
                  probe_write: bool = True) -> StoreHealth:
    """Look at the store at `path` once and say what is wrong with it, if anything. Never creates or changes it:
    it reads through a read-only connection, and the write probe is rolled back. `time_limit_s` bounds the
    integrity check; `full` runs integrity_check (indexes against their tables too) instead of quick_check."""
    path = Path(path)
    health = StoreHealth(str(path), exists=path.exists() or path.is_symlink())
    if not health.exists:
        return health
    try:
        health.disk_free_bytes = shutil.disk_usage(path.parent).free
        health.problem = _file_problem(path, health)
    except OSError as exc:
        health.problem = StoreProblem(UNREADABLE, str(exc.strerror or exc))
    if health.problem is not None:
        return health
    health.problem = truncation(path)  # then read on: what is left can still be counted
    try:
        conn = open_read_only(path, relaxed=health.problem is not None)
    except sqlite3.DatabaseError as exc:
        health.problem = classify(exc)
        return health
    try:
        names: list[str] = []
        _step(health, lambda: _pages(conn, health))
        if _step(health, lambda: names.extend(_schema(conn, health))):
            _step(health, lambda: _quick_check(conn, health, names, time_limit_s, full))
            if count_rows:
                _count_rows(conn, health, names)
        if probe_write and health.problem is None:
            _probe_write(path, health)
    finally:
        conn.close()
    return health


def verify_store(path: str | Path, *, time_limit_s: float = START_CHECK_S) -> StoreHealth:
    """autoretraind's check before any child starts: a missing store is fine (ingest creates it); a damaged,
    unreadable or read-only one raises StoreError (exit 75) with the one line that says what to do."""
    health = inspect_store(path, time_limit_s=time_limit_s, count_rows=False)
    if health.problem is not None:
        raise health.problem.error(path)
    return health
