"""`autoretrainctl store recover`: a new store holding every row still readable in a damaged one, kept beside it.

1. The damaged store is read through a read-only connection (its WAL too), so it is never changed. When its
   first page is unreadable (garbage in the header or in the schema table), a scratch copy gets a first page
   rebuilt from this version's own schema: a store the daemon made has its tables' root pages in the order its
   migrations created them, so the rest of the file reads again; rows that do not fit are refused.
2. A new store with the project's schema is written beside it (`autoretrain.db.recovering`), table by table in
   the schema's order (parents before children), every readable row (`salvage.copy_table`); a row whose parent
   was lost (candles of a lost series, an outcome of a lost signal) is refused by the foreign keys.
3. The damaged store is renamed `autoretrain.db.damaged-<UTC time>` (with its -wal), the new one takes its
   name. Until then nothing was renamed: a failure half-way leaves the damaged store where it was.

Candles lost are fetched again: the daemon's backfill refills the newest ones, `autoretrainctl download` the
holes inside the history (the report lists them). Lost signals are not made again (the daemon signals every
candle after the newest one kept); the performance figures count what was kept.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoretrain.daemon.foundation.errors import NoInputError, StoreError
from autoretrain.daemon.store.candles import CandleTable
from autoretrain.daemon.store.connection import connect
from autoretrain.daemon.store.health import SQLITE_MAGIC, open_read_only, tables_at
from autoretrain.daemon.store.pages import PageFile
from autoretrain.daemon.store.salvage import TableSalvage, copy_table
from autoretrain.daemon.store.schema import MIGRATIONS

SIDE_FILES = ("-wal", "-shm")
DEFAULT_PAGE_SIZE = 4096


@dataclass
class Recovery:
    """What `store recover` did: per table, rows before (where countable) and kept; the candle series and holes."""

    path: str
    kept_as: str
    tables: list[TableSalvage]
    schema_page_rebuilt: bool = False
    tables_left_behind: list[str] = field(default_factory=list)  # in the damaged store, unknown to this version
    candle_series: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kept_as": self.kept_as, "tables": [t.as_dict() for t in self.tables],
                "schema_page_rebuilt": self.schema_page_rebuilt, "tables_left_behind": self.tables_left_behind,
                "candle_series": self.candle_series, "seconds": round(self.seconds, 3)}


def _side(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _remove(path: Path) -> None:
    for name in (path, *(_side(path, suffix) for suffix in SIDE_FILES)):
        name.unlink(missing_ok=True)


def _source_tables(conn: sqlite3.Connection) -> dict[str, str]:
    """name -> CREATE statement of each table of the damaged store (reading its schema table)."""
    return {name: sql or "" for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}


def _page_size(path: Path) -> int:
    """The damaged header's page size where that field still makes sense, else SQLite's default."""
    with open(path, "rb") as handle:
        header = handle.read(100)
    size = int.from_bytes(header[16:18], "big") if len(header) >= 18 else 0
    size = 65536 if size == 1 else size
    return size if 512 <= size <= 65536 and not size & (size - 1) else DEFAULT_PAGE_SIZE


def _template_page_one(page_size: int) -> bytes:
    """Page 1 of a brand-new store with this version's schema: the header and the schema table."""
    with tempfile.TemporaryDirectory(prefix="autoretrain-template-") as folder:
        path = Path(folder) / "template.db"
        raw = sqlite3.connect(path)
        raw.execute(f"PRAGMA page_size = {page_size}")
        raw.execute("PRAGMA user_version = 0")  # creates the file with that page size
        raw.close()
        connect(path).close()
        return path.read_bytes()[:page_size]


def _rebuilt_copy(path: Path, scratch: Path) -> sqlite3.Connection:
    """A copy of the damaged store (and its WAL) whose page 1 is the template's, opened read-only."""
    page_size = _page_size(path)
    page = bytearray(_template_page_one(page_size))
    pages = max(1, path.stat().st_size // page_size)
    page[28:32] = pages.to_bytes(4, "big")  # the database size in pages (valid: the template's counters match)
    shutil.copyfile(path, scratch)
    if _side(path, "-wal").exists():
        shutil.copyfile(_side(path, "-wal"), _side(scratch, "-wal"))
    with open(scratch, "r+b") as handle:
        handle.write(page)
    return open_read_only(scratch, relaxed=True)


def _open_source(path: Path, scratch: Path) -> tuple[sqlite3.Connection, dict[str, str], bool]:
    """The damaged store as read-only connection, its tables, and whether its page 1 had to be rebuilt."""
    try:
        conn = open_read_only(path, relaxed=True)
        try:
            tables = _source_tables(conn)
            if tables:
                return conn, tables, False
        except sqlite3.DatabaseError:
            pass
        conn.close()
    except sqlite3.DatabaseError:
        pass
    conn = _rebuilt_copy(path, scratch)
    try:
        return conn, _source_tables(conn), True
    except sqlite3.DatabaseError:
        conn.close()
        return sqlite3.connect(":memory:"), {}, True  # nothing at all is readable: an empty store it is


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info(\"{table}\")")]


