"""The inference process: drives the signal loop with candles from the rings and hot-swapped models.

It never imports torch: the model runs on ONNX Runtime (models.runtime), features and algorithms on
numpy. For every closed candle of every symbol, in order: the window of recent candles from the
shared-memory ring (the store when the ring cannot cover it), then `loop.SignalLoop` makes, records
and publishes the signal (exactly once per candle: the store refuses a second one), settles earlier
signals whose outcome candle has arrived and lets the retrain policy queue a retrain. Candle hints
wake the loop; the ring heads are also checked every tick, so a lost hint only delays a signal.
After a restart, every candle after the last recorded signal is signalled first, as ordinary
batches. Models are hot-swapped between candles (processes.model_slot). Whatever is read from the store is
read up to the market's time (`market.market_time`): a candle from the future that the store holds (put
there by hand or by an older version) is no closed candle, and is never signalled nor resumed from.
"""

from __future__ import annotations

import concurrent.futures as futures
import sys
import time
from collections.abc import Sequence

import numpy as np

from autoretrain.daemon.foundation.candles import empty
from autoretrain.daemon.foundation.latency import LatencyHistogram
from autoretrain.daemon.foundation.timeframes import iso, timeframe_ms
from autoretrain.daemon.loop.signal_loop import SignalLoop
from autoretrain.daemon.market.market_time import MarketTime
from autoretrain.daemon.processes.child import Child, run_child
from autoretrain.daemon.processes.model_slot import ModelSlot
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.store.signal_start import SignalStart
from autoretrain.ipc import messages
from autoretrain.ipc.ring import CandleRing, RingError, ring_path
from autoretrain.models.registry import Registry
from autoretrain.models.runtime import ModelRunner

TICK_S = 0.5


class SymbolWorker:
    """One symbol: its ring, its model slot, and the newest candle already signalled."""

    def __init__(self, inference: Inference, symbol: str) -> None:
        self.symbol = symbol
        self.ring = CandleRing.attach(ring_path(inference.config.runtime_dir, symbol, inference.timeframe))
        self.slot = ModelSlot(inference.registry, symbol, inference.timeframe, threads=inference.config.inference.threads,
                              loader=inference.loader)
        self.last_signal_ts: int | None = None
        self.ring_head_seen = -1


