"""The ingest process: backfill on start, then follow closed candles for every symbol.

Order for every new candle: store first (durable), then the shared-memory ring, then a `candle` hint
on the bus. After a restart it resumes from the newest stored candle (no gap, no duplicate) and
rewrites each ring from the store, so a candle stored just before a crash still reaches the ring.
Symbols that close together are stored in one transaction. With a network source each symbol is
fetched in a worker thread, so one slow symbol never holds the others back.
"""

from __future__ import annotations

import concurrent.futures as futures
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from autoretrain.daemon.foundation.candles import Rejection, empty
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import ConfigError, SourceUnavailable, UsageError
from autoretrain.daemon.foundation.timeframes import DAY_MS, iso, last_closed_open_ms, timeframe_ms
from autoretrain.daemon.market.backfill import backfill
from autoretrain.daemon.market.clock import EXCHANGE_CLOCK_FILE, MarketClock, load_or_create_anchor, record_clock
from autoretrain.daemon.market.market_time import ANCHOR_FILE, market_identity
from autoretrain.daemon.market.sources import CandleSource, open_source
from autoretrain.daemon.processes.child import Child, run_child
from autoretrain.daemon.store.database import Database
from autoretrain.ipc import messages
from autoretrain.ipc.ring import CandleRing, ring_path


def open_market(config: Config) -> CandleSource:
    """The configured source; an accelerated market's clock kept in the state directory, where inference and the
    supervisor read the market's time (`market.market_time`)."""
    identity = market_identity(config)
    anchor = load_or_create_anchor(config.state_dir / ANCHOR_FILE, identity) if identity else None
    source = open_source(config, anchor=anchor, exchange_clock=config.runtime_dir / EXCHANGE_CLOCK_FILE)
    clock = getattr(source, "clock", None)
    if identity and isinstance(clock, MarketClock):
        record_clock(config.state_dir / ANCHOR_FILE, identity, clock)
    return source


@dataclass
class SymbolFeed:
    symbol: str
    ring: CandleRing
    last_ts: int | None = None
    fetching: futures.Future | None = None
    retry_at: float = 0.0  # monotonic time before which a failed symbol is not fetched again
    rejected: list[Rejection] = field(default_factory=list)


