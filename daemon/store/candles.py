"""Candles in the SQLite store, keyed by (exchange, symbol, timeframe, open time): `CandleTable`.

Upserts are idempotent (storing the same candles twice changes nothing) and atomic per batch: a
batch is stored whole or not at all, even when the writer is killed half-way. Reads return ordered
`CANDLE_DTYPE` arrays; `gaps` reports the holes between stored candles.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass

import numpy as np

from autoretrain.daemon.foundation import candles as candle_ops
from autoretrain.daemon.foundation.timeframes import iso, timeframe_ms
from autoretrain.daemon.store.connection import transaction
from autoretrain.ipc.candles import CANDLE_DTYPE


@dataclass(frozen=True)
class UpsertResult:
    inserted: int
    updated: int
    unchanged: int

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged


@dataclass(frozen=True)
class Gap:
    """Missing candles between two stored ones: `missing` candles after `after_ts`, before `before_ts`."""

    after_ts: int
    before_ts: int
    missing: int

    def as_dict(self) -> dict[str, object]:
        return {"after": iso(self.after_ts), "before": iso(self.before_ts), "missing": self.missing}


@dataclass(frozen=True)
class SeriesSummary:
    exchange: str
    symbol: str
    timeframe: str
    count: int
    first_ts: int | None
    last_ts: int | None

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["first"] = iso(self.first_ts)
        data["last"] = iso(self.last_ts)
        return data


_UPSERT = """
INSERT INTO candles (series_id, ts, open, high, low, close, volume) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (series_id, ts) DO UPDATE SET
    open = excluded.open, high = excluded.high, low = excluded.low,
    close = excluded.close, volume = excluded.volume
WHERE open IS NOT excluded.open OR high IS NOT excluded.high OR low IS NOT excluded.low
   OR close IS NOT excluded.close OR volume IS NOT excluded.volume
