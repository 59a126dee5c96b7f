"""The history of retrain jobs in the store: what triggered each one, when, and how it ended.

The retrain policy reads it (last retrain time, cooldown after a rejected or failed run), `status`
and `performance` report it, and the trainer and `autoretrainctl train` write it. Times that drive
decisions are market times (candle open times in ms); wall times are kept for operators.

A running job records its owner (`host:pid:start time`): a row left `running` by a process that died
(kill -9, OOM, a closed SSH session, a power cut) is an orphan. The start time tells a reused pid
(common after a reboot) from the process that claimed the job. Orphans never block the policy or `retrain`, and the
trainer marks them failed; a job still running in another live process is left alone. A job stopped
on purpose (daemon shutdown) ends `aborted`, which is not a setback: no cooldown follows it.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import psutil

from autoretrain.daemon.foundation.timeframes import iso
from autoretrain.daemon.signals.performance import LastRetrain, RetrainSummary
from autoretrain.daemon.store.connection import transaction

QUEUED = "queued"
RUNNING = "running"
PROMOTED = "promoted"
REJECTED = "rejected"
FAILED = "failed"
ABORTED = "aborted"
FINAL_STATUSES = (PROMOTED, REJECTED, FAILED, ABORTED)
ACTIVE_STATUSES = (QUEUED, RUNNING)


def _started_at(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch, to 10 ms), None if there is no such process."""
    try:
        return round(psutil.Process(pid).create_time(), 2)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None


def this_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_started_at(os.getpid()):.2f}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process named by `host:pid:start` still runs (a process on another host is assumed alive).

    Owners written before start times were recorded (`host:pid`) are judged by the pid alone."""
    parts = (owner or "").split(":")
    if len(parts) not in (2, 3):
        return False
    host, pid_text, *start = parts
    if host != socket.gethostname():
        return True
    try:
        started = _started_at(int(pid_text))
        recorded = float(start[0]) if start else None
    except ValueError:
        return False
    except psutil.AccessDenied:
        return True
    if started is None:
        return False
    return recorded is None or abs(started - recorded) < 0.05


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
    owner: str | None
    detail: dict[str, Any]

    @property
    def market_ts(self) -> int | None:
        """Market time of the run: the newest of its request time and its training data's end."""
        times = [t for t in (self.requested_market_ts, self.data_end_ts) if t is not None]
        return max(times) if times else None

    @property
    def orphaned(self) -> bool:
        """Left `running` by a process that is gone."""
        return self.status == RUNNING and not owner_alive(self.owner)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "symbol": self.symbol, "timeframe": self.timeframe, "trigger": self.trigger,
            "reason": self.reason, "status": self.status, "requested_market_time": iso(self.requested_market_ts),
            "data_end": iso(self.data_end_ts), "started_at": self.started_at, "finished_at": self.finished_at,
            "version": self.version, "owner": self.owner, "detail": self.detail,
        }


_COLUMNS = ("id, exchange, symbol, timeframe, trigger, reason, status, requested_market_ts, data_end_ts, "
            "started_at, finished_at, version, owner, detail")
_SERIES = "exchange = ? AND symbol = ? AND timeframe = ?"


def _row(row: tuple[Any, ...]) -> RetrainRun:
    (run_id, exchange, symbol, timeframe, trigger, reason, status, requested_market_ts, data_end_ts, started_at,
     finished_at, version, owner, detail) = row
    return RetrainRun(run_id, exchange, symbol, timeframe, trigger, reason, status, requested_market_ts, data_end_ts,
                      started_at, finished_at, version, owner, json.loads(detail or "{}"))


