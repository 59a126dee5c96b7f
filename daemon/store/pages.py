"""Rows read straight off the file's B-tree pages, for what the B-tree no longer reaches: the lost and found.

When an interior page is gone (a truncated file loses the pages near its end, where a growing table's interior
pages often sit), SQLite cannot reach the intact leaves below it, so no query reads their rows. `PageFile` reads
every page of the file itself (SQLite's file format: https://www.sqlite.org/fileformat2.html), decodes the cells of
leaf pages (and of index interior pages, which hold rows of a WITHOUT ROWID table too) into values, and
`Signature` tells which of those rows can belong to a table of the project: its column count and, column by
column, its types and NOT NULL. Only tables that showed damage are searched this way, and a row found here never
replaces one the B-tree still reached (it is inserted OR IGNORE).
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TABLE_LEAF, TABLE_INTERIOR, INDEX_LEAF, INDEX_INTERIOR = 0x0D, 0x05, 0x0A, 0x02
_INT_SIZES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}


class _Garbage(Exception):
    """A cell that does not decode: skipped."""


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    value = 0
    for index in range(9):
        if offset + index >= len(data):
            raise _Garbage("varint past the end")
        byte = data[offset + index]
        if index == 8:
            return (value << 8) | byte, offset + 9
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, offset + index + 1
    raise _Garbage("unreachable")


def decode_record(payload: bytes) -> tuple[Any, ...]:
    """SQLite's record format: a header of serial types, then the values."""
    header_size, offset = _varint(payload, 0)
    if not 0 < header_size <= len(payload):
        raise _Garbage("bad record header")
    types = []
    while offset < header_size:
        serial, offset = _varint(payload, offset)
        types.append(serial)
    values: list[Any] = []
    body = header_size
    for serial in types:
        if serial in _INT_SIZES:
            size = _INT_SIZES[serial]
            values.append(int.from_bytes(payload[body:body + size], "big", signed=True))
        elif serial == 7:
            size = 8
            values.append(struct.unpack(">d", payload[body:body + 8])[0] if body + 8 <= len(payload) else None)
        elif serial in (0, 8, 9):
            size = 0
            values.append(None if serial == 0 else serial - 8)
        elif serial >= 12:
            size = (serial - 12) // 2
            chunk = payload[body:body + size]
            try:
                values.append(chunk.decode("utf-8") if serial % 2 else bytes(chunk))
            except UnicodeDecodeError:
                raise _Garbage("text that is not UTF-8") from None
        else:
            raise _Garbage(f"reserved serial type {serial}")
        body += size
        if body > len(payload):
            raise _Garbage("record longer than its payload")
    return tuple(values)


@dataclass(frozen=True)
class Cell:
    page: int
    kind: int
    rowid: int | None  # the key of a table leaf cell (rowid tables)
    values: tuple[Any, ...]