"""
_COLUMNS = "ts, open, high, low, close, volume"


class CandleTable:
    """Candles of every series, read and written through the process's one connection (`store.Database`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._series_ids: dict[tuple[str, str, str], int] = {}  # committed series (never deleted)

    def _series_id(self, exchange: str, symbol: str, timeframe: str, *, create: bool) -> int | None:
        key = (exchange, symbol, timeframe)
        if key in self._series_ids:
            return self._series_ids[key]
        row = self.conn.execute(
            "SELECT id FROM series WHERE exchange = ? AND symbol = ? AND timeframe = ?", key
        ).fetchone()
        if row is not None:
            self._series_ids[key] = int(row[0])
            return int(row[0])
        if not create:
            return None
        # not cached: the insert is only real once the caller's transaction commits
        cursor = self.conn.execute("INSERT INTO series (exchange, symbol, timeframe) VALUES (?, ?, ?)", key)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _count_between(self, series_id: int, first: int, last: int) -> int:
        return int(self.conn.execute(
            "SELECT COUNT(*) FROM candles WHERE series_id = ? AND ts BETWEEN ? AND ?", (series_id, first, last)
        ).fetchone()[0])

    def _upsert_locked(self, exchange: str, symbol: str, timeframe: str, batch: np.ndarray, *,
                       counted: bool = True) -> UpsertResult | None:
        batch, _ = candle_ops.normalise(np.asarray(batch, dtype=CANDLE_DTYPE))
        series_id = self._series_id(exchange, symbol, timeframe, create=True)
        assert series_id is not None
        if not counted:
            self.conn.executemany(_UPSERT, ((series_id, *row) for row in batch.tolist()))
            return None
        first, last = int(batch["ts"][0]), int(batch["ts"][-1])
        before_count = self._count_between(series_id, first, last)
        before_changes = self.conn.total_changes
        self.conn.executemany(_UPSERT, ((series_id, *row) for row in batch.tolist()))
        changed = self.conn.total_changes - before_changes
        inserted = self._count_between(series_id, first, last) - before_count
        return UpsertResult(inserted=inserted, updated=changed - inserted, unchanged=len(batch) - changed)

    def upsert(self, exchange: str, symbol: str, timeframe: str, batch: np.ndarray) -> UpsertResult:
        """Store a batch of already-validated candles in one transaction; returns what changed."""
        if len(batch) == 0:
            return UpsertResult(0, 0, 0)
        with transaction(self.conn):
            result = self._upsert_locked(exchange, symbol, timeframe, batch)
        assert result is not None
        return result

    def store_many(self, batches: list[tuple[str, str, str, np.ndarray]]) -> None:
        """Several series in ONE transaction, without counting what changed: ingest's latency path stores
        every symbol that closed together at once."""
        with transaction(self.conn):
            for exchange, symbol, timeframe, batch in batches:
                if len(batch):
                    self._upsert_locked(exchange, symbol, timeframe, batch, counted=False)

    def window(self, exchange: str, symbol: str, timeframe: str, *, start_ms: int | None = None,
               end_ms: int | None = None) -> np.ndarray:
        """Candles with start_ms <= open time <= end_ms (either bound optional), oldest first."""
        series_id = self._series_id(exchange, symbol, timeframe, create=False)
        if series_id is None:
            return candle_ops.empty()
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM candles WHERE series_id = ? AND ts >= ? AND ts <= ? ORDER BY ts",
            (series_id, start_ms if start_ms is not None else -(2**62), end_ms if end_ms is not None else 2**62),
        ).fetchall()
        return np.array(rows, dtype=CANDLE_DTYPE) if rows else candle_ops.empty()

    def latest(self, exchange: str, symbol: str, timeframe: str, count: int,
               end_ms: int | None = None) -> np.ndarray:
        """The newest `count` candles (up to end_ms), oldest first."""
        series_id = self._series_id(exchange, symbol, timeframe, create=False)
        if series_id is None or count <= 0:
            return candle_ops.empty()
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM candles WHERE series_id = ? AND ts <= ? ORDER BY ts DESC LIMIT ?",
            (series_id, end_ms if end_ms is not None else 2**62, count),
        ).fetchall()
        return np.array(rows[::-1], dtype=CANDLE_DTYPE) if rows else candle_ops.empty()

    def summary(self, exchange: str, symbol: str, timeframe: str, until_ms: int | None = None) -> SeriesSummary:
        """Count, first and newest open time of the series' candles (those opening by `until_ms`, if given:
        the readers that must never take a candle from the future for the newest closed one pass it)."""
        series_id = self._series_id(exchange, symbol, timeframe, create=False)
        count, first, last = 0, None, None
        if series_id is not None:
            count, first, last = self.conn.execute(
                "SELECT COUNT(*), MIN(ts), MAX(ts) FROM candles WHERE series_id = ? AND ts <= ?",
                (series_id, until_ms if until_ms is not None else 2**63 - 1),
            ).fetchone()
        return SeriesSummary(exchange, symbol, timeframe, int(count), first, last)

    def gaps(self, exchange: str, symbol: str, timeframe: str) -> list[Gap]:
        """Every place where consecutive stored candles are more than one timeframe apart."""
        series_id = self._series_id(exchange, symbol, timeframe, create=False)
        if series_id is None:
            return []
        step = timeframe_ms(timeframe)
        rows = self.conn.execute(
            """SELECT prev_ts, ts FROM (
                   SELECT ts, LAG(ts) OVER (ORDER BY ts) AS prev_ts FROM candles WHERE series_id = ?
               ) WHERE ts - prev_ts > ? ORDER BY ts""",
            (series_id, step),
        ).fetchall()
        return [Gap(int(a), int(b), (int(b) - int(a)) // step - 1) for a, b in rows]

    def count_recent(self, exchange: str, symbol: str, timeframe: str, *, span_ms: int, limit: int,
                     until_ms: int | None = None) -> int:
        """Candles within `span_ms` before the newest one (opening by `until_ms`, if given; the span exclusive),
        counted up to `limit` (an indexed read)."""
        series_id = self._series_id(exchange, symbol, timeframe, create=False)
        if series_id is None:
            return 0
        until = until_ms if until_ms is not None else 2**63 - 1
        newest = self.conn.execute("SELECT MAX(ts) FROM candles WHERE series_id = ? AND ts <= ?",
                                   (series_id, until)).fetchone()[0]
        if newest is None:
            return 0
        return int(self.conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM candles WHERE series_id = ? AND ts > ? AND ts <= ? LIMIT ?)",
            (series_id, newest - span_ms, newest, limit)).fetchone()[0])

    def all_series(self) -> list[SeriesSummary]:
        rows = self.conn.execute("SELECT exchange, symbol, timeframe FROM series ORDER BY exchange, symbol, timeframe")
        return [self.summary(*row) for row in rows.fetchall()]