class Ingest:
    def __init__(self, child: Child) -> None:
        self.child = child
        self.config = child.config
        self.timeframe = self.config.market.timeframe
        self.step = timeframe_ms(self.timeframe)
        self.source = open_market(self.config)
        self.db = Database(self.config.db_path, autocheckpoint=False)
        self.candles = self.db.candles
        self.exchange = self.source.exchange
        self.feeds = {
            symbol: SymbolFeed(symbol, CandleRing.attach(ring_path(self.config.runtime_dir, symbol, self.timeframe),
                                                         writable=True))
            for symbol in self.config.market.symbols
        }
        self.pool = futures.ThreadPoolExecutor(max_workers=min(16, len(self.feeds)), thread_name_prefix="fetch") \
            if self.source.blocking else None

    # -- start-up --------------------------------------------------------------------------------------

    def _newest_closed(self, symbol: str, now_ms: int, *, warn: bool) -> tuple[int | None, int]:
        """(open time of the newest stored candle closed by `now_ms`, how many stored ones are from the future).

        A candle from the future in the store (imported by hand or by an older version) is no closed
        candle: following from it would wait for years, silently. It is named in an error and passed over."""
        closed = last_closed_open_ms(now_ms, self.timeframe)
        every = self.candles.summary(self.exchange, symbol, self.timeframe)
        if every.last_ts is None or every.last_ts <= closed:
            return every.last_ts, 0
        before = self.candles.summary(self.exchange, symbol, self.timeframe, until_ms=closed)
        future = every.count - before.count
        if warn:
            self.child.log.error("the store holds %d %s %s candle(s) from the future (the newest opens %s, after the "
                                 "market's time %s): not closed candles; following from the newest closed one",
                                 future, symbol, self.timeframe, iso(every.last_ts), iso(now_ms))
        return before.last_ts, future

    def backfill_all(self) -> None:
        days = self.config.market.backfill_days or self.config.training.days
        now = self.source.now_ms()
        for feed in self.feeds.values():
            if self.child.stopping:
                return
            last, _ = self._newest_closed(feed.symbol, now, warn=True)
            since = max(now - int(days * DAY_MS), (last + self.step) if last is not None else 0)
            self.child.report("backfilling", symbol=feed.symbol, backfill_page=0)

            def progress(cursor: int, start: int, end: int, symbol: str = feed.symbol) -> None:
                self.child.report(symbol=symbol, backfill_cursor=iso(cursor), backfill_end=iso(end))

            try:
                report = backfill(self.source, self.candles, feed.symbol, self.timeframe, since, progress=progress)
            except UsageError as exc:  # the exchange does not list this symbol or timeframe: fix the config
                raise ConfigError(f"market.symbols: {exc}", key_path="market.symbols") from None
            except SourceUnavailable as exc:
                # the exchange is down: serve what is stored and catch up when it answers again
                self.child.log.error("backfill of %s failed: %s; following from the stored candles", feed.symbol, exc)
                report = None
            for hole in report.holes if report else []:
                self.child.log.error("backfill of %s left a hole: %s", feed.symbol, hole.describe())
            summary = self.candles.summary(self.exchange, feed.symbol, self.timeframe)
            now = self.source.now_ms()
            feed.last_ts, future = self._newest_closed(feed.symbol, now, warn=False)
            feed.ring.reset(self.candles.latest(self.exchange, feed.symbol, self.timeframe, feed.ring.capacity,
                                                end_ms=last_closed_open_ms(now, self.timeframe)))
            self.child.log.info("backfilled %s %s: %d new candles, %d stored, newest %s", feed.symbol,
                                self.timeframe, report.inserted if report else 0, summary.count - future,
                                iso(feed.last_ts))

    # -- following -------------------------------------------------------------------------------------

    def _next_close_ms(self, feed: SymbolFeed) -> int:
        """Market time at which the candle after the newest stored one closes."""
        if feed.last_ts is None:
            return last_closed_open_ms(self.source.now_ms(), self.timeframe) + self.step
        return feed.last_ts + 2 * self.step

    def _fetch_new(self, symbol: str, since_ms: int) -> tuple[np.ndarray, list[Rejection]]:
        batches = list(self.source.fetch(symbol, self.timeframe, since_ms))
        rejected = [r for b in batches for r in b.rejected]
        candles = [b.candles for b in batches if len(b.candles)]
        return (np.concatenate(candles) if candles else empty()), rejected

    def _since(self, feed: SymbolFeed) -> int:
        return (feed.last_ts + self.step) if feed.last_ts is not None else \
            last_closed_open_ms(self.source.now_ms(), self.timeframe)

    def _fetch_failed(self, feed: SymbolFeed, exc: BaseException) -> None:
        """One symbol's fetch failed (exchange down, timeouts): log, back off, keep the others going."""
        delay = min(60.0, 5 * self.config.market.poll_interval)
        feed.retry_at = time.monotonic() + delay
        self.child.log.warning("fetching %s failed: %s; retrying in %.0f s", feed.symbol, exc, delay)

    def poll_once(self) -> int:
        """Fetch what is due, store it (one transaction), write rings, publish hints; returns candles."""
        now = self.source.now_ms()
        ready: list[tuple[SymbolFeed, np.ndarray, list[Rejection]]] = []
        for feed in self.feeds.values():
            if feed.fetching is None and self._next_close_ms(feed) <= now and time.monotonic() >= feed.retry_at:
                if self.pool is None:
                    try:
                        ready.append((feed, *self._fetch_new(feed.symbol, self._since(feed))))
                    except Exception as exc:  # noqa: BLE001 - one symbol failing must not stop the others
                        self._fetch_failed(feed, exc)
                else:
                    feed.fetching = self.pool.submit(self._fetch_new, feed.symbol, self._since(feed))
            if feed.fetching is not None and feed.fetching.done():
                future, feed.fetching = feed.fetching, None
                try:
                    ready.append((feed, *future.result()))
                except Exception as exc:  # noqa: BLE001 - one symbol failing must not stop the others
                    self._fetch_failed(feed, exc)
        for feed, _, rejected in ready:
            for rejection in rejected:
                self.child.log.warning("rejected %s %s candle %s", feed.symbol, self.timeframe, rejection.describe())
        fresh = [(feed, candles[candles["ts"] > (feed.last_ts if feed.last_ts is not None else -1)])
                 for feed, candles, _ in ready]
        fresh = [(feed, candles) for feed, candles in fresh if len(candles)]
        if not fresh:
            return 0
        self.candles.store_many([(self.exchange, feed.symbol, self.timeframe, candles) for feed, candles in fresh])
        previous = {feed.symbol: feed.last_ts for feed, _ in fresh}
        for feed, candles in fresh:  # every ring first: inference, woken by the first hint, sees them all
            feed.ring.write(candles)
            feed.last_ts = int(candles["ts"][-1])
        for feed, candles in fresh:
            head, _ = feed.ring.state()
            newest = int(candles["ts"][-1])
            self.child.publish(messages.CandleClosed(
                symbol=feed.symbol, timeframe=self.timeframe, ts=newest, close=float(candles["close"][-1]),
                count=len(candles), head=head, closed_at_ms=newest + self.step))
        for feed, candles in fresh:  # after the hints: the log never delays a signal
            after = previous[feed.symbol]
            for note in self.source.market_notes(feed.symbol, self.timeframe,
                                                 after if after is not None else int(candles["ts"][0]) - self.step,
                                                 int(candles["ts"][-1])):
                self.child.log.info("%s", note)
        return sum(len(c) for _, c in fresh)

    def wait_for_next_close(self) -> None:
        waits = []
        for feed in self.feeds.values():
            if feed.fetching is not None:
                waits.append(0.05)
            else:
                waits.append(self.source.wall_seconds_until(self._next_close_ms(feed)))
        wait = min(waits) if waits else self.config.market.poll_interval
        if self.source.blocking and wait <= 0:
            wait = min(self.config.market.poll_interval, 0.05)
        self.child.sleep(min(max(wait, 0.0), self.config.market.poll_interval), step=0.05)

    def run(self) -> int:
        self.backfill_all()
        self.child.report("ready", force=True, symbols=len(self.feeds))
        while not self.child.stopping:
            stored = self.poll_once()
            self.child.report(candles_last_poll=stored)
            if not stored:
                self.wait_for_next_close()
        return 0

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.db.close()
        self.source.close()
        for feed in self.feeds.values():
            feed.ring.close()


def main(argv: Sequence[str] | None = None) -> int:
    return run_child("ingest", Ingest, argv)


if __name__ == "__main__":
    sys.exit(main())