class RetrainRuns:
    """Reads and writes `retrain_runs` through a connection from store.connection.connect."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def _insert(self, exchange: str, symbol: str, timeframe: str, *, trigger: str, reason: str, status: str,
                requested_market_ts: int | None, owner: str | None) -> int:
        cursor = self.conn.execute(
            "INSERT INTO retrain_runs (exchange, symbol, timeframe, trigger, reason, status, requested_market_ts,"
            " started_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (exchange, symbol, timeframe, trigger, reason, status, requested_market_ts, time.time(), owner),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def start(self, exchange: str, symbol: str, timeframe: str, *, trigger: str, reason: str = "",
              requested_market_ts: int | None = None) -> int:
        """A job this process runs right now (`autoretrainctl train`)."""
        with transaction(self.conn):
            return self._insert(exchange, symbol, timeframe, trigger=trigger, reason=reason, status=RUNNING,
                                requested_market_ts=requested_market_ts, owner=this_owner())

    def queue(self, exchange: str, symbol: str, timeframe: str, *, trigger: str, reason: str = "",
              requested_market_ts: int | None = None) -> tuple[int, bool]:
        """Queue a job for the trainer unless one is already queued or running: (run id, newly queued)."""
        with transaction(self.conn):
            current = self.active(exchange, symbol, timeframe)
            if current is not None:
                return current.id, False
            return self._insert(exchange, symbol, timeframe, trigger=trigger, reason=reason, status=QUEUED,
                                requested_market_ts=requested_market_ts, owner=None), True

    def claim_next(self) -> RetrainRun | None:
        """The oldest queued job, now marked running by this process (the trainer calls this)."""
        if self.conn.execute("SELECT 1 FROM retrain_runs WHERE status = ? LIMIT 1", (QUEUED,)).fetchone() is None:
            return None  # the idle trainer's usual answer, found without taking the write lock
        with transaction(self.conn):
            row = self.conn.execute(
                f"SELECT {_COLUMNS} FROM retrain_runs WHERE status = ? ORDER BY id LIMIT 1", (QUEUED,)
            ).fetchone()
            if row is None:
                return None
            self.conn.execute("UPDATE retrain_runs SET status = ?, started_at = ?, owner = ? WHERE id = ?",
                              (RUNNING, time.time(), this_owner(), row[0]))
        return self.get(int(row[0]))

    def active(self, exchange: str, symbol: str, timeframe: str) -> RetrainRun | None:
        """The queued job, or the running one whose process is alive, of the series (orphans ignored)."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM retrain_runs WHERE {_SERIES} AND status IN (?, ?) ORDER BY id",
            (exchange, symbol, timeframe, *ACTIVE_STATUSES),
        ).fetchall()
        return next((run for run in map(_row, rows) if not run.orphaned), None)

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

    def _orphans(self) -> list[RetrainRun]:
        rows = self.conn.execute(f"SELECT {_COLUMNS} FROM retrain_runs WHERE status = ?", (RUNNING,)).fetchall()
        return [run for run in map(_row, rows) if run.orphaned]

    def fail_orphans(self) -> list[int]:
        """Mark runs left `running` by a process that is gone as failed; returns their ids."""
        if not self._orphans():
            return []  # the usual case, found without taking the write lock
        with transaction(self.conn):
            orphans = self._orphans()  # again under the lock: another process may have marked them
            for run in orphans:
                self._mark_failed(run.id, f"interrupted: the process running it ({run.owner or 'unknown'}) is gone")
        return [run.id for run in orphans]

    def fail_interrupted(self, run_id: int, error: str) -> RetrainRun | None:
        """Mark run `run_id` failed with `error` if it is still `running` and its process is gone (the supervisor,
        which saw that process die and knows why); the run as it was, or None when there was nothing to mark."""
        with transaction(self.conn):
            run = self.get(run_id)
            if run is None or not run.orphaned:
                return None
            self._mark_failed(run_id, error)
        return run

    def _mark_failed(self, run_id: int, error: str) -> None:
        self.conn.execute("UPDATE retrain_runs SET status = ?, finished_at = ?, detail = ? WHERE id = ?",
                          (FAILED, time.time(), json.dumps({"error": error}), run_id))

    def get(self, run_id: int) -> RetrainRun | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM retrain_runs WHERE id = ?", (run_id,)).fetchone()
        return _row(row) if row else None

    def last(self, exchange: str, symbol: str, timeframe: str, statuses: tuple[str, ...] | None = None) -> RetrainRun | None:
        """The newest run for the series, optionally only among the given statuses."""
        query = f"SELECT {_COLUMNS} FROM retrain_runs WHERE {_SERIES}"
        params: list[Any] = [exchange, symbol, timeframe]
        if statuses:
            query += f" AND status IN ({', '.join('?' for _ in statuses)})"
            params.extend(statuses)
        row = self.conn.execute(query + " ORDER BY id DESC LIMIT 1", params).fetchone()
        return _row(row) if row else None

    def recent(self, exchange: str, symbol: str, timeframe: str, limit: int = 20) -> list[RetrainRun]:
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM retrain_runs WHERE {_SERIES} ORDER BY id DESC LIMIT ?",
            (exchange, symbol, timeframe, limit),
        ).fetchall()
        return [_row(r) for r in rows]

    def counts(self, exchange: str, symbol: str, timeframe: str) -> dict[tuple[str, str], int]:
        """How many runs of the series, per (trigger, status), since the store began."""
        rows = self.conn.execute(f"SELECT trigger, status, COUNT(*) FROM retrain_runs WHERE {_SERIES}"
                                 " GROUP BY trigger, status", (exchange, symbol, timeframe)).fetchall()
        return {(str(trigger), str(status)): int(n) for trigger, status, n in rows}

    def tries_against(self, exchange: str, symbol: str, timeframe: str, champion: str) -> int:
        """How many challengers of `champion` were refused: the promotion rule's try count (alpha spending)."""
        return int(self.conn.execute(
            f"SELECT COUNT(*) FROM retrain_runs WHERE {_SERIES} AND status = ?"
            " AND json_extract(detail, '$.metrics.champion.version') = ?",
            (exchange, symbol, timeframe, REJECTED, champion)).fetchone()[0])

    def summary(self, exchange: str, symbol: str, timeframe: str, *, recent: int = 24) -> RetrainSummary:
        """What the policy and performance need: the last finished run, the last completed one, a setback
        (the last finished run was rejected or failed) and how many in a row, the market times of the
        newest `recent` finished runs, and whether a job is queued or running."""
        finished = self.conn.execute(
            f"SELECT {_COLUMNS} FROM retrain_runs WHERE {_SERIES} AND status IN (?, ?, ?) ORDER BY id DESC LIMIT ?",
            (exchange, symbol, timeframe, PROMOTED, REJECTED, FAILED, recent)).fetchall()
        runs = [_row(row) for row in finished]
        last = runs[0] if runs else None
        completed = next((run for run in runs if run.status in (PROMOTED, REJECTED)), None)
        if completed is None and len(runs) == recent:  # older than the newest `recent`: look it up
            completed = self.last(exchange, symbol, timeframe, (PROMOTED, REJECTED))
        setback = last if last is not None and last.status in (REJECTED, FAILED) else None
        in_a_row = next((i for i, run in enumerate(runs) if run.status == PROMOTED), len(runs))
        return RetrainSummary(
            last=LastRetrain(last.id, last.status, last.trigger, last.reason, last.version, last.market_ts,
                             last.finished_at) if last is not None else None,
            last_completed_ts=completed.market_ts if completed is not None else None,
            setback_status=setback.status if setback else None, setback_ts=setback.market_ts if setback else None,
            in_progress=self.active(exchange, symbol, timeframe) is not None, consecutive_setbacks=in_a_row,
            recent_ts=tuple(run.market_ts for run in runs if run.market_ts is not None))
