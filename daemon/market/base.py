"""The one interface every market source implements, and what a fetch reports back."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from autoretrain.daemon.foundation.candles import Rejection
from autoretrain.daemon.foundation.timeframes import iso


@dataclass(frozen=True)
class Hole:
    """A range the source should have had candles for but returned none, even after retries."""

    start_ts: int
    end_ts: int
    reason: str

    def describe(self) -> str:
        return f"{iso(self.start_ts)} to {iso(self.end_ts)}: {self.reason}"


@dataclass
class Batch:
    """Valid closed candles from one page (sorted, unique) plus what was rejected and why.

    `cursor_ts` is the open time the source will ask for next, `end_ts` the newest closed open time it
    is fetching up to: together they give download progress.
    """

    candles: np.ndarray
    rejected: list[Rejection] = field(default_factory=list)
    holes: list[Hole] = field(default_factory=list)
    cursor_ts: int = 0
    start_ts: int = 0
    end_ts: int = 0


class CandleSource(abc.ABC):
    """A market: ccxt exchange, CSV replay or the simulated market.

    `fetch` yields batches of validated, closed candles with open time in [since_ms, until_ms], in
    increasing order, until the source's current time; the store makes repeated candles harmless.
    """

    #: the exchange part of the candle store key
    exchange: str
    #: True when fetching waits on a network (ingest then fetches in worker threads)
    blocking: bool = False

    @abc.abstractmethod
    def now_ms(self) -> int:
        """The source's current market time (the exchange's clock, the replay or simulation clock)."""

    def wall_seconds_until(self, market_ms: int) -> float:
        """Wall-clock seconds until the market clock reaches `market_ms` (sources at speed > 1 scale this)."""
        return max(0.0, (market_ms - self.now_ms()) / 1000.0)

    @abc.abstractmethod
    def fetch(self, symbol: str, timeframe: str, since_ms: int, until_ms: int | None = None) -> Iterator[Batch]:
        """Closed candles from since_ms up to until_ms (default: the newest closed candle)."""

    def market_notes(self, symbol: str, timeframe: str, after_ts: int, last_ts: int) -> list[str]:
        """What the source knows about the market between two candles, for the log (the simulated
        market names its regime switches, so a demo shows when and why a model loses its edge)."""
        return []

    def close(self) -> None:  # noqa: B027 - an optional hook: a source holding nothing need not override it
        """Release network sessions or files."""
