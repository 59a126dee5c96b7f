"""Candles from any ccxt exchange: paginated, retried, validated, closed candles only.

`market.exchange_params` goes to the ccxt constructor as-is (API keys, `urls`, `options`, `timeout`),
which is also how tests point ccxt at a local fake exchange. Network errors, timeouts, 429 and 5xx,
malformed responses and the exchanges' "system error, try again" answers are retried with exponential
backoff and jitter, waiting at least as long as a rate-limited exchange asks (Retry-After, Bybit's
X-Bapi-Limit-Reset-Timestamp, ...: `market/retry.py`). Candles that open after the exchange's own
time, misaligned, non-finite or inconsistent ones are rejected with the reason, never stored.
An empty page before the exchange's current time is not the end: it is retried, and if the exchange
still returns nothing the range is reported as a hole.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from autoretrain.daemon.foundation import candles as candle_ops
from autoretrain.daemon.foundation.candles import Rejection
from autoretrain.daemon.foundation.errors import ConfigError, SourceUnavailable, UsageError
from autoretrain.daemon.foundation.timeframes import (
    alignment_offset_ms,
    floor_to_timeframe,
    iso,
    last_closed_open_ms,
    timeframe_ms,
)
from autoretrain.daemon.market.base import Batch, CandleSource, Hole
from autoretrain.daemon.market.clock import write_exchange_clock
from autoretrain.daemon.market.retry import Backoff, call_with_retry, parse_retry_after, rate_limit_wait

log = logging.getLogger("autoretrain.ccxt")
#: how far past the exchange's measured time a candle may open before it is taken for one from the future
FUTURE_TOLERANCE_MS = 60_000
#: what exchanges say in a passing failure that ccxt maps to a plain ExchangeError
TRANSIENT_MESSAGE = re.compile(r"system (error|is busy|busy|is abnormal|abnormal|exception)|internal (system )?error|"
                               r"try again|temporar|server (is )?busy|overload|service unavailable|timed? ?out",
                               re.IGNORECASE)


class MalformedResponse(Exception):
    """The exchange answered, but not with what the API promises (bad JSON, wrong shape)."""


def _import_ccxt() -> Any:
    import ccxt  # imported lazily: it is large, and only this source needs it

    return ccxt


class MonotonicThrottle:
    """ccxt's rate limit (`rateLimit` ms per unit of cost between requests), timed by the monotonic clock.

    ccxt's own synchronous `throttle` measures the time since the last request with the wall clock: after
    the wall clock steps back by a day it sleeps for a day before the next request (ingest stalls, no
    candle, no signal). Here the wait is never longer than one request's cost, whatever the wall says."""

    def __init__(self, client: Any, sleep: Callable[[float], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.sleep, self.clock = client, sleep, clock
        self.last: float | None = None

    def __call__(self, cost: float | None = None) -> None:
        interval = float(self.client.rateLimit) * (1.0 if cost is None else float(cost)) / 1000.0
        if self.last is not None:
            wait = interval - (self.clock() - self.last)
            if wait > 0:
                self.sleep(wait)
        self.last = self.clock()


class CcxtSource(CandleSource):
    blocking = True

    def __init__(self, exchange_id: str, params: dict[str, Any] | None = None, *, backoff: Backoff | None = None,
                 page_limit: int = 1000, sleep: Callable[[float], None] = time.sleep,
                 clock_refresh_s: float = 5.0, clock_file: Path | None = None) -> None:
        ccxt = _import_ccxt()
        if exchange_id not in ccxt.exchanges:
            raise ConfigError(f"market.exchange: unknown ccxt exchange {exchange_id!r}", key_path="market.exchange")
        settings: dict[str, Any] = {"enableRateLimit": True, "enableLastResponseHeaders": True,
                                    "enableLastJsonResponse": True}
        settings.update(params or {})
        try:
            self.client = getattr(ccxt, exchange_id)(settings)
        except Exception as exc:  # noqa: BLE001 - ccxt raises many kinds for bad parameters
            raise ConfigError(f"market.exchange_params: rejected by ccxt {exchange_id}: {exc}",
                              key_path="market.exchange_params") from None
        self.client.throttle = MonotonicThrottle(self.client, time.sleep)
        self._ccxt = ccxt
        self.exchange = exchange_id
        self.backoff = backoff or Backoff()
        self.page_limit = page_limit
        self.sleep = sleep
        self._markets_loaded = False
        self.clock_refresh_s = clock_refresh_s
        self._clock_due = 0.0
        # the exchange's time at a monotonic instant: read from the wall clock once, then from fetch_time;
        # between readings the monotonic clock moves it, so a wall clock stepped back or forth changes nothing
        self._reading = (time.time() * 1000, time.monotonic())
        self.clock_file = clock_file  # where ingest shares its readings with the other processes

    # -- calls with retries -------------------------------------------------------------------------

    def _is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, (self._ccxt.OperationFailed, MalformedResponse)) or self._is_transient(exc)

    def _is_transient(self, exc: BaseException) -> bool:
        """A plain ExchangeError that says it is passing ("system error, try again"): ccxt maps many such
        exchange codes (Bybit 10016, Binance -1001, Bitget 40015, ...) to the generic class, not to a
        network error; its subclasses (bad request, bad symbol, credentials) are never retried."""
        return type(exc) is self._ccxt.ExchangeError and TRANSIENT_MESSAGE.search(str(exc)) is not None

    def _exchange_clock_ms(self) -> float:
        """The exchange's time by the last reading, without asking it (reset headers name moments)."""
        exchange_ms, at = self._reading
        return exchange_ms + (time.monotonic() - at) * 1000

    def _retry_after(self, exc: BaseException) -> float | None:
        headers = getattr(self.client, "last_response_headers", None)
        if isinstance(exc, (self._ccxt.DDoSProtection, self._ccxt.RateLimitExceeded)):
            return rate_limit_wait(headers, self._exchange_clock_ms())
        if isinstance(exc, self._ccxt.ExchangeNotAvailable):
            return parse_retry_after(headers)
        return None

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call_with_retry(call, what=f"{self.exchange} {what}", backoff=self.backoff,
                                   is_retryable=self._is_retryable, retry_after=self._retry_after,
                                   sleep=self.sleep)
        except SourceUnavailable:
            raise
        except self._ccxt.BadSymbol as exc:
            raise UsageError(f"{self.exchange}: {exc}") from None
        except self._ccxt.AuthenticationError as exc:
            raise ConfigError(f"market.exchange_params: {self.exchange} refused the credentials: {exc}",
                              key_path="market.exchange_params") from None
        except self._ccxt.BaseError as exc:
            raise SourceUnavailable(f"{self.exchange} {what} failed: {type(exc).__name__}: {exc}") from None


    def _ensure_markets(self, symbol: str, timeframe: str) -> None:
        if not self._markets_loaded:
            self._call("load_markets", self.client.load_markets)
            self._markets_loaded = True
        if symbol not in (self.client.markets or {}):
            raise UsageError(f"{self.exchange} has no market {symbol!r}")
        timeframes = getattr(self.client, "timeframes", None) or {}
        if timeframes and timeframe not in timeframes:
            raise UsageError(f"{self.exchange} has no {timeframe!r} candles (it has {', '.join(timeframes)})")
        if not self.client.has.get("fetchOHLCV"):
            raise UsageError(f"{self.exchange} does not serve candles (no fetchOHLCV in ccxt)")

    def now_ms(self) -> int:
        """The exchange's clock: re-read with fetch_time at most every `clock_refresh_s`, moved by the monotonic
        clock in between. Never raises: when the exchange cannot be asked, the last reading stands."""
        if self.client.has.get("fetchTime") and time.monotonic() >= self._clock_due:
            self._clock_due = time.monotonic() + self.clock_refresh_s
            before = time.monotonic()
            try:
                value = self.client.fetch_time()
            except Exception as exc:  # noqa: BLE001 - any failure: keep the last reading, ask again later
                log.warning("%s fetch_time failed (%s: %s); using the last known clock reading", self.exchange,
                            type(exc).__name__, " ".join(str(exc).split())[:120])
            else:
                if isinstance(value, (int, float)) and value > 0:
                    self._reading = (float(value), (before + time.monotonic()) / 2)
                    self._share_reading()
        return int(self._exchange_clock_ms())

    def _share_reading(self) -> None:
        if self.clock_file is None:
            return
        try:
            write_exchange_clock(self.clock_file, self.exchange, *self._reading)
        except OSError as exc:  # the others fall back to their own clocks: a warning, not ingest's end
            log.warning("could not record %s's clock in %s: %s", self.exchange, self.clock_file, exc)

    def _fetch_page(self, symbol: str, timeframe: str, since_ms: int) -> list[Any]:
        def call() -> list[Any]:
            rows = self.client.fetch_ohlcv(symbol, timeframe, since=since_ms, limit=self.page_limit)
            body = getattr(self.client, "last_http_response", None)
            if isinstance(body, str) and body.strip() and getattr(self.client, "last_json_response", 0) is None:
                raise MalformedResponse(f"response is not JSON: {body.strip()[:60]!r}")
            if not isinstance(rows, list) or any(not isinstance(r, (list, tuple)) or len(r) < 6 for r in rows):
                raise MalformedResponse("response is not a list of [time, open, high, low, close, volume] rows")
            return rows

        return self._call(f"fetch_ohlcv {symbol} {timeframe} since {iso(since_ms)}", call)

    # -- pagination -----------------------------------------------------------------------------------

    def _from_the_future(self, candles: np.ndarray, now_ms: int) -> tuple[np.ndarray, list[Rejection]]:
        """Split off candles that open after the exchange's own time (beyond a minute of clock error): no
        exchange has them, so they are garbage, rejected with the reason rather than silently dropped."""
        late = candles["ts"] > now_ms + FUTURE_TOLERANCE_MS
        reasons = [Rejection(int(i), int(candles["ts"][i]), f"candle from the future: it opens after "
                             f"{self.exchange}'s current time {iso(now_ms)}") for i in np.flatnonzero(late)]
        return candles[~late], reasons

    def fetch(self, symbol: str, timeframe: str, since_ms: int, until_ms: int | None = None) -> Iterator[Batch]:
        step = timeframe_ms(timeframe)
        offset = alignment_offset_ms(timeframe)
        self._ensure_markets(symbol, timeframe)
        now = self.now_ms()
        end = last_closed_open_ms(now, timeframe)
        if until_ms is not None:
            end = min(end, floor_to_timeframe(until_ms, timeframe))
        start = floor_to_timeframe(since_ms + step - 1, timeframe)
        cursor = start
        empty_pages = 0
        pending: dict[tuple[int | None, str], Rejection] = {}  # rejected since the last batch, each once
        while cursor <= end:
            rows = self._fetch_page(symbol, timeframe, cursor)
            parsed, rejected = candle_ops.from_rows(rows)
            parsed, future = self._from_the_future(parsed, self.now_ms())
            # up to the open candle: an open time between the last closed one and it can only be misaligned
            in_range = parsed[(parsed["ts"] >= cursor) & (parsed["ts"] < end + step)]
            valid, invalid = candle_ops.validate(in_range, timeframe, now)
            for rejection in rejected + future + invalid:
                pending.setdefault((rejection.ts, rejection.reason), rejection)
            # only aligned open times move the cursor: a misaligned one is garbage, not a position
            aligned = in_range["ts"][(in_range["ts"] - offset) % step == 0]
            if len(aligned) == 0:
                empty_pages += 1
                if empty_pages < self.backoff.attempts:
                    wait = self.backoff.delay(empty_pages - 1)
                    log.warning("%s returned no candles for %s %s from %s although its time is %s; retry in %.1fs",
                                self.exchange, symbol, timeframe, iso(cursor), iso(now), wait)
                    self.sleep(wait)
                    continue
                hole = Hole(cursor, end, f"{self.exchange} returned no candles after {empty_pages} attempts")
                log.error("hole in %s %s: %s", symbol, timeframe, hole.describe())
                yield Batch(candle_ops.empty(), list(pending.values()), [hole], cursor_ts=end + step, start_ts=start,
                            end_ts=end)
                return
            empty_pages = 0
            valid, conflicts = candle_ops.normalise(valid)
            for conflict in conflicts:
                log.warning("%s sent two different candles for %s %s at %s; keeping the later one",
                            self.exchange, symbol, timeframe, iso(conflict.ts))
            cursor = int(aligned.max()) + step
            yield Batch(valid, list(pending.values()), cursor_ts=cursor, start_ts=start, end_ts=end)
            pending = {}

    def close(self) -> None:
        session = getattr(self.client, "session", None)
        if session is not None and hasattr(session, "close"):
            session.close()
