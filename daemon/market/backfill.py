"""Filling the candle store from a source: page by page, each page committed as it arrives."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from autoretrain.daemon.foundation.candles import Rejection
from autoretrain.daemon.foundation.timeframes import iso
from autoretrain.daemon.market.base import CandleSource, Hole
from autoretrain.daemon.store.candles import CandleTable

log = logging.getLogger("autoretrain.backfill")

#: progress(cursor_ts, start_ts, end_ts): called after each stored page
Progress = Callable[[int, int, int], None]


@dataclass
class BackfillReport:
    exchange: str
    symbol: str
    timeframe: str
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    pages: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    holes: list[Hole] = field(default_factory=list)
    seconds: float = 0.0
    first_ts: int | None = None
    last_ts: int | None = None

    @property
    def complete(self) -> bool:
        return not self.holes

    def as_dict(self) -> dict[str, object]:
        return {
            "exchange": self.exchange, "symbol": self.symbol, "timeframe": self.timeframe,
            "fetched": self.fetched, "inserted": self.inserted, "updated": self.updated,
            "unchanged": self.unchanged, "pages": self.pages, "first": iso(self.first_ts), "last": iso(self.last_ts),
            "rejected": [{"time": iso(r.ts), "reason": r.reason} for r in self.rejected],
            "holes": [{"from": iso(h.start_ts), "to": iso(h.end_ts), "reason": h.reason} for h in self.holes],
            "complete": self.complete, "seconds": round(self.seconds, 3),
        }


def backfill(source: CandleSource, store: CandleTable, symbol: str, timeframe: str, since_ms: int,
             until_ms: int | None = None, progress: Progress | None = None) -> BackfillReport:
    """Fetch closed candles from `since_ms` and upsert them; invalid candles and holes are reported."""
    report = BackfillReport(source.exchange, symbol, timeframe)
    started = time.monotonic()
    for batch in source.fetch(symbol, timeframe, since_ms, until_ms):
        report.pages += 1
        for rejection in batch.rejected:
            log.warning("rejected %s %s candle %s", symbol, timeframe, rejection.describe())
        report.rejected.extend(batch.rejected)
        report.holes.extend(batch.holes)
        if len(batch.candles):
            result = store.upsert(source.exchange, symbol, timeframe, batch.candles)
            report.fetched += len(batch.candles)
            report.inserted += result.inserted
            report.updated += result.updated
            report.unchanged += result.unchanged
            first, last = int(batch.candles["ts"][0]), int(batch.candles["ts"][-1])
            report.first_ts = first if report.first_ts is None else min(report.first_ts, first)
            report.last_ts = last if report.last_ts is None else max(report.last_ts, last)
        if progress is not None:
            progress(batch.cursor_ts, batch.start_ts, batch.end_ts)
    report.seconds = time.monotonic() - started
    return report
