"""One variant replayed candle by candle in market time, through the daemon's own components, in one process.

For every candle of the period, in order: the candle enters the variant's own store (so nothing later
than it is stored yet), the signal loop (`loop.SignalLoop`: features, ONNX Runtime, algorithms, the
vote, settlement, performance, the policy) signals it from a window ending at it, and a retrain the
policy queues is trained at once by the daemon's retrain job (`processes.retrain_job`, on the
candles stored up to that candle) and judged by its promotion rule into the variant's own registry.

Time is kept honest: a model trained on data ending at candle t is taken to finish training
`train_latency` candles later and serves from the candle after that; until then the run counts as in
progress (the policy does not fire again), as it would in the daemon while the trainer works.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autoretrain.daemon.backtest.metrics import Trade
from autoretrain.daemon.backtest.variants import Variant
from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import USER_ERRORS
from autoretrain.daemon.foundation.timeframes import iso, timeframe_ms
from autoretrain.daemon.loop.signal_loop import SignalLoop
from autoretrain.daemon.processes.retrain_job import TrainOutcome, run_training
from autoretrain.daemon.store.database import Database
from autoretrain.models.registry import Registry
from autoretrain.models.runtime import ModelRunner

log = logging.getLogger("autoretrain.backtest")
STATIC = "static"


class ReplayModels:
    """The variant's served model (loop.ModelSource): swapped in when its training would have finished."""

    def __init__(self) -> None:
        self.serving: ModelRunner | None = None
        self.pending: tuple[ModelRunner, int] | None = None  # (runner, first candle it serves)
        self.failures = 0

    def runner(self, symbol: str) -> ModelRunner | None:
        return self.serving

    def failed(self, symbol: str, error: BaseException, candle_ts: int) -> None:
        log.warning("backtest: model %s failed at %s: %s", self.serving.version if self.serving else None,
                    iso(candle_ts), error)
        self.serving, self.failures = None, self.failures + 1


@dataclass
class RetrainRow:
    """One retrain of a variant, as the report lists it."""

    market_ts: int
    trigger: str
    reason: str
    status: str
    version: str | None
    decision: str
    train_first: str | None = None
    train_last: str | None = None
    challenger: float | None = None
    champion: float | None = None
    baseline: float | None = None
    mcnemar_p: float | None = None
    serves_from_ts: int | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"market_time": iso(self.market_ts), "trigger": self.trigger, "reason": self.reason,
                "status": self.status, "version": self.version, "decision": self.decision,
                "training_window": [self.train_first, self.train_last],
                "accuracy": {"challenger": self.challenger, "champion": self.champion, "baseline": self.baseline},
                "mcnemar_p": self.mcnemar_p, "serves_from": iso(self.serves_from_ts), "seconds": round(self.seconds, 2)}


@dataclass
class VariantRun:
    """Everything a variant did over the period, for the metrics and the plot."""

    variant: Variant
    candle_ts: np.ndarray
    signals: int = 0
    trades: list[Trade] = field(default_factory=list)
    retrains: list[RetrainRow] = field(default_factory=list)
    skipped_retrains: int = 0
    model_failures: int = 0
    seconds: float = 0.0
    training_seconds: float = 0.0


def variant_config(base: dict[str, Any], state_dir: Path) -> Config:
    """The variant's configuration with its state in `state_dir` (its own store and registry)."""
    data = {**base, "paths": {"state_dir": str(state_dir)}}
    return build_config(data, env={}, origin="backtest configuration")


