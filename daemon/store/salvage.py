"""Reading what is still readable out of a damaged table, row by row: the copy behind `autoretrainctl store recover`.

Python's sqlite3 has no `.recover` (that is the sqlite3 shell's). What it has is enough: a table is a B-tree in
key order (the rowid, or the primary key of a WITHOUT ROWID table such as `candles`), a damaged page makes every
read that passes through it fail, and a seek to a key beyond that page never touches it. So `KeyWalk` reads the
table in key order from one cursor; when a read fails, it finds the first key from which reading works again by
galloping (1, 2, 4, ... keys on) and then bisecting, and reads on from there. Every row on an intact page is
kept; the rows on the damaged pages are lost, and each such stretch is counted as a damaged region.

Keys made of integers (every table of the project) are walked this way; a table with any other key is read with
one plain scan that stops at its first damaged page.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from autoretrain.daemon.store.connection import transaction
from autoretrain.daemon.store.failures import is_store_failure
from autoretrain.daemon.store.pages import PageFile, Signature, signature

_OFFSET = 1 << 63  # an int64 key component + _OFFSET is in [0, 2**64)
BATCH = 512  # rows read per query


@dataclass
class TableSalvage:
    """One table's recovery: rows counted before (None where even counting failed), kept, refused by the new store."""

    name: str
    before: int | None
    recovered: int = 0
    rejected: int = 0  # read, but refused by the new store: its parent row was lost, or a value cannot be right
    damaged_regions: int = 0  # stretches of keys skipped because their pages cannot be read
    found_on_pages: int = 0  # of `recovered`: rows read straight off pages the B-tree no longer reaches
    in_damaged_store: bool = True

    @property
    def lost(self) -> int | None:
        return None if self.before is None else max(0, self.before - self.recovered)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lost": self.lost}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class KeyWalk:
    """The readable rows of one table in key order, resuming past every damaged region.

    Keys are mapped to integers ("ordinals": each int64 component offset to [0, 2**64), the components side by
    side), so that "the next key" and "half-way between two keys" mean something for a composite key too."""

    def __init__(self, conn: sqlite3.Connection, table: str, keys: tuple[str, ...], columns: list[str]) -> None:
        self.conn = conn
        self.keys = keys
        self.top = (1 << (64 * len(keys))) - 1
        key_list = ", ".join(_quoted(k) if k != "rowid" else k for k in keys)
        where = f"{key_list} >= ?" if len(keys) == 1 else f"({key_list}) >= ({', '.join('?' * len(keys))})"
        self.sql = (f"SELECT {key_list}, {', '.join(_quoted(c) for c in columns)} FROM {_quoted(table)} "
                    f"WHERE {where} ORDER BY {key_list}")
        self.damaged_regions = 0

    def _key(self, ordinal: int) -> tuple[int, ...]:
        parts = []
        for _ in self.keys:
            parts.append((ordinal & ((1 << 64) - 1)) - _OFFSET)
            ordinal >>= 64
        return tuple(reversed(parts))

    def _ordinal(self, key: tuple[Any, ...]) -> int:
        """The ordinal of a key as read. Garbage that parses may not be an integer: a REAL counts as its floor, NULL
        as the lowest key, TEXT or BLOB (which SQLite sorts after every number) as the highest, and so what follows it."""
        ordinal, highest = 0, False
        for part in key:
            if highest:
                value = _OFFSET - 1
            elif type(part) is int:
                value = part
            elif isinstance(part, float) and math.isfinite(part):
                value = max(-_OFFSET, min(_OFFSET - 1, math.floor(part)))
            elif part is None:
                value = -_OFFSET
            else:
                value, highest = _OFFSET - 1, True
            ordinal = (ordinal << 64) | (value + _OFFSET)
        return ordinal

    def _fetch(self, ordinal: int, limit: int) -> list[tuple[Any, ...]]:
        """Up to `limit` rows from this key on. LIMIT makes SQLite stop at the last row asked for: iterating an open
        cursor instead would lose the row before a damaged page (the sqlite3 module reads one row ahead)."""
        return self.conn.execute(f"{self.sql} LIMIT {int(limit)}", self._key(ordinal)).fetchall()

    def _readable(self, ordinal: int) -> bool:
        """Whether reading from this key works: the seek and the first row after it (or the end of the table)."""
        try:
            self._fetch(ordinal, 1)
            return True
        except sqlite3.DatabaseError as exc:
            if not is_store_failure(exc):
                raise
            return False

    def _readable_prefix(self, ordinal: int, limit: int) -> list[tuple[Any, ...]]:
        """The most rows from this key on that can be read before the damage (`limit` of them could not)."""
        good: list[tuple[Any, ...]] = []
        low, high = 0, limit  # reading `low` rows works, `high` fails
        while high - low > 1:
            middle = (low + high) // 2
            try:
                good, low = self._fetch(ordinal, middle), middle
            except sqlite3.DatabaseError as exc:
                if not is_store_failure(exc):
                    raise
                high = middle
        return good

    def _next_readable(self, bad: int) -> int | None:
        """The first key after `bad` (where reading fails) from which reading works; None if none to the end."""
        self.damaged_regions += 1
        step = 1
        while bad < self.top:
            probe = min(bad + step, self.top)
            if self._readable(probe):
                good = probe
                while good - bad > 1:  # bisect: reading fails at `bad` and works at `good`
                    middle = (bad + good) // 2
                    if self._readable(middle):
                        good = middle
                    else:
                        bad = middle
                return good
            bad, step = probe, step * 2
        return None

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """Each readable row's columns (the key columns left out), in key order."""
        start: int | None = 0
        width = len(self.keys)
        while start is not None:
            try:
                batch, damaged = self._fetch(start, BATCH), False
            except sqlite3.DatabaseError as exc:
                if not is_store_failure(exc):
                    raise
                batch, damaged = self._readable_prefix(start, BATCH), True
            for row in batch:
                yield row[width:]
            if not damaged and len(batch) < BATCH:
                return  # the end of the table
            after = self._ordinal(batch[-1][:width]) + 1 if batch else start
            if after > self.top:
                return
            if not batch or (damaged and not self._readable(after)):
                start = self._next_readable(after)  # `after` is where reading fails: skip the damaged pages
            else:
                start = after


