"""The inference process: one signal per closed candle, outcomes settled, the retrain policy consulted.

It never imports torch: the model runs on ONNX Runtime (models.runtime), features and algorithms on
numpy. For every closed candle of every symbol, in order: the window of recent candles from the
shared-memory ring (the store when the ring cannot cover it), the promoted model's probability (when
one is loaded and has the history it needs) plus the rule-based algorithms -> one signal, recorded
in the store (exactly once per candle: the store refuses a second one) and published. Then earlier
signals whose outcome candle has arrived are settled, and the retrain policy decides whether to
queue a retrain. Candle hints wake the loop; the ring heads are also checked every tick, so a lost
hint only delays a signal. After a restart, every candle after the last recorded signal is processed
first. Models are hot-swapped between candles (daemon.model_slot).
"""

from __future__ import annotations

import concurrent.futures as futures
import sys
import time
from typing import Sequence

import numpy as np

from autoretrain.daemon.signals.algorithms import REQUIRED_CANDLES
from autoretrain.daemon.store.candles import CandleStore
from autoretrain.daemon.foundation.candles import empty
from autoretrain.daemon.processes.child import Child, run_child
from autoretrain.daemon.processes.model_slot import ModelSlot
from autoretrain.daemon.signals.policy import decide, log_line, policy_inputs
from autoretrain.daemon.store.retrain_runs import RetrainRuns
from autoretrain.daemon.store.signal_start import SignalStart
from autoretrain.daemon.store.signals import SignalStore
from autoretrain.daemon.signals.vote import compute_signal, compute_signals
from autoretrain.daemon.foundation.timeframes import iso, timeframe_ms
from autoretrain.ipc import messages
from autoretrain.ipc.ring import CandleRing, RingError, ring_path
from autoretrain.models.registry import Registry, RegistryError
from autoretrain.models.features import compute_features
from autoretrain.models.runtime import NotEnoughHistory

TICK_S = 0.5


class SymbolWorker:
    """Signals of one symbol: the ring, the model slot, and the newest candle already signalled."""

    def __init__(self, inference: "Inference", symbol: str) -> None:
        self.inference = inference
        self.symbol = symbol
        self.ring = CandleRing.attach(ring_path(inference.config.runtime_dir, symbol, inference.timeframe))
        self.slot = ModelSlot(inference.registry, symbol, inference.timeframe, threads=inference.config.inference.threads,
                              loader=inference.loader)
        self.last_signal_ts: int | None = None
        self.ring_head_seen = -1

    @property
    def history_needed(self) -> int:
        runner = self.slot.runner
        return max(REQUIRED_CANDLES, runner.required_candles if runner is not None else 0)


