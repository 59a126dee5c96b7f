"""Live performance of a series' signals, rebuilt from the store on every call (so it survives restarts).

What counts: a *signal* is recorded for every closed candle (BUY, SELL or HOLD); a *trade* is a BUY or
SELL signal; win rate and PnL are over **settled trades** only (HOLD is never a trade, and a trade
counts once its outcome is known, `daemon.outcomes`). Every `Stats` below, and every signal count the
retrain policy uses, is a number of settled trades.

Windows:
- `since_start`: every settled trade of the series.
- `current`: trades since the current model started serving (the newest `model_activations` row;
  without one, since the start). A promotion or a rollback starts a new window.
- `current_recent`: the newest `current_window` trades of that same window (the policy's `rolling` scope).
- `rolling`: the newest `window` settled trades of the series, whichever model made them.
- `by_version`: per model version; signals made with no model are under "algorithms only".
- `algorithms`: the algorithms' own vote (kept on every signal, even when a model joined it) as a
  baseline the model must beat.

Cumulative PnL is the sum of the per-trade net PnL percentages (every trade the same size).
Retrain history comes from `retrain_runs`; a run's market time is the newest of the market time it was
requested at and the end of its training data.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from autoretrain.daemon.store.retrain_runs import FAILED, PROMOTED, REJECTED, RetrainRun, RetrainRuns
from autoretrain.daemon.store.signals import SignalStore
from autoretrain.daemon.foundation.timeframes import iso

ALGORITHMS_ONLY = "algorithms only"
_EARLIEST = -(2**62)


@dataclass(frozen=True)
class Stats:
    """Settled trades of one window: how many, how many right, and their net PnL."""

    signals: int = 0
    correct: int = 0
    pnl_total_pct: float = 0.0

    @property
    def win_rate(self) -> float | None:
        return self.correct / self.signals if self.signals else None

    @property
    def pnl_avg_pct(self) -> float | None:
        return self.pnl_total_pct / self.signals if self.signals else None

    def as_dict(self) -> dict[str, Any]:
        return {"signals": self.signals, "correct": self.correct, "win_rate": self.win_rate,
                "pnl_total_pct": self.pnl_total_pct, "pnl_avg_pct": self.pnl_avg_pct}


def run_market_ts(run: RetrainRun | None) -> int | None:
    """Market time of a retrain run: the newest of its request time and its training data's end."""
    if run is None:
        return None
    times = [t for t in (run.requested_market_ts, run.data_end_ts) if t is not None]
    return max(times) if times else None


@dataclass(frozen=True)
class RetrainSummary:
    """The retrain history the policy needs: last result, last completed run, a setback, a job in flight."""

    last: RetrainRun | None = None
    last_completed_ts: int | None = None
    setback_status: str | None = None
    setback_ts: int | None = None
    in_progress: bool = False

    @classmethod
    def load(cls, conn: sqlite3.Connection, exchange: str, symbol: str, timeframe: str) -> "RetrainSummary":
        runs = RetrainRuns(conn)
        last = runs.last(exchange, symbol, timeframe, (PROMOTED, REJECTED, FAILED))
        completed = runs.last(exchange, symbol, timeframe, (PROMOTED, REJECTED))
        setback = last if last is not None and last.status in (REJECTED, FAILED) else None
        return cls(last=last, last_completed_ts=run_market_ts(completed),
                   setback_status=setback.status if setback else None, setback_ts=run_market_ts(setback),
                   in_progress=runs.active(exchange, symbol, timeframe) is not None)

    def as_dict(self) -> dict[str, Any]:
        last = None
        if self.last is not None:
            last = {"status": self.last.status, "trigger": self.last.trigger, "reason": self.last.reason,
                    "market_time": iso(run_market_ts(self.last)), "version": self.last.version,
                    "finished_at": self.last.finished_at}
        return {"last": last, "last_completed": iso(self.last_completed_ts),
                "setback": {"status": self.setback_status, "market_time": iso(self.setback_ts)}
                if self.setback_status else None,
                "in_progress": self.in_progress}


@dataclass(frozen=True)
class Performance:
    exchange: str
    symbol: str
    timeframe: str
    candles: int = 0
    last_candle_ts: int | None = None
    recorded: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    last_signal_ts: int | None = None
    since_start: Stats = Stats()
    current_version: str | None = None
    current_since_ts: int | None = None
    current: Stats = Stats()
    current_window: int | None = None
    current_recent: Stats = Stats()
    window: int = 100
    rolling: Stats = Stats()
    by_version: dict[str, Stats] = field(default_factory=dict)
    algorithms: Stats = Stats()
    retrain: RetrainSummary = RetrainSummary()

    def as_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange, "symbol": self.symbol, "timeframe": self.timeframe,
            "candles": self.candles, "last_candle": iso(self.last_candle_ts),
            "signals_recorded": self.recorded, "actions": dict(self.actions), "pending": self.pending,
            "last_signal": iso(self.last_signal_ts),
            "since_start": self.since_start.as_dict(),
            "current_model": {"version": self.current_version, "since": iso(self.current_since_ts),
                              **self.current.as_dict()},
            "current_recent": {"window": self.current_window, **self.current_recent.as_dict()},
            "rolling": {"window": self.window, **self.rolling.as_dict()},
            "by_version": {name: stats.as_dict() for name, stats in self.by_version.items()},
            "algorithms": self.algorithms.as_dict(),
            "retrain": self.retrain.as_dict(),
        }


