"""The serving model's own record since it started serving, kept up to date outcome by outcome.

Three things the policy needs every candle and that would cost a scan of the whole window to recompute:
the drift detector (`signals.drift.ErrorCusum`) on the model's direction errors, the net PnL of the
model's own trades, and what the model added to the vote (combined PnL minus the algorithms' alone, while
it was in the vote). The loop keeps one `ModelWatch` per symbol and feeds it each settled outcome; after
a restart, a swap or a bench it is rebuilt from the store with one ordered read, so the daemon, `status`
and a backtest all see the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.signals.confidence import lower_bound
from autoretrain.daemon.signals.drift import ErrorCusum
from autoretrain.daemon.signals.performance import Sample
from autoretrain.daemon.store.database import Database


@dataclass
class _Sum:
    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, value: float) -> None:
        self.n, self.total, self.squares = self.n + 1, self.total + value, self.squares + value * value

    def sample(self) -> Sample:
        return Sample(self.n, self.total, self.squares)


@dataclass
class ModelWatch:
    version: str | None
    since_ts: int | None
    cusum: ErrorCusum | None  # None: no model, or its evaluation accuracy is unknown
    trades: _Sum = field(default_factory=_Sum)
    gain: _Sum = field(default_factory=_Sum)
    alarm: str | None = None  # the detector's alarm until a retrain is asked for

    def add(self, *, model_correct: bool | None, model_pnl_pct: float | None, pnl_pct: float | None,
            algo_pnl_pct: float | None, in_vote: bool) -> None:
        """One settled signal of the window."""
        if model_correct is None:
            return  # the model did not predict this candle (not enough history, a gap, in-sample)
        if model_pnl_pct is not None:
            self.trades.add(model_pnl_pct)
        if in_vote:
            self.gain.add((pnl_pct or 0.0) - (algo_pnl_pct or 0.0))
        if self.cusum is not None and self.cusum.update(not model_correct):
            self.alarm = self.cusum.describe()

    def acted_on(self) -> None:
        """A retrain was queued for the alarm: watch again from here."""
        self.alarm = None
        if self.cusum is not None:
            self.cusum.reset()


def expected_accuracy(meta: dict | None) -> float | None:
    """The accuracy the model's promotion measured on unseen candles (what its live record should match)."""
    try:
        accuracy = meta["evaluation"]["challenger"]["accuracy"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    return float(accuracy) if isinstance(accuracy, (int, float)) else None


def drift_reference(meta: dict | None) -> float | None:
    """The accuracy the drift test expects of the model: the one-sided 95 % lower bound of what its
    evaluation measured. A few hundred samples measure accuracy only to several points, and the promoted
    challenger is the best of its candidates and passed a test, so the point estimate runs high; a CUSUM
    expecting it exactly alarmed on unchanged models (0.10 false alarms per 1,000 candles on the simulated
    market, bench/triggers.py) where the bound keeps it near what the Bernoulli simulation promises."""
    accuracy = expected_accuracy(meta)
    try:
        samples = int(meta["evaluation"]["challenger"]["samples"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return accuracy
    return lower_bound(accuracy, samples) if accuracy is not None and samples > 0 else accuracy


def build_watch(db: Database, config: Config, exchange: str, symbol: str, timeframe: str, *,
                accuracy: float | None) -> ModelWatch:
    """The watch of the current activation, rebuilt from the store's settled signals since it began
    (`accuracy`: what the drift test expects, `drift_reference`)."""
    activation = db.signals.current_activation(exchange, symbol, timeframe)
    version = activation.version if activation else None
    since = activation.market_ts if activation else None
    settings = config.auto_training
    cusum = ErrorCusum(1.0 - accuracy, settings.drift_shift, settings.drift_threshold) \
        if version is not None and accuracy is not None else None
    watch = ModelWatch(version, since, cusum)
    if version is not None:
        for model_correct, model_pnl, pnl, algo_pnl, in_vote in db.signals.model_record(exchange, symbol, timeframe,
                                                                                       since_ts=since):
            watch.add(model_correct=model_correct, model_pnl_pct=model_pnl, pnl_pct=pnl, algo_pnl_pct=algo_pnl,
                      in_vote=in_vote)
    return watch
