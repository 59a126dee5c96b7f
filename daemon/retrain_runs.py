"""The history of retrain jobs in the store: what triggered each one, when, and how it ended.

The retrain policy reads it (last retrain time, cooldown after a rejected or failed run), `status`
and `performance` report it, and the trainer and `autoretrainctl train` write it. Times that drive
decisions are market times (candle open times in ms); wall times are kept for operators.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from daemon.db import transaction
from daemon.timeframes import iso

QUEUED = "queued"
RUNNING = "running"
PROMOTED = "promoted"
REJECTED = "rejected"
FAILED = "failed"
FINAL_STATUSES = (PROMOTED, REJECTED, FAILED)
ACTIVE_STATUSES = (QUEUED, RUNNING)


@dataclass(frozen=True)
class RetrainRun:
    id: int
    exchange: str
    symbol: str
    timeframe: str
    trigger: str
    reason: str
    status: str
    requested_market_ts: int | None
    data_end_ts: int | None
    started_at: float
    finished_at: float | None
    version: str | None
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "symbol": self.symbol, "timeframe": self.timeframe, "trigger": self.trigger,
            "reason": self.reason, "status": self.status, "requested_market_time": iso(self.requested_market_ts),
            "data_end": iso(self.data_end_ts), "started_at": self.started_at, "finished_at": self.finished_at,
            "version": self.version, "detail": self.detail,
        }


_COLUMNS = ("id, exchange, symbol, timeframe, trigger, reason, status, requested_market_ts, data_end_ts, "
            "started_at, finished_at, version, detail")


def _row(row: tuple[Any, ...]) -> RetrainRun:
    *head, detail = row
    return RetrainRun(*head, detail=json.loads(detail or "{}"))


class RetrainRuns:
    """Reads and writes `retrain_runs` through a connection from daemon.db.connect."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def start(self, exchange: str, symbol: str, timeframe: str, *, trigger: str, reason: str = "",
              requested_market_ts: int | None = None) -> int:
        with transaction(self.conn):
            cursor = self.conn.execute(
                "INSERT INTO retrain_runs (exchange, symbol, timeframe, trigger, reason, status, requested_market_ts,"
                " started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (exchange, symbol, timeframe, trigger, reason, RUNNING, requested_market_ts, time.time()),
            )
            return int(cursor.lastrowid)

    def queue(self, exchange: str, symbol: str, timeframe: str, *, trigger: str, reason: str = "",
              requested_market_ts: int | None = None) -> tuple[int, bool]:
        """Queue a job for the trainer unless one is already queued or running: (run id, newly queued)."""
        with transaction(self.conn):
            row = self.conn.execute(
                "SELECT id FROM retrain_runs WHERE exchange = ? AND symbol = ? AND timeframe = ? AND status IN (?, ?)"
                " ORDER BY id LIMIT 1", (exchange, symbol, timeframe, *ACTIVE_STATUSES),
            ).fetchone()
            if row is not None:
                return int(row[0]), False
            cursor = self.conn.execute(
                "INSERT INTO retrain_runs (exchange, symbol, timeframe, trigger, reason, status, requested_market_ts,"
                " started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (exchange, symbol, timeframe, trigger, reason, QUEUED, requested_market_ts, time.time()),
            )
            return int(cursor.lastrowid), True

    def claim_next(self) -> RetrainRun | None:
        """The oldest queued job, now marked running (the trainer calls this)."""
        with transaction(self.conn):
            row = self.conn.execute(
                f"SELECT {_COLUMNS} FROM retrain_runs WHERE status = ? ORDER BY id LIMIT 1", (QUEUED,)
            ).fetchone()
            if row is None:
                return None
            self.conn.execute("UPDATE retrain_runs SET status = ?, started_at = ? WHERE id = ?",
                              (RUNNING, time.time(), row[0]))
        return self.get(int(row[0]))

    def active(self, exchange: str, symbol: str, timeframe: str) -> RetrainRun | None:
        """The queued or running job of the series, if any."""
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM retrain_runs WHERE exchange = ? AND symbol = ? AND timeframe = ?"
            " AND status IN (?, ?) ORDER BY id LIMIT 1", (exchange, symbol, timeframe, *ACTIVE_STATUSES),
        ).fetchone()
        return _row(row) if row else None

    def finish(self, run_id: int, status: str, *, version: str | None = None, data_end_ts: int | None = None,
               detail: dict[str, Any] | None = None) -> None:
        if status not in FINAL_STATUSES:
            raise ValueError(f"not a final status: {status}")
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE retrain_runs SET status = ?, version = ?, data_end_ts = COALESCE(?, data_end_ts),"
                " finished_at = ?, detail = ? WHERE id = ?",
                (status, version, data_end_ts, time.time(), json.dumps(detail or {}, default=str), run_id),
            )

    def fail_interrupted(self, reason: str = "interrupted: the trainer stopped before the run finished") -> int:
        """Mark runs left 'running' by a killed trainer as failed; returns how many."""
        with transaction(self.conn):
            cursor = self.conn.execute(
                "UPDATE retrain_runs SET status = ?, finished_at = ?, detail = ? WHERE status = ?",
                (FAILED, time.time(), json.dumps({"error": reason}), RUNNING),
            )
            return cursor.rowcount

    def get(self, run_id: int) -> RetrainRun | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM retrain_runs WHERE id = ?", (run_id,)).fetchone()
        return _row(row) if row else None

    def last(self, exchange: str, symbol: str, timeframe: str, statuses: tuple[str, ...] | None = None) -> RetrainRun | None:
        """The newest run for the series, optionally only among the given statuses."""
        query = f"SELECT {_COLUMNS} FROM retrain_runs WHERE exchange = ? AND symbol = ? AND timeframe = ?"
        params: list[Any] = [exchange, symbol, timeframe]
        if statuses:
            query += f" AND status IN ({', '.join('?' for _ in statuses)})"
            params.extend(statuses)
        row = self.conn.execute(query + " ORDER BY id DESC LIMIT 1", params).fetchone()
        return _row(row) if row else None

    def recent(self, exchange: str, symbol: str, timeframe: str, limit: int = 20) -> list[RetrainRun]:
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM retrain_runs WHERE exchange = ? AND symbol = ? AND timeframe = ?"
            " ORDER BY id DESC LIMIT ?", (exchange, symbol, timeframe, limit),
        ).fetchall()
        return [_row(r) for r in rows]