def _stats(row: tuple[Any, ...]) -> Stats:
    count, correct, pnl = row
    return Stats(int(count or 0), int(correct or 0), float(pnl or 0.0))


def _total(parts: list[Stats]) -> Stats:
    return Stats(sum(p.signals for p in parts), sum(p.correct for p in parts), sum(p.pnl_total_pct for p in parts))


# One pass over the series' signals, per model version. `correct` and `pnl_pct` are NULL for HOLD and
# for unsettled signals, so COUNT(o.correct) counts exactly the settled trades.
_PER_VERSION = """
SELECT s.model_version, MAX(s.candle_ts), SUM(s.action = 'BUY'), SUM(s.action = 'SELL'), SUM(s.action = 'HOLD'),
       SUM(s.pending),
       COUNT(o.correct), SUM(o.correct), SUM(o.pnl_pct),
       COUNT(CASE WHEN s.candle_ts >= :since THEN o.correct END),
       SUM(CASE WHEN s.candle_ts >= :since THEN o.correct END),
       SUM(CASE WHEN s.candle_ts >= :since THEN o.pnl_pct END),
       COUNT(o.algo_correct), SUM(o.algo_correct), SUM(o.algo_pnl_pct)
FROM signals s LEFT JOIN outcomes o ON o.signal_id = s.id
WHERE s.exchange = :exchange AND s.symbol = :symbol AND s.timeframe = :timeframe
GROUP BY s.model_version ORDER BY MIN(s.candle_ts)
"""
_NEWEST_TRADES = """
SELECT COUNT(*), SUM(correct), SUM(pnl_pct) FROM (
    SELECT o.correct, o.pnl_pct FROM signals s JOIN outcomes o ON o.signal_id = s.id
    WHERE s.exchange = ? AND s.symbol = ? AND s.timeframe = ? AND s.action != 'HOLD' AND s.candle_ts >= ?
    ORDER BY s.candle_ts DESC LIMIT ?)
"""


def newest_trades(conn: sqlite3.Connection, exchange: str, symbol: str, timeframe: str, *, since_ts: int | None,
                  limit: int = -1) -> Stats:
    """Settled trades from `since_ts` on (all of them, or the newest `limit`): an indexed range read."""
    return _stats(conn.execute(_NEWEST_TRADES, (exchange, symbol, timeframe,
                                                _EARLIEST if since_ts is None else since_ts, limit)).fetchone())


def compute_performance(conn: sqlite3.Connection, exchange: str, symbol: str, timeframe: str, *, window: int,
                        current_window: int | None = None) -> Performance:
    """Every figure of the series from the store: `window` sizes `rolling`, `current_window` `current_recent`."""
    key = (exchange, symbol, timeframe)
    activation = SignalStore(conn).current_activation(*key)
    since = activation.market_ts if activation else _EARLIEST
    candles, last_candle = conn.execute(
        "SELECT COUNT(c.ts), MAX(c.ts) FROM series se JOIN candles c ON c.series_id = se.id"
        " WHERE se.exchange = ? AND se.symbol = ? AND se.timeframe = ?", key).fetchone()
    rows = conn.execute(_PER_VERSION, {"exchange": exchange, "symbol": symbol, "timeframe": timeframe,
                                       "since": since}).fetchall()
    by_version = {(row[0] or ALGORITHMS_ONLY): _stats(row[6:9]) for row in rows}
    actions = {action: sum(int(row[column] or 0) for row in rows) for column, action in ((2, "BUY"), (3, "SELL"),
                                                                                          (4, "HOLD"))}
    return Performance(
        exchange=exchange, symbol=symbol, timeframe=timeframe, candles=int(candles or 0), last_candle_ts=last_candle,
        recorded=sum(actions.values()), actions=actions, pending=sum(int(row[5] or 0) for row in rows),
        last_signal_ts=max((row[1] for row in rows), default=None),
        since_start=_total(list(by_version.values())),
        current_version=activation.version if activation else None,
        current_since_ts=activation.market_ts if activation else None,
        current=_total([_stats(row[9:12]) for row in rows]),
        current_window=current_window,
        current_recent=_stats(conn.execute(_NEWEST_TRADES, (*key, since, current_window)).fetchone())
        if current_window else Stats(),
        window=window, rolling=_stats(conn.execute(_NEWEST_TRADES, (*key, _EARLIEST, window)).fetchone()),
        by_version=by_version, algorithms=_total([_stats(row[12:15]) for row in rows]),
        retrain=RetrainSummary.load(conn, *key),
    )