class PageFile:
    """The pages of a store file, read as bytes (never through SQLite)."""

    def __init__(self, path: Path, page_size: int, reserved: int = 0) -> None:
        self.path = path
        self.page_size = page_size
        self.usable = page_size - reserved
        self.pages = path.stat().st_size // page_size

    def _page(self, handle: Any, number: int) -> bytes:
        handle.seek((number - 1) * self.page_size)
        return handle.read(self.page_size)

    def _payload(self, handle: Any, page: bytes, offset: int, size: int, table_leaf: bool) -> bytes:
        """The cell's payload, following its overflow pages when it did not fit on the page."""
        usable = self.usable
        most = usable - 35 if table_leaf else (usable - 12) * 64 // 255 - 23
        if size <= most:
            return page[offset:offset + size]
        least = (usable - 12) * 32 // 255 - 23
        local = least + (size - least) % (usable - 4)
        local = local if local <= most else least
        data = bytearray(page[offset:offset + local])
        following = int.from_bytes(page[offset + local:offset + local + 4], "big")
        seen = set()
        while len(data) < size:
            if not 1 < following <= self.pages or following in seen:
                raise _Garbage("broken overflow chain")
            seen.add(following)
            overflow = self._page(handle, following)
            following = int.from_bytes(overflow[:4], "big")
            data += overflow[4:usable][:size - len(data)]
        return bytes(data)

    def _cells(self, handle: Any, number: int, kinds: frozenset[int]) -> Iterator[Cell]:
        page = self._page(handle, number)
        if len(page) < self.page_size or page[0] not in kinds:
            return
        kind = page[0]
        count = int.from_bytes(page[3:5], "big")
        header = 8 if kind in (TABLE_LEAF, INDEX_LEAF) else 12
        for index in range(count):
            pointer = int.from_bytes(page[header + 2 * index:header + 2 * index + 2], "big")
            if not header < pointer < self.usable:
                continue
            try:
                offset = pointer + (4 if kind == INDEX_INTERIOR else 0)
                size, offset = _varint(page, offset)
                rowid = None
                if kind == TABLE_LEAF:
                    rowid, offset = _varint(page, offset)
                    rowid = rowid - (1 << 64) if rowid >= 1 << 63 else rowid
                payload = self._payload(handle, page, offset, size, kind == TABLE_LEAF)
                yield Cell(number, kind, rowid, decode_record(payload))
            except (_Garbage, IndexError, struct.error):
                continue

    def _free_pages(self, handle: Any) -> set[int]:
        """The pages on the freelist (from the header): what is left on them was deleted, never to come back."""
        header = self._page(handle, 1)[:100]
        trunk, free = int.from_bytes(header[32:36], "big"), set()
        while 1 < trunk <= self.pages and trunk not in free:
            free.add(trunk)
            page = self._page(handle, trunk)
            count = min(int.from_bytes(page[4:8], "big"), (self.usable - 8) // 4)
            free.update(int.from_bytes(page[8 + 4 * i:12 + 4 * i], "big") for i in range(count))
            trunk = int.from_bytes(page[:4], "big")
        return free

    def cells(self, kinds: frozenset[int]) -> Iterator[Cell]:
        """Every decodable cell on every page of one of these kinds (page 1, the schema, and free pages left out)."""
        with open(self.path, "rb") as handle:
            free = self._free_pages(handle)
            for number in range(2, self.pages + 1):
                if number not in free:
                    yield from self._cells(handle, number, kinds)


def _fits_type(value: Any, declared: str) -> bool:
    declared = declared.upper()
    if "INT" in declared:
        return type(value) is int
    if "REAL" in declared or "FLOA" in declared or "DOUB" in declared:
        return type(value) in (int, float)
    if "TEXT" in declared or "CHAR" in declared:
        return type(value) is str
    return True


@dataclass(frozen=True)
class Signature:
    """What a row of a table looks like on disk: its columns in record order, and how many an old row may have."""

    table: str
    columns: tuple[str, ...]  # in record order (a WITHOUT ROWID table's key columns first)
    types: tuple[str, ...]
    not_null: tuple[bool, ...]
    alias: int | None  # the INTEGER PRIMARY KEY column (stored as NULL: the value is the cell's rowid)
    least_columns: int
    kinds: frozenset[int]

    def row(self, cell: Cell) -> tuple[tuple[str, ...], tuple[Any, ...]] | None:
        """(columns, values) to insert, or None when the cell cannot be a row of this table."""
        values = list(cell.values)
        if not self.least_columns <= len(values) <= len(self.columns):
            return None
        if self.alias is not None:
            if cell.rowid is None or values[self.alias] is not None:
                return None
            values[self.alias] = cell.rowid
        for value, declared, required in zip(values, self.types, self.not_null, strict=False):
            if value is None:
                if required:
                    return None
            elif not _fits_type(value, declared):
                return None
        return self.columns[:len(values)], tuple(values)


def signature(conn: sqlite3.Connection, table: str, without_rowid: bool, least_columns: int) -> Signature:
    """The table's signature from its definition in `conn` (the new store, with this version's schema)."""
    info = list(conn.execute(f'PRAGMA table_info("{table}")'))  # cid, name, type, notnull, default, pk
    keys = sorted((row for row in info if row[5]), key=lambda row: row[5])
    if without_rowid:
        ordered = keys + [row for row in info if not row[5]]
        alias = None
    else:
        ordered = info
        alias = next((i for i, row in enumerate(info) if row[5] and str(row[2]).upper() == "INTEGER"), None) \
            if len(keys) == 1 else None
    kinds = frozenset({INDEX_LEAF, INDEX_INTERIOR} if without_rowid else {TABLE_LEAF})
    return Signature(table, tuple(r[1] for r in ordered), tuple(str(r[2]) for r in ordered),
                     tuple(bool(r[3]) or bool(r[5] and without_rowid) for r in ordered), alias, least_columns, kinds)