class Replay:
    """Replays `period` after `history` (already closed when the period starts) for one variant."""

    def __init__(self, variant: Variant, config_data: dict[str, Any], symbol: str, timeframe: str,
                 history: np.ndarray, period: np.ndarray, *, train_latency: int, max_retrains: int,
                 progress: Callable[[int], None] | None = None) -> None:
        self.variant, self.symbol, self.timeframe = variant, symbol, timeframe
        self.config_data, self.history, self.period = config_data, history, period
        self.latency, self.max_retrains, self.progress = train_latency, max_retrains, progress
        self.step = timeframe_ms(timeframe)

    def run(self) -> VariantRun:
        result = VariantRun(self.variant, self.period["ts"].astype(np.int64))
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"backtest-{self.variant.name}-") as state:
            config = variant_config(self.config_data, Path(state))
            with Database(config.db_path, autocheckpoint=False) as db:
                self._replay(config, db, result)
                result.trades = self._trades(db, config)
                result.signals = db.read_performance(config.store_exchange, self.symbol, self.timeframe,
                                                     window=1).recorded
        result.seconds = time.perf_counter() - started
        return result

    def _replay(self, config: Config, db: Database, result: VariantRun) -> None:
        exchange = config.store_exchange
        candles = np.concatenate([self.history, self.period])
        db.candles.store_many([(exchange, self.symbol, self.timeframe, self.history)])
        models = ReplayModels()
        loop = SignalLoop(db, config, models, lambda message: None)
        in_flight_until = -1
        first = len(self.history)
        for index in range(first, len(candles)):
            candle_ts = int(candles["ts"][index])
            if models.pending is not None and models.pending[1] <= candle_ts:
                models.serving, _ = models.pending
                models.pending = None
                loop.activate(self.symbol, models.serving.version, candle_ts)
            db.candles.store_many([(exchange, self.symbol, self.timeframe, candles[index:index + 1])])
            window = candles[max(0, index + 1 - loop.history_needed(self.symbol)):index + 1]
            loop.signal([(self.symbol, window)])
            decided = loop.settle_and_decide(self.symbol, candle_ts,
                                             has_model=models.serving is not None or models.pending is not None,
                                             in_flight=candle_ts <= in_flight_until)
            run_id = decided.run_id if decided is not None and decided.queued else None
            if self.variant.model and index == first and not self.variant.retrains:
                run_id, _ = db.runs.queue(exchange, self.symbol, self.timeframe, trigger=STATIC,
                                          reason="the static variant trains once, at the start",
                                          requested_market_ts=candle_ts)
            if run_id is not None:
                if len(result.retrains) >= self.max_retrains:
                    db.runs.finish(run_id, "aborted", detail={"error": "over the backtest's retrain budget"})
                    result.skipped_retrains += 1
                else:
                    in_flight_until = self._retrain(config, db, run_id, candle_ts, models, result)
            if self.progress is not None:
                self.progress(1)
        result.model_failures = models.failures

    def _retrain(self, config: Config, db: Database, run_id: int, candle_ts: int, models: ReplayModels,
                 result: VariantRun) -> int:
        """Train now on the candles up to `candle_ts`; the candle until which the run counts as in progress."""
        run = db.runs.claim_next()
        assert run is not None and run.id == run_id
        started = time.perf_counter()
        serves_from = candle_ts + (self.latency + 1) * self.step
        row = RetrainRow(candle_ts, run.trigger, run.reason, "failed", None, "")
        try:
            outcome = run_training(config, self.symbol, self.timeframe, trigger=run.trigger, reason=run.reason,
                                   requested_market_ts=candle_ts, run_id=run.id, until_ms=candle_ts,
                                   promote="always" if run.trigger == STATIC else "auto")
        except USER_ERRORS as exc:
            row.decision = str(exc)
        else:
            self._describe(row, outcome)
            if outcome.promoted and outcome.version is not None:
                path = Registry(config.models_dir).version_dir(self.symbol, self.timeframe, outcome.version)
                models.pending = (ModelRunner.load(path), serves_from)
                row.serves_from_ts = serves_from
        row.seconds = time.perf_counter() - started
        result.training_seconds += row.seconds
        result.retrains.append(row)
        return candle_ts + self.latency * self.step

    @staticmethod
    def _describe(row: RetrainRow, outcome: TrainOutcome) -> None:
        metrics = outcome.metrics or {}
        row.status, row.version, row.decision = outcome.status, outcome.version, outcome.reason
        row.train_first, row.train_last = outcome.data.get("first"), outcome.data.get("last")
        for name in ("challenger", "champion", "baseline"):
            setattr(row, name, (metrics.get(name) or {}).get("accuracy"))
        row.mcnemar_p = (metrics.get("challenger") or {}).get("mcnemar_p")

    def _trades(self, db: Database, config: Config) -> list[Trade]:
        records = db.signals.recent(config.store_exchange, self.symbol, self.timeframe, limit=-1)
        return [Trade(record.signal.candle_ts, record.outcome.exit_ts, bool(record.outcome.correct),
                      float(record.outcome.pnl_pct or 0.0))
                for record in reversed(records)
                if record.outcome is not None and record.outcome.correct is not None]


def hold_run(variant: Variant, period: np.ndarray) -> tuple[VariantRun, np.ndarray]:
    """Buy and hold: the close-to-close returns of the period (the first candle's is 0: bought at its close)."""
    close = period["close"].astype(np.float64)
    returns = np.concatenate([[0.0], close[1:] / close[:-1] - 1.0]) if len(close) else np.zeros(0)
    return VariantRun(variant, period["ts"].astype(np.int64)), returns