class Inference:
    def __init__(self, child: Child) -> None:
        self.child = child
        self.config = child.config
        self.timeframe = self.config.market.timeframe
        self.step = timeframe_ms(self.timeframe)
        self.exchange = self.config.store_exchange
        self.db = Database(self.config.db_path, autocheckpoint=False)
        self.registry = Registry(self.config.models_dir)
        self.signal_start = SignalStart(self.config.state_dir)
        self.market_time = MarketTime(self.config)
        self.loader = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-load")
        self.workers = {symbol: SymbolWorker(self, symbol) for symbol in self.config.market.symbols}
        self.loop = SignalLoop(self.db, self.config, models=self, publish=child.publish)
        self.events = child.subscribe(messages.Topic.CANDLE, messages.Topic.MODEL_PROMOTED)
        self.next_model_check = 0.0
        self.latency = LatencyHistogram()  # candle close -> signal recorded and published

    # -- the models the loop asks for (loop.ModelSource) --------------------------------------------------

    def runner(self, symbol: str) -> ModelRunner | None:
        return self.workers[symbol].slot.runner

    def failed(self, symbol: str, error: BaseException, candle_ts: int) -> None:
        """A model that loaded fine but fails on live data is taken out of service, never retried blindly."""
        worker = self.workers[symbol]
        version = worker.slot.drop()
        reason = f"prediction failed: {type(error).__name__}: {' '.join(str(error).split())[:200]}"
        self._refused(worker, version, reason, None)
        self.loop.activate(symbol, None, candle_ts)

    # -- hot-swaps -------------------------------------------------------------------------------------

    def _next_candle(self, worker: SymbolWorker) -> int:
        return (worker.last_signal_ts + self.step) if worker.last_signal_ts is not None else 0

    def _refused(self, worker: SymbolWorker, version: str | None, reason: str, serving: str | None,
                 when: str = "") -> None:
        """A model that will not serve: one log line and `model.rejected`; `serving` goes on."""
        self.child.log.error("refused model %s for %s%s: %s; %s", version, worker.symbol, when, reason,
                             f"keeping {serving}" if serving else "running on algorithms only")
        self.child.publish(messages.ModelRefused(symbol=worker.symbol, timeframe=self.timeframe, version=version,
                                                 reason=reason, serving=serving))

    def _swap_models(self) -> None:
        for worker in self.workers.values():
            previous = worker.slot.version
            result = worker.slot.take_swap()
            if result is None:
                continue
            if result.error is not None:
                self._refused(worker, result.version, result.error, previous)
                continue
            next_candle = self._next_candle(worker)
            self.loop.activate(worker.symbol, result.version, next_candle)
            self.child.log.info("Hot-swapped %s model %s -> %s (from candle %s on)", worker.symbol,
                                previous or "none", result.version or "none", iso(next_candle))
            self.child.publish(messages.ModelSwapped(symbol=worker.symbol, timeframe=self.timeframe,
                                                     version=result.version, previous=previous, from_ts=next_candle))

    def _check_models(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self.next_model_check:
            return
        self.next_model_check = now + self.config.inference.model_check_interval
        for worker in self.workers.values():
            worker.slot.check()

    # -- windows ---------------------------------------------------------------------------------------

    def _from_ring(self, worker: SymbolWorker, after_ts: int, count: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(window, fresh) from the newest `count` ring candles, or None if they do not reach back far enough."""
        try:
            window = worker.ring.read_latest(count)
        except RingError as exc:
            self.child.log.warning("ring of %s unreadable (%s); reading the store", worker.symbol, exc)
            return None
        if len(window) == 0 or int(window["ts"][0]) > after_ts:
            return None
        new_from = int(np.searchsorted(window["ts"], after_ts, side="right"))
        if new_from < self.loop.history_needed(worker.symbol) - 1:
            return None
        return window, window[new_from:]

    def _window_source(self, worker: SymbolWorker) -> tuple[np.ndarray, np.ndarray]:
        """(history window, new candles to signal): from the ring, or the store when the ring falls short."""
        nothing = empty()
        after_ts = worker.last_signal_ts
        if after_ts is None:
            return nothing, nothing
        _, ring_last = worker.ring.state()
        if ring_last == after_ts:
            return nothing, nothing  # the usual case between candles: nothing new
        # most calls have one new candle: read just enough, then the whole ring, then the store
        needed = self.loop.history_needed(worker.symbol)
        for count in (needed + 4, worker.ring.capacity):
            found = self._from_ring(worker, after_ts, min(count, worker.ring.capacity))
            if found is not None:
                return found
        candles, closed = self.db.candles, self.market_time.closed_until_ms()
        newest = candles.latest(self.exchange, worker.symbol, self.timeframe, 1, end_ms=closed)
        if len(newest) == 0 or int(newest["ts"][-1]) <= after_ts:
            return nothing, nothing
        history = candles.latest(self.exchange, worker.symbol, self.timeframe, needed, end_ms=after_ts)
        fresh = candles.window(self.exchange, worker.symbol, self.timeframe, start_ms=after_ts + 1, end_ms=closed)
        return np.concatenate([history, fresh]), fresh

    def _resume_point(self, worker: SymbolWorker) -> int | None:
        """The newest candle already signalled, or where live signals begin for this symbol (never after the
        newest closed candle: a start an older version fixed at a candle from the future would wait for it)."""
        closed = self.market_time.closed_until_ms()
        last = self.db.signals.last_signal_ts(self.exchange, worker.symbol, self.timeframe, until_ms=closed)
        if last is not None:
            return last
        newest = self.db.candles.summary(self.exchange, worker.symbol, self.timeframe, until_ms=closed).last_ts
        start = self.signal_start.after(f"{self.exchange}|{worker.symbol}|{self.timeframe}", newest)
        return newest if start is not None and closed is not None and start > closed else start

    def _note_future(self, worker: SymbolWorker) -> None:
        """Once at start: candles from the future in the store are named, and left out of every read."""
        closed = self.market_time.closed_until_ms()
        if closed is None:
            return
        every = self.db.candles.summary(self.exchange, worker.symbol, self.timeframe)
        if every.last_ts is None or every.last_ts <= closed:
            return
        future = every.count - self.db.candles.summary(self.exchange, worker.symbol, self.timeframe,
                                                       until_ms=closed).count
        self.child.log.warning("ignoring %d %s %s candle(s) from the future in the store (the newest opens %s, after "
                               "the newest closed candle %s): they are not closed candles", future, worker.symbol,
                               self.timeframe, iso(every.last_ts), iso(closed))

    # -- signals ---------------------------------------------------------------------------------------

    def signal_due(self, due: list[SymbolWorker]) -> dict[str, int]:
        """Signal every new candle of the due symbols; how many new signals each got (none: left out)."""
        pending = {}
        for worker in due:
            if worker.last_signal_ts is None:
                worker.last_signal_ts = self._resume_point(worker)
            window, fresh = self._window_source(worker)
            if len(fresh):
                pending[worker.symbol] = (window, fresh)
                worker.last_signal_ts = int(fresh["ts"][-1])
        made = self.loop.signal_pending(pending)
        for signals in made.values():
            for signal in signals:
                since_close = self.market_time.seconds_since(signal.candle_ts + self.step)
                if since_close is not None:
                    self.latency.observe(since_close)
        return {symbol: len(signals) for symbol, signals in made.items() if signals}

    def _settle_and_decide(self, worker: SymbolWorker) -> None:
        if worker.last_signal_ts is not None:
            self.loop.settle_and_decide(worker.symbol, worker.last_signal_ts, has_model=worker.slot.expects_model)

    # -- start-up and loop -----------------------------------------------------------------------------

    def start(self) -> None:
        for worker in self.workers.values():
            self._note_future(worker)
            worker.last_signal_ts = self._resume_point(worker)
            result = worker.slot.load_now()
            if result is not None and result.error is not None:
                self._refused(worker, result.version, result.error, None, when=" at start")
            current = self.db.signals.current_activation(self.exchange, worker.symbol, self.timeframe)
            if (current.version if current is not None else None) != worker.slot.version:
                self.loop.activate(worker.symbol, worker.slot.version, self._next_candle(worker))
        caught_up = self.signal_due(list(self.workers.values()))
        for worker in self.workers.values():
            self._settle_and_decide(worker)
        for symbol, count in caught_up.items():
            self.child.log.info("caught up %s: %d signals for candles closed while inference was down", symbol, count)
        self.next_model_check = time.monotonic() + self.config.inference.model_check_interval

    def _report(self, force: bool = False) -> None:
        self.child.report(force=force, models={w.symbol: w.slot.version for w in self.workers.values()},
                          last_signal={w.symbol: iso(w.last_signal_ts) for w in self.workers.values()},
                          signal_latency=self.latency.as_dict())

    def run(self) -> int:
        self.start()
        self.child.report("ready", force=True)
        self._report(force=True)
        while not self.child.stopping:
            woke = self.events.sock.poll(int(TICK_S * 1000))
            hinted: set[str] = set()
            if woke:
                events = self.events.drain()
                if any(event.topic == messages.Topic.MODEL_PROMOTED for event in events):
                    self._check_models(force=True)  # once, however many promotions arrived together
                hinted = {event.message.symbol for event in events
                          if isinstance(event.message, messages.CandleClosed) and event.message.symbol in self.workers}
            self._swap_models()
            due = []
            for worker in self.workers.values():
                head, _ = worker.ring.state()
                if worker.symbol in hinted or head != worker.ring_head_seen:
                    worker.ring_head_seen = head
                    due.append(worker)
            # every symbol's signal first (the latency path), then outcomes and the policy
            for symbol in self.signal_due(due):
                self._settle_and_decide(self.workers[symbol])
            self._check_models()
            self._report()
        return 0

    def close(self) -> None:
        self.loader.shutdown(wait=False, cancel_futures=True)
        self.db.close()
        self.events.close()  # the body is built again after a full disk: no socket left behind


def main(argv: Sequence[str] | None = None) -> int:
    return run_child("inference", Inference, argv)


if __name__ == "__main__":
    sys.exit(main())
