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
from autoretrain.daemon.signals.outcomes import Outcome, model_direction_correct, trade_result
from autoretrain.daemon.signals.vote import HOLD, Signal
from autoretrain.daemon.store.connection import transaction


@dataclass(frozen=True)
class Activation:
    """`version` (None: algorithms only) serves the series from candle `market_ts` on; `benched` since
    `benched_ts`: it still predicts (its own record goes on) but takes no part in the vote."""

    version: str | None
    market_ts: int
    recorded_at: float
    benched: bool = False
    benched_ts: int | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "since": iso(self.market_ts), "market_ts": self.market_ts,
                "benched": self.benched, "benched_since": iso(self.benched_ts), "reason": self.reason}


@dataclass(frozen=True)
class SignalRecord:
    """A stored signal and its outcome (None while pending)."""

    signal: Signal
    outcome: Outcome | None

    def as_dict(self) -> dict[str, Any]:
        return {**self.signal.as_dict(), "status": "settled" if self.outcome else "pending",
                "outcome": self.outcome.as_dict() if self.outcome else None}


_SIGNAL_COLUMNS = ("s.id, s.candle_ts, s.price, s.action, s.confidence, s.probability_up, s.model_version, "
                   "s.model_probability, s.components, s.algo_action, s.algo_probability, s.model_action, "
                   "s.model_in_vote, s.horizon")
_OUTCOME_COLUMNS = ("o.exit_ts, o.exit_price, o.return_pct, o.correct, o.pnl_pct, o.algo_correct, o.algo_pnl_pct, "
                    "o.horizon, o.fee_bps, o.model_correct, o.model_pnl_pct")
_SERIES = "s.exchange = ? AND s.symbol = ? AND s.timeframe = ?"
_ACTIVATIONS = "exchange = ? AND symbol = ? AND timeframe = ?"


def _bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _record(row: tuple[Any, ...], default_horizon: int = 1) -> SignalRecord:
    (signal_id, candle_ts, price, action, confidence, probability, version, model_probability, components,
     algo_action, algo_probability, model_action, model_in_vote, horizon, exit_ts, *rest) = row
    signal = Signal(candle_ts=candle_ts, price=price, action=action, confidence=confidence,
                    probability_up=probability, model_version=version, model_probability=model_probability,
                    components=json.loads(components or "{}"), algo_action=algo_action,
                    algo_probability=algo_probability, model_action=model_action,
                    model_in_vote=bool(model_in_vote) and model_probability is not None,
                    horizon=horizon or default_horizon)
    if exit_ts is None:
        return SignalRecord(signal, None)
    (exit_price, return_pct, correct, pnl, algo_correct, algo_pnl, settled_horizon, fee_bps, model_correct,
     model_pnl) = rest
    outcome = Outcome(signal_id, candle_ts, action, price, exit_ts, exit_price, return_pct, _bool(correct), pnl,
                      _bool(algo_correct), algo_pnl, settled_horizon, fee_bps, _bool(model_correct), model_pnl,
                      signal.model_in_vote)
    return SignalRecord(signal, outcome)


