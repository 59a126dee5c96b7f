"""Live performance of a series' signals: the figures, as plain data (the store reads them, `store.performance`).

Two records. The **combined signal** (the weighted vote that is published): a *signal* is recorded for
every closed candle (BUY, SELL or HOLD); a *trade* is a BUY or SELL signal; its win rate (direction
accuracy of trades) and PnL net of fees are over **settled trades** only (HOLD is never a trade, and a
trade counts once its outcome is known, `signals.outcomes`); every `Stats` below is a number of settled
trades. The **model's own record** (`ModelRecord`): its direction on every candle it predicted, settled
the same way, which is what offline evaluation measures, and the trades its probability alone would
have made.

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

import math
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
class Sample:
    """n values by their sum and sum of squares: a mean, its standard error, and a t statistic against 0."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Sample:
        count, total, squares = row
        return cls(int(count or 0), float(total or 0.0), float(squares or 0.0))

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def std(self) -> float | None:
        """The sample standard deviation (n - 1); None below two values."""
        if self.n < 2:
            return None
        return math.sqrt(max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1)))

    @property
    def t(self) -> float | None:
        """mean / standard error: how many standard errors the mean lies from 0 (None when it cannot say)."""
        std = self.std
        if std is None or std == 0.0 or self.mean is None:
            return None
        return self.mean / (std / math.sqrt(self.n))

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "std": self.std, "t": self.t}


@dataclass(frozen=True)
class ModelRecord:
    """The model's own record, whether or not it was in the vote: its direction on every candle it predicted
    (what offline evaluation scores: up when P(up) > 0.5), and the trades its probability alone would have
    made (confidence at the signal threshold), net of fees."""

    predictions: int = 0
    right: int = 0
    trades: Sample = Sample()

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ModelRecord:
        predictions, right, trades, total, squares = row
        return cls(int(predictions or 0), int(right or 0), Sample.from_row((trades, total, squares)))

    @property
    def accuracy(self) -> float | None:
        return self.right / self.predictions if self.predictions else None

    def as_dict(self) -> dict[str, Any]:
        return {"predictions": self.predictions, "right": self.right, "direction_accuracy": self.accuracy,
                "trades": self.trades.n, "trade_pnl_total_pct": self.trades.total,
                "trade_pnl_avg_pct": self.trades.mean, "trade_pnl_t": self.trades.t}


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
    consecutive_setbacks: int = 0
    recent_ts: tuple[int, ...] = ()  # market times of the newest finished runs (the policy's daily bound)

    def as_dict(self) -> dict[str, Any]:
        return {"last": self.last.as_dict() if self.last else None, "last_completed": iso(self.last_completed_ts),
                "setback": {"status": self.setback_status, "market_time": iso(self.setback_ts),
                            "in_a_row": self.consecutive_setbacks}
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
    model_current: ModelRecord = ModelRecord()
    model_recent: ModelRecord = ModelRecord()
    model_by_version: dict[str, ModelRecord] = field(default_factory=dict)
    vote_gain: Sample = Sample()  # per signal of the current window: combined PnL minus the algorithms' alone
    benched: bool = False

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
            "model": {"record": "the model's own predictions and trades, in the vote or not",
                      "current_model": self.model_current.as_dict(),
                      "current_recent": {"window": self.current_window, **self.model_recent.as_dict()},
                      "by_version": {name: record.as_dict() for name, record in self.model_by_version.items()},
                      "benched": self.benched},
            "vote_gain": {"record": "per settled signal of the current model's window: the combined vote's PnL % "
                                    "minus the algorithms' alone (HOLD counts 0)", **self.vote_gain.as_dict()},
        }
