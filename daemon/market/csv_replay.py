"""CSV replay: the candles of CSV files served as a live market on an accelerated clock.

The first `replay.history_candles` candles count as history (backfill); after that the replay clock
releases one candle each time a timeframe of market time passes, at `replay.speed` times real time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from autoretrain.daemon.foundation.config_schema import ReplayConfig
from autoretrain.daemon.foundation.errors import UsageError
from autoretrain.daemon.foundation.timeframes import last_closed_open_ms, timeframe_ms
from autoretrain.daemon.market.base import Batch, CandleSource
from autoretrain.daemon.market.clock import ClockAnchor, MarketClock
from autoretrain.daemon.market.csv_file import read_candle_csv

BATCH = 5000


class CsvReplaySource(CandleSource):
    def __init__(self, files: Mapping[str, str], timeframe: str, replay: ReplayConfig, *, exchange: str,
                 anchor: ClockAnchor | None = None) -> None:
        self.exchange = exchange
        self._candles = {symbol: read_candle_csv(path, timeframe).candles for symbol, path in files.items()}
        step = timeframe_ms(timeframe)
        first = min(int(c["ts"][0]) for c in self._candles.values())
        # The clock starts just after the history candles have closed.
        origin = first + (replay.history_candles + 1) * step
        self.clock = MarketClock(origin_ms=origin, speed=replay.speed, anchor_wall=anchor.wall if anchor else None,
                                 anchor_monotonic=anchor.monotonic if anchor else None)
        self.timeframe = timeframe

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def wall_seconds_until(self, market_ms: int) -> float:
        return self.clock.wall_seconds_until(market_ms)

    def fetch(self, symbol: str, timeframe: str, since_ms: int, until_ms: int | None = None) -> Iterator[Batch]:
        if symbol not in self._candles:
            raise UsageError(f"no CSV file configured for {symbol} (market.csv)")
        if timeframe != self.timeframe:
            raise UsageError(f"the CSV replay serves {self.timeframe} candles, not {timeframe}")
        end = last_closed_open_ms(self.now_ms(), timeframe)
        if until_ms is not None:
            end = min(end, until_ms)
        candles = self._candles[symbol]
        lo = int(np.searchsorted(candles["ts"], since_ms, side="left"))
        hi = int(np.searchsorted(candles["ts"], end, side="right"))
        step = timeframe_ms(timeframe)
        for first in range(lo, hi, BATCH):
            chunk = candles[first:min(hi, first + BATCH)]
            yield Batch(chunk, cursor_ts=int(chunk["ts"][-1]) + step, start_ts=since_ms, end_ts=end)