# each signal settles at its own horizon (the serving model's); rows from before horizons were kept use
# the configured one
_DUE = """
SELECT s.id, s.candle_ts, s.price, s.action, s.algo_action, s.model_action, s.model_probability,
       COALESCE(s.horizon, :horizon), s.model_in_vote AND s.model_probability IS NOT NULL, c.ts, c.close
FROM signals s
JOIN series se ON se.exchange = s.exchange AND se.symbol = s.symbol AND se.timeframe = s.timeframe
JOIN candles c ON c.series_id = se.id AND c.ts = s.candle_ts + COALESCE(s.horizon, :horizon) * :step
WHERE s.exchange = :exchange AND s.symbol = :symbol AND s.timeframe = :timeframe AND s.pending = 1
ORDER BY s.candle_ts
"""
_INSERT_OUTCOME = """
INSERT OR IGNORE INTO outcomes (signal_id, exit_ts, exit_price, return_pct, correct, pnl_pct, algo_correct,
                                algo_pnl_pct, horizon, fee_bps, settled_at, model_correct, model_pnl_pct)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
                    " recorded_at, model_action, model_in_vote, horizon)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (exchange, symbol, timeframe, signal.candle_ts, signal.price, signal.action, signal.confidence,
                     signal.probability_up, signal.model_version, signal.model_probability, signal.algo_action,
                     signal.algo_probability, json.dumps(signal.components), time.time(), signal.model_action,
                     int(signal.model_in_vote), signal.horizon),
                )
                inserted.append(cursor.rowcount == 1)
        return inserted

    def settle(self, exchange: str, symbol: str, timeframe: str, *, horizon: int, fee_bps: float) -> list[Outcome]:
        """Settle every pending signal of the series whose exit candle is stored; returns those settled now.
        `horizon` is the default for signals stored without their own."""
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1 candle, got {horizon}")
        settled: list[Outcome] = []
        now = time.time()
        due = {"horizon": horizon, "step": timeframe_ms(timeframe), "exchange": exchange, "symbol": symbol,
               "timeframe": timeframe}
        with transaction(self.conn):
            for (signal_id, candle_ts, entry, action, algo_action, model_action, model_probability, signal_horizon,
                 in_vote, exit_ts, exit_price) in self.conn.execute(_DUE, due).fetchall():
                correct, pnl = trade_result(action, entry, exit_price, fee_bps)
                algo_correct, algo_pnl = trade_result(algo_action, entry, exit_price, fee_bps)
                _, model_pnl = trade_result(model_action or HOLD, entry, exit_price, fee_bps)
                model_correct = model_direction_correct(model_probability, entry, exit_price)
                return_pct = 100.0 * (exit_price / entry - 1.0)
                cursor = self.conn.execute(_INSERT_OUTCOME, (
                    signal_id, exit_ts, exit_price, return_pct, _flag(correct), pnl, _flag(algo_correct), algo_pnl,
                    signal_horizon, fee_bps, now, _flag(model_correct), model_pnl))
                self.conn.execute("UPDATE signals SET pending = 0 WHERE id = ?", (signal_id,))
                if cursor.rowcount == 1:
                    settled.append(Outcome(signal_id, candle_ts, action, entry, exit_ts, exit_price, return_pct,
                                           correct, pnl, algo_correct, algo_pnl, signal_horizon, fee_bps,
                                           model_correct, model_pnl, bool(in_vote)))
        return settled

    def model_record(self, exchange: str, symbol: str, timeframe: str, *,
                     since_ts: int | None) -> list[tuple[bool | None, float | None, float | None, float | None, bool]]:
        """The settled signals from `since_ts` on, oldest first, as (model right, the model's own trade PnL %,
        the vote's PnL %, the algorithms' PnL %, the model was in the vote): what `loop.watch` replays."""
        rows = self.conn.execute(
            f"SELECT o.model_correct, o.model_pnl_pct, o.pnl_pct, o.algo_pnl_pct, s.model_in_vote FROM signals s"
            f" JOIN outcomes o ON o.signal_id = s.id WHERE {_SERIES} AND s.candle_ts >= ? ORDER BY s.candle_ts",
            (exchange, symbol, timeframe, -(2**62) if since_ts is None else since_ts)).fetchall()
        return [(_bool(right), model_pnl, pnl, algo_pnl, bool(in_vote)) for right, model_pnl, pnl, algo_pnl, in_vote
                in rows]

    def last_signal_ts(self, exchange: str, symbol: str, timeframe: str, until_ms: int | None = None) -> int | None:
        """Open time of the newest candle that has a signal (where a restarted daemon resumes), up to `until_ms`:
        a signal an older version made for a candle from the future is no place to resume from."""
        row = self.conn.execute(f"SELECT MAX(candle_ts) FROM signals s WHERE {_SERIES} AND s.candle_ts <= ?",
                                (exchange, symbol, timeframe, 2**63 - 1 if until_ms is None else until_ms)).fetchone()
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

    def between(self, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> list[SignalRecord]:
        """The signals of candles opening in [start_ms, end_ms] with their outcomes, oldest first (the charts)."""
        return self._records("AND s.candle_ts BETWEEN ? AND ? ORDER BY s.candle_ts",
                             (exchange, symbol, timeframe, start_ms, end_ms))

    def settled_trades_by_action(self, exchange: str, symbol: str, timeframe: str) -> dict[str, dict[str, int]]:
        """Settled trades per action, since the start: the combined signal's (`combined`) and the model's own
        (`model`: its probability alone, in the vote or not)."""
        combined = self.conn.execute(
            f"SELECT s.action, COUNT(*) FROM signals s JOIN outcomes o ON o.signal_id = s.id WHERE {_SERIES}"
            " AND o.pnl_pct IS NOT NULL GROUP BY s.action", (exchange, symbol, timeframe)).fetchall()
        model = self.conn.execute(
            f"SELECT s.model_action, COUNT(*) FROM signals s JOIN outcomes o ON o.signal_id = s.id WHERE {_SERIES}"
            " AND o.model_pnl_pct IS NOT NULL GROUP BY s.model_action", (exchange, symbol, timeframe)).fetchall()
        return {"combined": {str(action): int(n) for action, n in combined},
                "model": {str(action): int(n) for action, n in model}}

    def pending(self, exchange: str, symbol: str, timeframe: str) -> int:
        """How many signals still wait for their exit candle."""
        row = self.conn.execute(f"SELECT COUNT(*) FROM signals s WHERE {_SERIES} AND s.pending = 1",
                                (exchange, symbol, timeframe)).fetchone()
        return int(row[0])

    # -- which model serves since when ---------------------------------------------------------------

    def record_activation(self, exchange: str, symbol: str, timeframe: str, version: str | None,
                          market_ts: int, *, benched: bool = False, reason: str = "") -> bool:
        """Note that `version` (None: no model) serves from candle `market_ts` on, in the vote or `benched`;
        False if that is already the case.

        Call it when inference starts serving a model (start-up, hot-swap, promotion, rollback) and when
        the policy benches one: a new version starts a new "current model" window, the same version again
        changes nothing, and benching keeps the version's window (its own record goes on).
        """
        with transaction(self.conn):
            current = self.current_activation(exchange, symbol, timeframe)
            if current is not None and (current.version, current.benched) == (version, benched) or \
                    current is None and version is None and not benched:
                return False
            self.conn.execute(
                "INSERT INTO model_activations (exchange, symbol, timeframe, version, market_ts, recorded_at,"
                " benched, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (exchange, symbol, timeframe, version, int(market_ts), time.time(), int(benched), reason),
            )
            return True

    def current_activation(self, exchange: str, symbol: str, timeframe: str) -> Activation | None:
        """The serving version since it started serving, and whether it is benched now; None when no model
        ever served (algorithms only since the start)."""
        key = (exchange, symbol, timeframe)
        newest = self.conn.execute(
            "SELECT id, version, market_ts, recorded_at, benched, reason FROM model_activations"
            f" WHERE {_ACTIVATIONS} ORDER BY id DESC LIMIT 1", key).fetchone()
        if newest is None:
            return None
        row_id, version, market_ts, recorded_at, benched, reason = newest
        # the version's window starts at the first row of its run (benching writes rows of the same version)
        first = self.conn.execute(
            f"SELECT market_ts FROM model_activations WHERE {_ACTIVATIONS} AND id > COALESCE("
            f"(SELECT MAX(id) FROM model_activations WHERE {_ACTIVATIONS} AND version IS NOT ?), 0) ORDER BY id LIMIT 1",
            (*key, *key, version)).fetchone()
        start = first[0] if first is not None else market_ts
        return Activation(version, start, recorded_at, bool(benched), market_ts if benched else None, reason)

    def activations(self, exchange: str, symbol: str, timeframe: str) -> list[Activation]:
        rows = self.conn.execute(
            f"SELECT version, market_ts, recorded_at, benched, market_ts, reason FROM model_activations"
            f" WHERE {_ACTIVATIONS} ORDER BY id", (exchange, symbol, timeframe),
        ).fetchall()
        return [Activation(version, ts, at, bool(benched), ts if benched else None, reason)
                for version, ts, at, benched, _, reason in rows]
