"""The market's time for the processes that do not own the market (inference, the supervisor).

Only ingest's source keeps the clock, but every reader of the store must know "now": a candle that closes
after it is no closed candle, whatever the store holds (one put there by hand or by an older version, dated
2030 or 9999-12-31), and must never be taken for the newest one. An accelerated market (simulated, CSV
replay) runs on a `MarketClock` whose anchor (and origin) ingest keeps in the state directory; a real
exchange's time is ingest's latest reading of the exchange's clock (runtime directory), moved by the
monotonic clock, with the tolerance ingest allows; before ingest's first reading, the wall clock read
once. Either way a wall clock stepped back or forth while the daemon runs moves no process's "now".
"""

from __future__ import annotations

import time
from collections.abc import Callable

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.timeframes import (
    last_closed_open_ms,
)
from autoretrain.daemon.market.ccxt_source import FUTURE_TOLERANCE_MS
from autoretrain.daemon.market.clock import (
    EXCHANGE_CLOCK_FILE,
    MarketClock,
    read_exchange_clock,
    saved_anchor,
    saved_clock,
)
from autoretrain.daemon.market.simulated import clock_origin_ms

ANCHOR_FILE = "market-clock.json"
EXCHANGE_CLOCK_READ_S = 1.0  # how often the exchange's clock reading is looked for again


def market_identity(config: Config) -> dict[str, object] | None:
    """What defines an accelerated market's clock; None for a real exchange (its own clock)."""
    market = config.market
    if market.source == "simulated":
        return {"source": "simulated", "timeframe": market.timeframe, **market.simulated.model_dump()}
    if market.source == "csv":
        return {"source": "csv", "timeframe": market.timeframe, "files": market.csv, **market.replay.model_dump()}
    return None


def simulated_origin_ms(config: Config) -> int:
    """Where the simulated market's clock starts, as `SimulatedSource` starts it."""
    return clock_origin_ms(config.market.simulated, config.market.timeframe)


class MarketTime:
    """`now_ms()` and `closed_until_ms()` of the configured market, read the way ingest keeps them."""

    def __init__(self, config: Config, wall: Callable[[], float] = time.time) -> None:
        self.config = config
        self.wall = wall
        self.real_clocks = wall is time.time  # a test's fake wall clock is also its ticker
        self.identity = market_identity(config)
        self.path = config.state_dir / ANCHOR_FILE
        self._clock: MarketClock | None = None  # kept once found: it only changes with the configuration
        self._exchange_reading: tuple[float, float] | None = None  # (exchange ms, monotonic s), ingest's
        self._exchange_read_due = 0.0
        self._own_reading: tuple[float, float] | None = None  # the wall clock read once, until ingest has one

    def _market_clock(self) -> MarketClock | None:
        if self._clock is not None or self.identity is None:
            return self._clock
        market = self.config.market
        saved = saved_clock(self.path, self.identity)
        origin = saved.get("origin_ms") if saved is not None else None
        if not isinstance(origin, int) and market.source == "simulated":
            origin = simulated_origin_ms(self.config)
        if not isinstance(origin, int):
            return None  # a CSV replay whose ingest has not said where it starts yet
        speed = market.simulated.speed if market.source == "simulated" else market.replay.speed
        if saved is None:  # ingest has not started the clock yet: the market stands at its origin
            return MarketClock(origin_ms=origin, speed=speed, anchor_wall=self.wall(), wall=self.wall)
        anchor = saved_anchor(saved)
        self._clock = MarketClock(origin_ms=origin, speed=speed, anchor_wall=anchor.wall, wall=self.wall,
                                  anchor_monotonic=anchor.monotonic if self.real_clocks else None)
        return self._clock

    def _exchange_ms(self) -> float:
        """A real exchange's time: ingest's newest reading of it, else the wall clock read once; both moved on
        by the monotonic clock (a fake wall clock in a test is read every time)."""
        if not self.real_clocks:
            return self.wall() * 1000
        now = time.monotonic()
        if now >= self._exchange_read_due:
            self._exchange_read_due = now + EXCHANGE_CLOCK_READ_S
            self._exchange_reading = read_exchange_clock(self.config.runtime_dir / EXCHANGE_CLOCK_FILE,
                                                         self.config.market.exchange) or self._exchange_reading
        reading = self._exchange_reading or self._own_reading
        if reading is None:
            reading = self._own_reading = (self.wall() * 1000, now)
        exchange_ms, at = reading
        return exchange_ms + (now - at) * 1000

    def now_ms(self) -> int | None:
        """The market's current time; None when it cannot be known yet (a CSV replay before ingest started)."""
        if self.identity is None:
            return int(self._exchange_ms()) + FUTURE_TOLERANCE_MS
        clock = self._market_clock()
        return clock.now_ms() if clock is not None else None

    def shown_ms(self) -> int | None:
        """The market's time as `status` shows it: a real exchange's without the tolerance of `now_ms`."""
        if self.identity is None:
            return int(self._exchange_ms())
        return self.now_ms()

    def seconds_since(self, market_ms: int) -> float | None:
        """Wall seconds since the market's time passed `market_ms` (a candle's close: the signal's latency);
        None when the market's time cannot be known yet."""
        if self.identity is None:
            return (self._exchange_ms() - market_ms) / 1000.0
        clock = self._market_clock()
        return (clock.now_ms() - market_ms) / 1000.0 / clock.speed if clock is not None else None

    def closed_until_ms(self) -> int | None:
        """Open time of the newest candle closed now: no stored candle after it is a closed one (None: unknown)."""
        now = self.now_ms()
        return last_closed_open_ms(now, self.config.market.timeframe) if now is not None else None