def _least_columns(table: str) -> int:
    """The columns the table had when it was created: a row written then has no fewer."""
    return next(tables_at(version)[table] for version in range(1, len(MIGRATIONS) + 1) if table in tables_at(version))


def _page_file(path: Path) -> PageFile | None:
    """The damaged store's pages as bytes (the lost and found), with the page size and reserved bytes of its header."""
    if not path.exists():
        return None
    with open(path, "rb") as handle:
        header = handle.read(100)
    reserved = header[20] if header.startswith(SQLITE_MAGIC) and len(header) > 20 and header[20] < 64 else 0
    return PageFile(path, _page_size(path), reserved)


def _candle_series(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Per series in the new store: candles kept and the holes between them (what `download` can refill)."""
    table = CandleTable(conn)
    series = []
    for summary in table.all_series():
        gaps = table.gaps(summary.exchange, summary.symbol, summary.timeframe)
        series.append({**summary.as_dict(), "holes": len(gaps), "missing": sum(g.missing for g in gaps),
                       "first_hole": gaps[0].as_dict() if gaps else None})
    return series


def _kept_name(path: Path, now: float) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    kept, number = path.with_name(f"{path.name}.damaged-{stamp}"), 1
    while kept.exists():
        number += 1
        kept = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    return kept


def _swap(path: Path, new: Path, kept: Path) -> None:
    """The damaged store (and its WAL) to `kept`, the new one to `path`; then make the renames durable."""
    for suffix in ("", *SIDE_FILES):
        if _side(path, suffix).exists():
            os.replace(_side(path, suffix), _side(kept, suffix))
    os.replace(new, path)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _check_space(path: Path) -> None:
    needed = path.stat().st_size * 2  # the new store, and a scratch copy where page 1 must be rebuilt
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise StoreError(f"not enough free space beside {path} to recover it: {free // 2**20} MiB free, about "
                         f"{needed // 2**20} MiB needed; free some space and try again")


def recover_store(path: str | Path, *, now: float | None = None) -> Recovery:
    """Write every readable row of the store at `path` into a new store that takes its place; keep the damaged
    one renamed beside it. The caller makes sure no daemon runs on it (the state directory's lock)."""
    path = Path(path)
    if not path.is_file():
        raise NoInputError(f"no store file at {path}: nothing to recover")
    _check_space(path)
    started = time.monotonic()
    new, scratch = _side(path, ".recovering"), _side(path, ".scratch")
    _remove(new)
    _remove(scratch)
    try:
        source, source_tables, rebuilt = _open_source(path, scratch)
    except BaseException:
        _remove(scratch)
        raise
    pages = _page_file(scratch if rebuilt else path)
    try:
        dest = connect(new)
        dest.execute("PRAGMA journal_mode=DELETE")  # a fresh file needs no WAL as big as itself
        try:
            salvaged = []
            for table in tables_at(len(MIGRATIONS)):
                if table not in source_tables:
                    salvaged.append(TableSalvage(table, before=None, in_damaged_store=False))
                    continue
                wanted = set(_columns(source, table))
                columns = [c for c in _columns(dest, table) if c in wanted]
                salvaged.append(copy_table(source, dest, table, source_tables[table], columns, pages=pages,
                                           least_columns=_least_columns(table)))
            series = _candle_series(dest)
        finally:
            dest.close()
    except BaseException:
        source.close()
        _remove(new)
        _remove(scratch)
        raise
    source.close()
    _remove(scratch)
    with open(new, "rb+") as handle:
        os.fsync(handle.fileno())
    kept = _kept_name(path, time.time() if now is None else now)
    try:
        _swap(path, new, kept)
    except OSError as exc:  # an immutable file, a read-only folder: nothing was lost, the new store is beside it
        state = "is still in place" if path.exists() else f"was moved to {kept}"
        raise StoreError(f"cannot put the recovered store in place of {path}: {exc.strerror or exc}; the damaged "
                         f"store {state} and the recovered one is {new}") from None
    left_behind = sorted(set(source_tables) - set(tables_at(len(MIGRATIONS))))
    return Recovery(str(path), str(kept), salvaged, rebuilt, left_behind, series, time.monotonic() - started)
