"""Live performance of a series' signals: the figures, as plain data (the store reads them, `store.performance`).

What counts: a *signal* is recorded for every closed candle (BUY, SELL or HOLD); a *trade* is a BUY or
SELL signal; win rate and PnL are over **settled trades** only (HOLD is never a trade, and a trade
counts once its outcome is known, `signals.outcomes`). Every `Stats` below, and every signal count the
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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autoretrain.daemon.foundation.timeframes import iso

ALGORITHMS_ONLY = "algorithms only"


@dataclass(frozen=True)
class Stats:
    """Settled trades of one window: how many, how many right, and their net PnL."""

    signals: int = 0
    correct: int = 0
    pnl_total_pct: float = 0.0

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Stats:
        """From a (count, correct, pnl sum) row of SQL aggregates (NULL sums are 0)."""
        count, correct, pnl = row
        return cls(int(count or 0), int(correct or 0), float(pnl or 0.0))

    @classmethod
    def total(cls, parts: Iterable[Stats]) -> Stats:
        parts = list(parts)
        return cls(sum(p.signals for p in parts), sum(p.correct for p in parts), sum(p.pnl_total_pct for p in parts))

    @property
    def win_rate(self) -> float | None:
        return self.correct / self.signals if self.signals else None

    @property
    def pnl_avg_pct(self) -> float | None:
        return self.pnl_total_pct / self.signals if self.signals else None

    def as_dict(self) -> dict[str, Any]:
        return {"signals": self.signals, "correct": self.correct, "win_rate": self.win_rate,
                "pnl_total_pct": self.pnl_total_pct, "pnl_avg_pct": self.pnl_avg_pct}


@dataclass(frozen=True)
class LastRetrain:
    """The newest finished retrain run, as performance and status report it."""

    run_id: int
    status: str
    trigger: str
    reason: str
    version: str | None
    market_ts: int | None
    finished_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "trigger": self.trigger, "reason": self.reason,
                "market_time": iso(self.market_ts), "version": self.version, "finished_at": self.finished_at,
                "run_id": self.run_id}


@dataclass(frozen=True)
class RetrainSummary:
    """The retrain history the policy needs: last result, last completed run, a setback, a job in flight."""

    last: LastRetrain | None = None
    last_completed_ts: int | None = None
    setback_status: str | None = None
    setback_ts: int | None = None
    in_progress: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"last": self.last.as_dict() if self.last else None, "last_completed": iso(self.last_completed_ts),
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