def _plain_rows(conn: sqlite3.Connection, table: str, columns: list[str], counter: TableSalvage) -> Iterator[tuple[Any, ...]]:
    """A table whose key is not made of integers: one scan, up to its first damaged page."""
    try:
        yield from conn.execute(f"SELECT {', '.join(_quoted(c) for c in columns)} FROM {_quoted(table)}")
    except sqlite3.DatabaseError as exc:
        if not is_store_failure(exc):
            raise
        counter.damaged_regions += 1


def key_columns(conn: sqlite3.Connection, table: str, create_sql: str) -> tuple[str, ...] | None:
    """("rowid",) for a rowid table, the primary key of a WITHOUT ROWID one; None when a key is not an integer."""
    if "WITHOUT ROWID" not in " ".join(create_sql.upper().split()):
        return ("rowid",)
    info = [row for row in conn.execute(f"PRAGMA table_info({_quoted(table)})") if row[5]]
    if not all("INT" in str(row[2]).upper() for row in info):
        return None
    return tuple(row[1] for row in sorted(info, key=lambda row: row[5]))


def count_rows(conn: sqlite3.Connection, table: str) -> int | None:
    """COUNT(*) in the damaged store (often answered from an intact index); None when that fails too."""
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {_quoted(table)}").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        if not is_store_failure(exc):
            raise
        return None


def _lost_and_found(dest: sqlite3.Connection, pages: PageFile, shape: Signature, result: TableSalvage) -> None:
    """Rows of the table on pages the B-tree no longer reaches; a row the walk already copied stays as it is."""
    for cell in pages.cells(shape.kinds):
        row = shape.row(cell)
        if row is None:
            continue
        columns, values = row
        try:
            inserted = dest.execute(f"INSERT OR IGNORE INTO {_quoted(shape.table)} ({', '.join(_quoted(c) for c in columns)}) "
                                    f"VALUES ({', '.join('?' * len(values))})", values).rowcount
        except sqlite3.IntegrityError:
            result.rejected += 1
            continue
        result.recovered += inserted
        result.found_on_pages += inserted


def copy_table(source: sqlite3.Connection, dest: sqlite3.Connection, table: str, create_sql: str,
               columns: list[str], *, pages: PageFile | None = None, least_columns: int = 1) -> TableSalvage:
    """Copy every readable row of `table` (the `columns` both stores have) into `dest`, in one transaction; where the
    table showed damage and `pages` is given, then also its rows on pages the B-tree no longer reaches."""
    result = TableSalvage(table, before=count_rows(source, table))
    keys = key_columns(source, table, create_sql)
    walk = KeyWalk(source, table, keys, columns) if keys else None
    rows = walk.rows() if walk else _plain_rows(source, table, columns, result)
    insert = f"INSERT INTO {_quoted(table)} ({', '.join(_quoted(c) for c in columns)}) VALUES ({', '.join('?' * len(columns))})"
    with transaction(dest):
        for row in rows:
            try:
                dest.execute(insert, row)
                result.recovered += 1
            except sqlite3.IntegrityError:
                result.rejected += 1
        if walk:
            result.damaged_regions += walk.damaged_regions
        if pages is not None and (result.damaged_regions or result.before is None):
            without_rowid = keys != ("rowid",)
            _lost_and_found(dest, pages, signature(dest, table, without_rowid, least_columns), result)
    return result
