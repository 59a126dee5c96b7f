"""Signals in the SQLite store: exactly one per (exchange, symbol, timeframe, candle open time).

Recording a candle's signal a second time (the daemon re-runs a candle after a crash or a hot-swap)
keeps the first one and reports False, so a signal is never duplicated nor silently rewritten.
`settle` writes outcomes once their exit candle is stored (the arithmetic is `signals.outcomes`).

The store also keeps when each model started serving a series (`model_activations`): the window
"since the current model" starts at the newest activation, so a promotion, and equally a rollback
to an older version, starts a fresh window that performance and the retrain policy measure.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from autoretrain.daemon.foundation.timeframes import iso, timeframe_ms
from autoretrain.daemon.signals.outcomes import Outcome, trade_result
from autoretrain.daemon.signals.vote import Signal
from autoretrain.daemon.store.connection import transaction


@dataclass(frozen=True)
class Activation:
    """`version` (None: algorithms only) serves the series from candle `market_ts` on."""

    version: str | None
    market_ts: int
    recorded_at: float

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "since": iso(self.market_ts), "market_ts": self.market_ts}


@dataclass(frozen=True)
class SignalRecord:
    """A stored signal and its outcome (None while pending)."""

    signal: Signal
    outcome: Outcome | None

    def as_dict(self) -> dict[str, Any]:
        return {**self.signal.as_dict(), "status": "settled" if self.outcome else "pending",
                "outcome": self.outcome.as_dict() if self.outcome else None}


_SIGNAL_COLUMNS = ("s.id, s.candle_ts, s.price, s.action, s.confidence, s.probability_up, s.model_version, "
                   "s.model_probability, s.components, s.algo_action, s.algo_probability")
_OUTCOME_COLUMNS = ("o.exit_ts, o.exit_price, o.return_pct, o.correct, o.pnl_pct, o.algo_correct, o.algo_pnl_pct, "
                    "o.horizon, o.fee_bps")
_SERIES = "s.exchange = ? AND s.symbol = ? AND s.timeframe = ?"


def _bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _record(row: tuple[Any, ...]) -> SignalRecord:
    (signal_id, candle_ts, price, action, confidence, probability, version, model_probability, components,
     algo_action, algo_probability, exit_ts, *rest) = row
    signal = Signal(candle_ts=candle_ts, price=price, action=action, confidence=confidence,
                    probability_up=probability, model_version=version, model_probability=model_probability,
                    components=json.loads(components or "{}"), algo_action=algo_action,
                    algo_probability=algo_probability)
    if exit_ts is None:
        return SignalRecord(signal, None)
    exit_price, return_pct, correct, pnl, algo_correct, algo_pnl, horizon, fee_bps = rest
    outcome = Outcome(signal_id, candle_ts, action, price, exit_ts, exit_price, return_pct, _bool(correct), pnl,
                      _bool(algo_correct), algo_pnl, horizon, fee_bps)
    return SignalRecord(signal, outcome)


_DUE = """
SELECT s.id, s.candle_ts, s.price, s.action, s.algo_action, c.ts, c.close
FROM signals s
JOIN series se ON se.exchange = s.exchange AND se.symbol = s.symbol AND se.timeframe = s.timeframe
JOIN candles c ON c.series_id = se.id AND c.ts = s.candle_ts + ?
WHERE s.exchange = ? AND s.symbol = ? AND s.timeframe = ? AND s.pending = 1
ORDER BY s.candle_ts
"""
_INSERT_OUTCOME = """
INSERT OR IGNORE INTO outcomes (signal_id, exit_ts, exit_price, return_pct, correct, pnl_pct, algo_correct,
                                algo_pnl_pct, horizon, fee_bps, settled_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


class SignalTable:
    """Signals, their outcomes and model activations, through the process's one connection (`store.Database`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def record(self, exchange: str, symbol: str, timeframe: str, signal: Signal) -> bool:
        """Store the signal of a candle; False (and nothing changes) when that candle already has one."""
        return self.record_many(exchange, timeframe, [(symbol, signal)])[0]

    def record_many(self, exchange: str, timeframe: str, signals: list[tuple[str, Signal]]) -> list[bool]:
        """`record` for several (symbol, signal) pairs in one transaction (symbols that closed together)."""
        inserted = []
        with transaction(self.conn):
            for symbol, signal in signals:
                cursor = self.conn.execute(
                    "INSERT OR IGNORE INTO signals (exchange, symbol, timeframe, candle_ts, price, action, confidence,"
                    " probability_up, model_version, model_probability, algo_action, algo_probability, components,"
                    " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (exchange, symbol, timeframe, signal.candle_ts, signal.price, signal.action, signal.confidence,
                     signal.probability_up, signal.model_version, signal.model_probability, signal.algo_action,
                     signal.algo_probability, json.dumps(signal.components), time.time()),
                )
                inserted.append(cursor.rowcount == 1)
        return inserted

    def settle(self, exchange: str, symbol: str, timeframe: str, *, horizon: int, fee_bps: float) -> list[Outcome]:
        """Settle every pending signal of the series whose exit candle is stored; returns those settled now."""
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1 candle, got {horizon}")
        offset = horizon * timeframe_ms(timeframe)
        settled: list[Outcome] = []
        now = time.time()
        with transaction(self.conn):
            for signal_id, candle_ts, entry, action, algo_action, exit_ts, exit_price in self.conn.execute(
                    _DUE, (offset, exchange, symbol, timeframe)).fetchall():
                correct, pnl = trade_result(action, entry, exit_price, fee_bps)
                algo_correct, algo_pnl = trade_result(algo_action, entry, exit_price, fee_bps)
                return_pct = 100.0 * (exit_price / entry - 1.0)
                cursor = self.conn.execute(_INSERT_OUTCOME, (signal_id, exit_ts, exit_price, return_pct, _flag(correct),
                                                             pnl, _flag(algo_correct), algo_pnl, horizon, fee_bps, now))
                self.conn.execute("UPDATE signals SET pending = 0 WHERE id = ?", (signal_id,))
                if cursor.rowcount == 1:
                    settled.append(Outcome(signal_id, candle_ts, action, entry, exit_ts, exit_price, return_pct,
                                           correct, pnl, algo_correct, algo_pnl, horizon, fee_bps))
        return settled

    def last_signal_ts(self, exchange: str, symbol: str, timeframe: str) -> int | None:
        """Open time of the newest candle that has a signal (where a restarted daemon resumes)."""
        row = self.conn.execute(f"SELECT MAX(candle_ts) FROM signals s WHERE {_SERIES}",
                                (exchange, symbol, timeframe)).fetchone()
        return None if row[0] is None else int(row[0])

    def _records(self, where: str, params: tuple[Any, ...]) -> list[SignalRecord]:
        """Signals of the series with their outcomes; `where` continues after the series condition."""
        rows = self.conn.execute(
            f"SELECT {_SIGNAL_COLUMNS}, {_OUTCOME_COLUMNS} FROM signals s LEFT JOIN outcomes o ON o.signal_id = s.id"
            f" WHERE {_SERIES} {where}", params,
        ).fetchall()
        return [_record(row) for row in rows]

    def get(self, exchange: str, symbol: str, timeframe: str, candle_ts: int) -> SignalRecord | None:
        found = self._records("AND s.candle_ts = ?", (exchange, symbol, timeframe, candle_ts))
        return found[0] if found else None

    def recent(self, exchange: str, symbol: str, timeframe: str, limit: int = 20) -> list[SignalRecord]:
        """The newest `limit` signals with their outcomes, newest first."""
        return self._records("ORDER BY s.candle_ts DESC LIMIT ?", (exchange, symbol, timeframe, limit))

    def pending(self, exchange: str, symbol: str, timeframe: str) -> int:
        """How many signals still wait for their exit candle."""
        row = self.conn.execute(f"SELECT COUNT(*) FROM signals s WHERE {_SERIES} AND s.pending = 1",
                                (exchange, symbol, timeframe)).fetchone()
        return int(row[0])

    # -- which model serves since when ---------------------------------------------------------------

    def record_activation(self, exchange: str, symbol: str, timeframe: str, version: str | None,
                          market_ts: int) -> bool:
        """Note that `version` (None: no model) serves from candle `market_ts` on; False if it already did.

        Call it when inference starts serving a model (start-up, hot-swap, promotion, rollback): a new
        version starts a new "current model" window, the same version again changes nothing.
        """
        with transaction(self.conn):
            current = self.current_activation(exchange, symbol, timeframe)
            if (current.version if current else None) == version:
                return False
            self.conn.execute(
                "INSERT INTO model_activations (exchange, symbol, timeframe, version, market_ts, recorded_at)"
                " VALUES (?, ?, ?, ?, ?, ?)", (exchange, symbol, timeframe, version, int(market_ts), time.time()),
            )
            return True

    def current_activation(self, exchange: str, symbol: str, timeframe: str) -> Activation | None:
        """The newest activation; None when no model ever served (algorithms only since the start)."""
        row = self.conn.execute(
            "SELECT version, market_ts, recorded_at FROM model_activations WHERE exchange = ? AND symbol = ?"
            " AND timeframe = ? ORDER BY id DESC LIMIT 1", (exchange, symbol, timeframe),
        ).fetchone()
        return Activation(*row) if row else None

    def activations(self, exchange: str, symbol: str, timeframe: str) -> list[Activation]:
        rows = self.conn.execute(
            "SELECT version, market_ts, recorded_at FROM model_activations WHERE exchange = ? AND symbol = ?"
            " AND timeframe = ? ORDER BY id", (exchange, symbol, timeframe),
        ).fetchall()
        return [Activation(*row) for row in rows]