class Inference:
    def __init__(self, child: Child) -> None:
        self.child = child
        self.config = child.config
        self.timeframe = self.config.market.timeframe
        self.step = timeframe_ms(self.timeframe)
        self.exchange = self.config.store_exchange
        self.store = CandleStore(self.config.db_path, autocheckpoint=False)
        self.signals = SignalStore(self.store.conn)
        self.runs = RetrainRuns(self.store.conn)
        self.registry = Registry(self.config.models_dir)
        self.signal_start = SignalStart(self.config.state_dir)
        self.loader = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-load")
        self.workers = {symbol: SymbolWorker(self, symbol) for symbol in self.config.market.symbols}
        self.events = child.subscribe(messages.CANDLE, messages.MODEL_PROMOTED)
        self.next_model_check = 0.0

    # -- models ----------------------------------------------------------------------------------------

    def _activated(self, worker: SymbolWorker, version: str | None, market_ts: int) -> None:
        self.signals.record_activation(self.exchange, worker.symbol, self.timeframe, version, market_ts)

    def _refused(self, worker: SymbolWorker, version: str | None, reason: str, serving: str | None,
                 when: str = "") -> None:
        """A model that will not serve: one log line and `model.rejected`; `serving` goes on."""
        self.child.log.error("refused model %s for %s%s: %s; %s", version, worker.symbol, when, reason,
                             f"keeping {serving}" if serving else "running on algorithms only")
        self.child.publish(messages.MODEL_REJECTED, symbol=worker.symbol, timeframe=self.timeframe, version=version,
                           reason=reason, serving=serving)

    def _swap_models(self) -> None:
        for worker in self.workers.values():
            previous = worker.slot.version
            result = worker.slot.take_swap()
            if result is None:
                continue
            if result.error is not None:
                self._refused(worker, result.version, result.error, previous)
                continue
            next_candle = (worker.last_signal_ts + self.step) if worker.last_signal_ts is not None else 0
            self._activated(worker, result.version, next_candle)
            self.child.log.info("Hot-swapped %s model %s -> %s (from candle %s on)", worker.symbol,
                                previous or "none", result.version or "none", iso(next_candle))
            self.child.publish(messages.MODEL_SWAPPED, symbol=worker.symbol, timeframe=self.timeframe,
                               version=result.version, previous=previous, from_ts=next_candle)

    def _check_models(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self.next_model_check:
            return
        self.next_model_check = now + self.config.inference.model_check_interval
        for worker in self.workers.values():
            worker.slot.check()

    # -- signals ---------------------------------------------------------------------------------------

    def _from_ring(self, worker: SymbolWorker, after_ts: int | None, count: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(window, fresh) from the newest `count` ring candles, or None if they do not reach back far enough."""
        try:
            window = worker.ring.read_latest(count)
        except RingError as exc:
            self.child.log.warning("ring of %s unreadable (%s); reading the store", worker.symbol, exc)
            return None
        if len(window) == 0 or (after_ts is not None and int(window["ts"][0]) > after_ts):
            return None
        new_from = int(np.searchsorted(window["ts"], after_ts if after_ts is not None else -1, side="right"))
        if new_from < worker.history_needed - 1:
            return None
        return window, window[new_from:]

    def _window_source(self, worker: SymbolWorker, after_ts: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(history window, new candles to signal): from the ring, or the store when the ring falls short."""
        nothing = empty()
        if after_ts is None:
            return nothing, nothing
        _, ring_last = worker.ring.state()
        if ring_last == after_ts:
            return nothing, nothing  # the usual case between candles: nothing new
        # most calls have one new candle: read just enough, then the whole ring, then the store
        for count in (worker.history_needed + 4, worker.ring.capacity):
            found = self._from_ring(worker, after_ts, min(count, worker.ring.capacity))
            if found is not None:
                return found
        newest = self.store.latest(self.exchange, worker.symbol, self.timeframe, 1)
        if len(newest) == 0 or int(newest["ts"][-1]) <= after_ts:
            return nothing, nothing
        history = self.store.latest(self.exchange, worker.symbol, self.timeframe, worker.history_needed, end_ms=after_ts)
        fresh = self.store.window(self.exchange, worker.symbol, self.timeframe, start_ms=after_ts + 1)
        return np.concatenate([history, fresh]), fresh

    def _model_failed(self, worker: SymbolWorker, exc: BaseException) -> None:
        """A model that loaded fine but fails on live data is taken out of service, never retried blindly."""
        version = worker.slot.drop()
        reason = f"prediction failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        self._refused(worker, version, reason, None)
        self._activated(worker, None, (worker.last_signal_ts or 0) + self.step)

    def _model_probability(self, worker: SymbolWorker, window: np.ndarray) -> tuple[float | None, str | None]:
        runner = worker.slot.runner
        if runner is None:
            return None, None
        try:
            return runner.predict(window), runner.version
        except NotEnoughHistory as exc:
            self.child.log.debug("%s: model skipped for this candle: %s", worker.symbol, exc)
        except Exception as exc:  # noqa: BLE001 - whatever the model does, the candle still gets its signal
            self._model_failed(worker, exc)
        return None, None

    def _resume_point(self, worker: SymbolWorker) -> int | None:
        """The newest candle already signalled, or where live signals begin for this symbol."""
        last = self.signals.last_signal_ts(self.exchange, worker.symbol, self.timeframe)
        if last is not None:
            return last
        newest = self.store.summary(self.exchange, worker.symbol, self.timeframe).last_ts
        return self.signal_start.after(f"{self.exchange}|{worker.symbol}|{self.timeframe}", newest)

    def process(self, worker: SymbolWorker) -> int:
        """Signal every candle newer than the last signal, then settle and consult the policy."""
        made = self.signal_new_candles(worker)
        self._settle_and_decide(worker)
        return made

    def signal_new_candles(self, worker: SymbolWorker, window: np.ndarray | None = None,
                           fresh: np.ndarray | None = None) -> int:
        """Signal every candle newer than the last signal, one by one; returns how many signals were made."""
        if window is None or fresh is None:
            if worker.last_signal_ts is None:
                worker.last_signal_ts = self._resume_point(worker)
            window, fresh = self._window_source(worker, worker.last_signal_ts)
        if len(fresh) == 0:
            return 0
        offset = len(window) - len(fresh)
        made = 0
        for index in range(len(fresh)):
            end = offset + index + 1
            history = window[max(0, end - worker.history_needed):end]
            probability, version = self._model_probability(worker, history)
            signal = compute_signal(history, model_probability=probability, model_version=version,
                                    config=self.config.signals)
            if self.signals.record(self.exchange, worker.symbol, self.timeframe, signal):
                made += 1
                self.child.publish(messages.SIGNAL, symbol=worker.symbol, timeframe=self.timeframe,
                                   **signal.as_dict())
            worker.last_signal_ts = int(fresh["ts"][index])
        return made

    def _has_model(self, worker: SymbolWorker) -> bool:
        try:
            return self.registry.promoted(worker.symbol, self.timeframe) is not None
        except RegistryError:
            return worker.slot.version is not None

    def signal_batch(self, items: list[tuple[SymbolWorker, np.ndarray]]) -> list[SymbolWorker]:
        """One new candle for each of several symbols: features, votes and the store write batched.

        Gives exactly the signals `signal_new_candles` would (same windows, same numbers), in one
        numpy pass per step instead of one per symbol: the latency path when many symbols close at once.
        """
        probabilities: list[float | None] = [None] * len(items)
        versions: list[str | None] = [None] * len(items)
        by_length: dict[int, list[tuple[int, np.ndarray]]] = {}
        for row, (worker, window) in enumerate(items):
            runner = worker.slot.runner
            if runner is None:
                continue
            try:
                by_length.setdefault(runner.required_candles, []).append((row, runner.recent(window)))
            except NotEnoughHistory as exc:
                self.child.log.debug("%s: model skipped for this candle: %s", worker.symbol, exc)
        for group in by_length.values():
            features = compute_features(np.stack([recent for _, recent in group]))
            for (row, recent), rows in zip(group, features):
                runner = items[row][0].slot.runner
                assert runner is not None
                try:
                    probabilities[row] = runner.predict_features(recent, rows)
                    versions[row] = runner.version
                except NotEnoughHistory as exc:
                    self.child.log.debug("%s: model skipped for this candle: %s", items[row][0].symbol, exc)
                except Exception as exc:  # noqa: BLE001 - whatever the model does, the candle gets its signal
                    self._model_failed(items[row][0], exc)
        windows = np.stack([window[-REQUIRED_CANDLES:] for _, window in items])
        signals = compute_signals(windows, model_probabilities=probabilities, model_versions=versions,
                                  config=self.config.signals)
        inserted = self.signals.record_many(self.exchange, self.timeframe,
                                            [(worker.symbol, signal) for (worker, _), signal in zip(items, signals)])
        for (worker, _), signal, new in zip(items, signals, inserted):
            if new:
                self.child.publish(messages.SIGNAL, symbol=worker.symbol, timeframe=self.timeframe, **signal.as_dict())
            worker.last_signal_ts = signal.candle_ts
        return [worker for (worker, _), new in zip(items, inserted) if new]

    def signal_due(self, due: list[SymbolWorker]) -> list[SymbolWorker]:
        """Signal every due symbol: the usual single new candle in one batch, catch-ups one by one."""
        batch: list[tuple[SymbolWorker, np.ndarray]] = []
        signalled: list[SymbolWorker] = []
        for worker in due:
            if worker.last_signal_ts is None:
                worker.last_signal_ts = self._resume_point(worker)
            window, fresh = self._window_source(worker, worker.last_signal_ts)
            if len(fresh) == 1 and len(window) >= worker.history_needed:
                batch.append((worker, window))
            elif len(fresh) and self.signal_new_candles(worker, window, fresh):
                signalled.append(worker)
        return (self.signal_batch(batch) if batch else []) + signalled

    def _settle_and_decide(self, worker: SymbolWorker) -> None:
        settled = self.signals.settle(self.exchange, worker.symbol, self.timeframe, horizon=self.config.model.horizon,
                                      fee_bps=self.config.signals.fee_bps)
        for outcome in settled:
            self.child.publish(messages.OUTCOME, symbol=worker.symbol, timeframe=self.timeframe, **outcome.as_dict())
        if worker.last_signal_ts is None or not self.config.auto_training.enabled:
            return  # disabled: the policy would say no without reading anything
        inputs = policy_inputs(self.store.conn, self.config, self.exchange, worker.symbol, self.timeframe,
                               has_model=self._has_model(worker))
        decision = decide(inputs, worker.last_signal_ts, self.config)
        if not decision.retrain:
            return
        run_id, queued = self.runs.queue(self.exchange, worker.symbol, self.timeframe, trigger=str(decision.trigger),
                                         reason=decision.reason, requested_market_ts=worker.last_signal_ts)
        if queued:
            self.child.log.info("%s", log_line(decision, worker.symbol))
            self.child.publish(messages.RETRAIN_QUEUED, symbol=worker.symbol, timeframe=self.timeframe, run_id=run_id,
                               trigger=decision.trigger, reason=decision.reason)

    # -- start-up and loop -----------------------------------------------------------------------------

    def start(self) -> None:
        for worker in self.workers.values():
            worker.last_signal_ts = self._resume_point(worker)
            result = worker.slot.load_now()
            if result is not None and result.error is not None:
                self._refused(worker, result.version, result.error, None, when=" at start")
            current = self.signals.current_activation(self.exchange, worker.symbol, self.timeframe)
            if (current.version if current is not None else None) != worker.slot.version:
                from_ts = (worker.last_signal_ts + self.step) if worker.last_signal_ts is not None else 0
                self._activated(worker, worker.slot.version, from_ts)
            caught_up = self.process(worker)
            if caught_up:
                self.child.log.info("caught up %s: %d signals for candles closed while inference was down",
                                    worker.symbol, caught_up)
        self.next_model_check = time.monotonic() + self.config.inference.model_check_interval

    def _report(self, force: bool = False) -> None:
        self.child.report(force=force, models={w.symbol: w.slot.version for w in self.workers.values()},
                          last_signal={w.symbol: iso(w.last_signal_ts) for w in self.workers.values()})

    def run(self) -> int:
        self.start()
        self.child.report("ready", force=True)
        self._report(force=True)
        while not self.child.stopping:
            woke = self.events.sock.poll(int(TICK_S * 1000))
            hinted: set[str] = set()
            if woke:
                events = self.events.drain()
                if any(topic == messages.MODEL_PROMOTED for topic, _ in events):
                    self._check_models(force=True)  # once, however many promotions arrived together
                hinted = {str(payload["symbol"]) for topic, payload in events
                          if topic == messages.CANDLE and payload.get("symbol") in self.workers}
            self._swap_models()
            due = []
            for worker in self.workers.values():
                head, _ = worker.ring.state()
                if worker.symbol in hinted or head != worker.ring_head_seen:
                    worker.ring_head_seen = head
                    due.append(worker)
            # every symbol's signal first (the latency path), then outcomes and the policy
            for worker in self.signal_due(due):
                self._settle_and_decide(worker)
            self._check_models()
            self._report()
        return 0

    def close(self) -> None:
        self.loader.shutdown(wait=False, cancel_futures=True)
        self.store.close()


def main(argv: Sequence[str] | None = None) -> int:
    return run_child("inference", Inference, argv)


if __name__ == "__main__":
    sys.exit(main())
