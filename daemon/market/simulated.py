"""The embedded simulated market: deterministic candles with regimes a model can learn, then lose.

Generating process, per (seed, symbol, timeframe), for candle index i (open time start + i * step):

* The regime schedule (`market.simulated.regimes`) is cycled: each entry lasts `candles` candles.
  A regime has an autocorrelation `phi`: `momentum` -> +strength, `mean_reversion` -> -strength,
  `random_walk` -> 0, and a volatility sigma (the regime's own or `simulated.volatility`).
* Log-returns follow an AR(1) process whose innovation is scaled to keep the variance at sigma²:
      r_i = phi * r_{i-1} + sigma * sqrt(1 - phi²) * e_i  -  kappa * (log p_{i-1} - log p_0)
  with e_i ~ N(0, 1) and a weak pull (kappa = 0.001) back to the start price so prices stay plausible
  over years of candles. With |phi| = 0.5 the sign of the next return equals (momentum) or opposes
  (mean reversion) the sign of the last one with probability 1/2 + asin(0.5)/pi = 0.67, so a model
  fitted inside one regime reaches about 65 % direction accuracy there and about 35 % after a switch.
* open_i = close_{i-1}; close_i = open_i * exp(r_i); high and low extend the body by
  |N(0, sigma/2)| relative moves; volume = 100 * exp(0.3 * N(0, 1)) * (1 + 50 * |r_i|).

The random numbers for each block of 4096 candles come from `numpy.random.default_rng` seeded with
(seed, symbol, timeframe, block), so any range can be regenerated identically, in any process.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from autoretrain.daemon.foundation.config_schema import SimulatedConfig
from autoretrain.daemon.foundation.timeframes import (
    floor_to_timeframe,
    iso,
    last_closed_open_ms,
    parse_iso_ms,
    timeframe_ms,
)
from autoretrain.daemon.market.base import Batch, CandleSource
from autoretrain.daemon.market.clock import ClockAnchor, MarketClock
from autoretrain.ipc.candles import CANDLE_DTYPE

BLOCK = 4096
KAPPA = 0.001
BATCH = 5000
MAX_NOTED_CANDLES = 10_000


@dataclass(frozen=True)
class Regime:
    kind: str
    candles: int
    phi: float
    sigma: float


def regimes_from_config(config: SimulatedConfig) -> list[Regime]:
    signs = {"momentum": 1.0, "mean_reversion": -1.0, "random_walk": 0.0}
    return [Regime(r.kind, r.candles, signs[r.kind] * r.strength, r.volatility or config.volatility)
            for r in config.regimes]


class SimulatedSeries:
    """One symbol/timeframe of the simulated market, generated lazily and cached."""

    def __init__(self, seed: int, symbol: str, timeframe: str, start_ms: int, start_price: float,
                 regimes: Sequence[Regime]) -> None:
        self.seed = seed
        self.key = zlib.crc32(f"{symbol}|{timeframe}".encode())
        self.step = timeframe_ms(timeframe)
        self.start_ms = floor_to_timeframe(start_ms, timeframe)
        self.start_price = start_price
        self.regimes = list(regimes)
        self.cycle = sum(r.candles for r in self.regimes)
        self._returns = np.empty(0)
        self._closes = np.empty(0)
        self._extras = np.empty((0, 3))

    def regime_at(self, index: int) -> tuple[int, Regime]:
        """(position in the schedule, regime) of candle `index`."""
        offset = index % self.cycle
        for position, regime in enumerate(self.regimes):
            if offset < regime.candles:
                return position, regime
            offset -= regime.candles
        raise AssertionError("unreachable")

    def regime_boundaries(self, count: int) -> list[tuple[int, Regime]]:
        """Index at which each regime starts, for the first `count` candles."""
        out, index = [], 0
        while index < count:
            for regime in self.regimes:
                if index >= count:
                    break
                out.append((index, regime))
                index += regime.candles
        return out

    def _generate_block(self, block: int) -> None:
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.key, block])
        noise = rng.standard_normal((BLOCK, 4))
        base = block * BLOCK
        returns = np.empty(BLOCK)
        closes = np.empty(BLOCK)
        prev_r = float(self._returns[-1]) if len(self._returns) else 0.0
        log_p = float(np.log(self._closes[-1])) if len(self._closes) else float(np.log(self.start_price))
        log_p0 = float(np.log(self.start_price))
        phis = np.empty(BLOCK)
        sigmas = np.empty(BLOCK)
        for i in range(BLOCK):
            _, regime = self.regime_at(base + i)
            phis[i], sigmas[i] = regime.phi, regime.sigma
        scale = sigmas * np.sqrt(1.0 - phis**2)
        for i in range(BLOCK):
            r = phis[i] * prev_r + scale[i] * noise[i, 0] - KAPPA * (log_p - log_p0)
            log_p += r
            returns[i] = r
            closes[i] = log_p
            prev_r = r
        extras = np.column_stack([np.abs(noise[:, 1]) * sigmas / 2, np.abs(noise[:, 2]) * sigmas / 2, noise[:, 3]])
        self._returns = np.concatenate([self._returns, returns])
        self._closes = np.concatenate([self._closes, np.exp(closes)])
        self._extras = np.concatenate([self._extras, extras])

    def candles(self, first: int, last: int) -> np.ndarray:
        """Candles with index first..last inclusive."""
        first = max(first, 0)
        if last < first:
            return np.empty(0, dtype=CANDLE_DTYPE)
        while len(self._closes) <= last:
            self._generate_block(len(self._closes) // BLOCK)
        index = np.arange(first, last + 1)
        close = self._closes[index]
        open_ = np.where(index > 0, self._closes[np.maximum(index - 1, 0)], self.start_price)
        up, down, vol_noise = self._extras[index, 0], self._extras[index, 1], self._extras[index, 2]
        out = np.empty(len(index), dtype=CANDLE_DTYPE)
        out["ts"] = self.start_ms + index * self.step
        out["open"] = open_
        out["close"] = close
        out["high"] = np.maximum(open_, close) * np.exp(up)
        out["low"] = np.minimum(open_, close) * np.exp(-down)
        out["volume"] = 100.0 * np.exp(0.3 * vol_noise) * (1.0 + 50.0 * np.abs(self._returns[index]))
        return out

    def index_of(self, ts_ms: int) -> int:
        return (ts_ms - self.start_ms) // self.step

    def switches(self, first: int, last: int) -> list[tuple[int, Regime, Regime]]:
        """(index, previous regime, new regime) for each regime switch at candles first..last."""
        out = []
        for index in range(max(first, 1), last + 1):
            (before, old), (after, new) = self.regime_at(index - 1), self.regime_at(index)
            if before != after:
                out.append((index, old, new))
        return out


def clock_origin_ms(config: SimulatedConfig, timeframe: str) -> int:
    """Market time at which the simulated clock starts: just after its history candles."""
    return floor_to_timeframe(parse_iso_ms(config.start), timeframe) + config.history_candles * timeframe_ms(timeframe)


class SimulatedSource(CandleSource):
    """The simulated market as a source: history before the clock's origin, then live candles."""

    exchange = "simulated"

    def __init__(self, config: SimulatedConfig, timeframe: str, *, anchor: ClockAnchor | None = None,
                 clock: MarketClock | None = None) -> None:
        self.config = config
        self.start_ms = parse_iso_ms(config.start)
        self.regimes = regimes_from_config(config)
        self.clock = clock or MarketClock(origin_ms=clock_origin_ms(config, timeframe), speed=config.speed,
                                          anchor_wall=anchor.wall if anchor else None,
                                          anchor_monotonic=anchor.monotonic if anchor else None)
        self._series: dict[tuple[str, str], SimulatedSeries] = {}

    def series(self, symbol: str, timeframe: str) -> SimulatedSeries:
        key = (symbol, timeframe)
        if key not in self._series:
            price = self.config.start_price * (1.0 + (zlib.crc32(symbol.encode()) % 1000) / 1000.0)
            self._series[key] = SimulatedSeries(self.config.seed, symbol, timeframe, self.start_ms, price, self.regimes)
        return self._series[key]

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def wall_seconds_until(self, market_ms: int) -> float:
        return self.clock.wall_seconds_until(market_ms)

    def market_notes(self, symbol: str, timeframe: str, after_ts: int, last_ts: int) -> list[str]:
        series = self.series(symbol, timeframe)
        first, last = series.index_of(after_ts) + 1, series.index_of(last_ts)
        if last - first > MAX_NOTED_CANDLES:  # a backfill, not a live step: nothing to announce
            return []
        return [f"simulated market: {symbol} {timeframe} switches from {old.kind} to {new.kind} "
                f"(autocorrelation {new.phi:+.2f}, volatility {new.sigma:.4f}) "
                f"at candle {iso(series.start_ms + index * series.step)}"
                for index, old, new in series.switches(first, last)]

    def fetch(self, symbol: str, timeframe: str, since_ms: int, until_ms: int | None = None) -> Iterator[Batch]:
        series = self.series(symbol, timeframe)
        end = last_closed_open_ms(self.now_ms(), timeframe)
        if until_ms is not None:
            end = min(end, floor_to_timeframe(until_ms, timeframe))
        first = max(0, -(-(since_ms - series.start_ms) // series.step))
        last = series.index_of(end)
        if last < first:
            return
        start_ts = series.start_ms + first * series.step
        for chunk_first in range(first, last + 1, BATCH):
            chunk_last = min(last, chunk_first + BATCH - 1)
            yield Batch(series.candles(chunk_first, chunk_last), cursor_ts=series.start_ms + (chunk_last + 1) * series.step,
                        start_ts=start_ts, end_ts=end)
