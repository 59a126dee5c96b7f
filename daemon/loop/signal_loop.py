"""The step every closed candle goes through, in one process and without sockets.

    closed candles in -> signals recorded -> outcomes settled -> policy decided -> retrain queued

The inference process drives it with windows from the shared-memory rings and its hot-swapped models;
a backtest drives it with windows from a CSV or the store and the models it trains itself. Both see
the same numbers, because this is the only place where signals are made, settled and judged.

A batch holds one new candle for each of several symbols (the symbols that closed together): the
model's features, the algorithms' votes and the store write are batched. A catch-up after a restart
is a series of such batches, one per step (`signal_pending`), never a second implementation.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.timeframes import timeframe_ms
from autoretrain.daemon.loop.assess import policy_inputs
from autoretrain.daemon.loop.watch import ModelWatch, build_watch, drift_reference
from autoretrain.daemon.signals.algorithms import REQUIRED_CANDLES
from autoretrain.daemon.signals.policy import DRIFT, RetrainDecision, bench_reason, decide, log_line
from autoretrain.daemon.signals.vote import Signal, compute_signals
from autoretrain.daemon.store.database import Database
from autoretrain.ipc import messages
from autoretrain.models.features import compute_features
from autoretrain.models.runtime import ModelRunner, NotEnoughHistory

log = logging.getLogger("autoretrain.inference")
Publish = Callable[[messages.Message], None]
#: a signal's fields, read one by one: dataclasses.asdict deep-copies and cost ~0.1 ms a signal on the latency path
_SIGNAL_FIELDS = tuple(field.name for field in dataclasses.fields(Signal))


class ModelSource(Protocol):
    """Which model serves each symbol now (inference: its hot-swap slots; a backtest: what it trained)."""

    def runner(self, symbol: str) -> ModelRunner | None: ...

    def failed(self, symbol: str, error: BaseException, candle_ts: int) -> None:
        """The served model raised on candle `candle_ts`: stop serving it (the candle still gets its signal,
        from the algorithms)."""


@dataclass(frozen=True)
class Decided:
    """What the policy said after a candle, and the retrain it queued (`queued` False: one was in flight)."""

    decision: RetrainDecision
    run_id: int | None = None
    queued: bool = False


class SignalLoop:
    def __init__(self, db: Database, config: Config, models: ModelSource, publish: Publish) -> None:
        self.db = db
        self.config = config
        self.models = models
        self.publish = publish
        self.exchange = config.store_exchange
        self.timeframe = config.market.timeframe
        self._in_vote: dict[str, bool] = {}  # per symbol, from the newest activation (cached: one read)
        self._watches: dict[str, ModelWatch] = {}
        self.step = timeframe_ms(self.timeframe)

    def history_needed(self, symbol: str) -> int:
        """Candles a window must hold before the one it signals: the algorithms', or the model's if more."""
        runner = self.models.runner(symbol)
        return max(REQUIRED_CANDLES, runner.required_candles if runner is not None else 0)

    # -- signals ---------------------------------------------------------------------------------------

    def _model_probabilities(self, items: Sequence[tuple[str, np.ndarray]]) -> tuple[list[float | None],
                                                                                  list[str | None], list[int]]:
        """Each symbol's model probability (None: no model, not enough history, or a candle the model trained
        on), its version and the horizon its signal settles at; features batched."""
        probabilities: list[float | None] = [None] * len(items)
        versions: list[str | None] = [None] * len(items)
        horizons = [self.config.model.horizon] * len(items)
        by_length: dict[int, list[tuple[int, ModelRunner, np.ndarray]]] = {}
        for row, (symbol, window) in enumerate(items):
            runner = self.models.runner(symbol)
            if runner is None:
                continue
            if runner.trained_until_ts is not None and int(window["ts"][-1]) <= runner.trained_until_ts:
                log.debug("%s: model %s skipped: it trained on this candle", symbol, runner.version)
                continue  # after a long stop: never an in-sample prediction
            try:
                recent = runner.recent(window)
            except NotEnoughHistory as exc:  # too short, or a gap the features would span
                log.debug("%s: model skipped for this candle: %s", symbol, exc)
                continue
            by_length.setdefault(runner.required_candles, []).append((row, runner, recent))
        for group in by_length.values():
            features = compute_features(np.stack([recent for _, _, recent in group]))
            for (row, runner, recent), rows in zip(group, features, strict=True):
                symbol = items[row][0]
                try:
                    probabilities[row] = runner.predict_features(recent, rows)
                    versions[row], horizons[row] = runner.version, runner.horizon
                except NotEnoughHistory as exc:
                    log.debug("%s: model skipped for this candle: %s", symbol, exc)
                except Exception as exc:  # noqa: BLE001 - whatever the model does, the candle gets its signal
                    self.models.failed(symbol, exc, int(recent["ts"][-1]))
        return probabilities, versions, horizons

    def in_vote(self, symbol: str) -> bool:
        """Whether the serving model takes part in the vote (False while the policy has it benched)."""
        if symbol not in self._in_vote:
            activation = self.db.signals.current_activation(self.exchange, symbol, self.timeframe)
            self._in_vote[symbol] = not (activation is not None and activation.benched)
        return self._in_vote[symbol]

    def signal(self, items: Sequence[tuple[str, np.ndarray]]) -> list[tuple[Signal, bool]]:
        """Signal one new candle per symbol: `items` pairs a symbol with a window of candles (oldest first)
        ending at the candle to signal. Returns each signal and whether it is new (False: that candle
        already had one, which is kept: a signal is never duplicated nor rewritten)."""
        probabilities, versions, horizons = self._model_probabilities(items)
        signals: list[Signal | None] = [None] * len(items)
        by_length: dict[int, list[int]] = {}  # the algorithms' windows, batched where equally long
        for row, (_, window) in enumerate(items):
            by_length.setdefault(min(len(window), REQUIRED_CANDLES), []).append(row)
        for length, rows in by_length.items():
            windows = np.stack([items[row][1][-length:] for row in rows])
            made = compute_signals(windows, model_probabilities=[probabilities[row] for row in rows],
                                   model_versions=[versions[row] for row in rows], config=self.config.signals,
                                   horizons=[horizons[row] for row in rows],
                                   in_vote=[self.in_vote(items[row][0]) for row in rows])
            for row, signal in zip(rows, made, strict=True):
                signals[row] = signal
        done = [signal for signal in signals if signal is not None]  # every row has its signal now
        inserted = self.db.signals.record_many(self.exchange, self.timeframe,
                                               [(symbol, signal) for (symbol, _), signal in zip(items, done, strict=True)])
        for (symbol, _), signal, new in zip(items, done, inserted, strict=True):
            if new:
                self.publish(messages.SignalMade(symbol=symbol, timeframe=self.timeframe,
                                                 **{name: getattr(signal, name) for name in _SIGNAL_FIELDS}))
        return list(zip(done, inserted, strict=True))

    def signal_pending(self, pending: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, list[Signal]]:
        """Signal every fresh candle of every symbol: `pending[symbol]` is (window, fresh), the window
        ending with the fresh candles. Step k signals each symbol's k-th fresh candle in one batch."""
        made: dict[str, list[Signal]] = {symbol: [] for symbol in pending}
        steps = max((len(fresh) for _, fresh in pending.values()), default=0)
        for step in range(steps):
            batch = []
            for symbol, (window, fresh) in pending.items():
                if step < len(fresh):
                    end = len(window) - len(fresh) + step + 1
                    batch.append((symbol, window[max(0, end - self.history_needed(symbol)):end]))
            for (symbol, _), (signal, new) in zip(batch, self.signal(batch), strict=True):
                if new:
                    made[symbol].append(signal)
        return made

    # -- outcomes, the policy, the retrain queue --------------------------------------------------------

    def settle_and_decide(self, symbol: str, market_ts: int, *, has_model: bool,
                          in_flight: bool = False) -> Decided | None:
        """Settle what is due, then ask the policy at market time `market_ts` (the newest candle signalled)
        and queue the retrain it asks for. None when auto-training is off (nothing to decide). `in_flight`:
        a retrain this driver runs itself is still training (a backtest), so the policy is not asked."""
        settled = self.db.signals.settle(self.exchange, symbol, self.timeframe, horizon=self.config.model.horizon,
                                         fee_bps=self.config.signals.fee_bps)
        for outcome in settled:
            self.publish(messages.OutcomeSettled(
                symbol=symbol, timeframe=self.timeframe, signal_id=outcome.signal_id, candle_ts=outcome.candle_ts,
                exit_ts=outcome.exit_ts, action=outcome.action, return_pct=outcome.return_pct, correct=outcome.correct,
                pnl_pct=outcome.pnl_pct, model_correct=outcome.model_correct, model_pnl_pct=outcome.model_pnl_pct))
        watch = self.watch(symbol)
        for outcome in sorted(settled, key=lambda o: o.candle_ts):
            if watch.since_ts is None or outcome.candle_ts >= watch.since_ts:
                watch.add(model_correct=outcome.model_correct, model_pnl_pct=outcome.model_pnl_pct,
                          pnl_pct=outcome.pnl_pct, algo_pnl_pct=outcome.algo_pnl_pct, in_vote=outcome.model_in_vote)
        if not self.config.auto_training.enabled:
            return None  # disabled: the policy would say no without reading anything
        if in_flight:
            return Decided(RetrainDecision(False, None, "a retrain is already queued or running"))
        inputs = policy_inputs(self.db, self.config, self.exchange, symbol, self.timeframe, has_model=has_model,
                               watch=watch, until_ms=market_ts)
        benched = bench_reason(inputs, self.config)
        if benched is not None and watch.version is not None:
            log.warning("Model %s of %s leaves the vote: %s", watch.version, symbol, benched)
            self.activate(symbol, watch.version, market_ts + self.step, benched=True, reason=benched)
        decision = decide(inputs, market_ts, self.config)
        if not decision.retrain:
            return Decided(decision)
        if decision.trigger == DRIFT:
            watch.acted_on()
        run_id, queued = self.db.runs.queue(self.exchange, symbol, self.timeframe, trigger=str(decision.trigger),
                                            reason=decision.reason, requested_market_ts=market_ts)
        if queued:
            log.info("%s", log_line(decision, symbol))
            self.publish(messages.RetrainQueued(symbol=symbol, timeframe=self.timeframe, run_id=run_id,
                                                trigger=str(decision.trigger), reason=decision.reason))
        return Decided(decision, run_id, queued)

    def activate(self, symbol: str, version: str | None, from_ts: int, *, benched: bool = False,
                 reason: str = "") -> bool:
        """`version` (None: the algorithms alone) serves `symbol` from candle `from_ts` on, in the vote or
        `benched`: a new version starts a new window for performance and the policy. False when it already
        served that way."""
        self._in_vote[symbol] = not benched
        self._watches.pop(symbol, None)  # a new window: its record is rebuilt from the store
        return self.db.signals.record_activation(self.exchange, symbol, self.timeframe, version, from_ts,
                                                 benched=benched, reason=reason)

    def watch(self, symbol: str) -> ModelWatch:
        """The serving model's own record since its window began (rebuilt once, then kept outcome by outcome)."""
        watch = self._watches.get(symbol)
        if watch is None:
            runner = self.models.runner(symbol)
            watch = self._watches[symbol] = build_watch(self.db, self.config, self.exchange, symbol, self.timeframe,
                                                        accuracy=drift_reference(runner.meta) if runner else None)
        return watch
