"""Exponential backoff with jitter for calls to a flaky remote, honouring the waits the remote asks for.

A rate-limited exchange says how long to wait in a header, and not every exchange says it the same
way: `Retry-After` (HTTP: seconds or a date; Binance and most), `X-Bapi-Limit-Reset-Timestamp`
(Bybit: epoch ms on the exchange's clock), `gw-ratelimit-reset` (KuCoin: ms to go) and the generic
`RateLimit-Reset` / `X-RateLimit-Reset` (seconds to go, or an epoch time). `rate_limit_wait` reads
whichever is there, in that order.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from autoretrain.daemon.foundation.errors import SourceUnavailable

T = TypeVar("T")
log = logging.getLogger("autoretrain.retry")
MAX_RETRY_AFTER_S = 300.0


@dataclass
class Backoff:
    """`attempts` tries in all; the n-th wait is a random value in [d/2, d] with d = base * 2**n, capped."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2 ** attempt))
        wait = self.rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, MAX_RETRY_AFTER_S))
        return wait


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value whatever its case (ccxt keeps the server's spelling), stripped; None if absent."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    return None if value is None else str(value).strip()


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    value = _header(headers, "retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


#: a value above this is an epoch time in ms, above _EPOCH_S one in seconds; below, a number of seconds to go
_EPOCH_MS = 1e12
_EPOCH_S = 1e9


def _reset_in(value: float, now_ms: float) -> float:
    """Seconds to go for a generic reset value: an epoch time in ms or s, or seconds to go."""
    if value >= _EPOCH_MS:
        return (value - now_ms) / 1000.0
    if value >= _EPOCH_S:
        return value - now_ms / 1000.0
    return value


def rate_limit_wait(headers: Mapping[str, str] | None, now_ms: float | None = None) -> float | None:
    """Seconds a rate-limited remote asks us to wait, from whichever reset header it sent, or None.

    `now_ms` is the remote's clock (epoch ms) for the headers that name a moment rather than a delay."""
    now = time.time() * 1000.0 if now_ms is None else now_ms
    retry_after = parse_retry_after(headers, now / 1000.0)
    if retry_after is not None:
        return retry_after
    readings = (("x-bapi-limit-reset-timestamp", lambda v: (v - now) / 1000.0),  # Bybit: epoch ms
                ("gw-ratelimit-reset", lambda v: v / 1000.0),  # KuCoin: ms to go
                ("ratelimit-reset", lambda v: _reset_in(v, now)),
                ("x-ratelimit-reset", lambda v: _reset_in(v, now)))
    for name, seconds in readings:
        text = _header(headers, name)
        value = _number(text) if text is not None else None
        if value is not None:
            return max(0.0, seconds(value))
    return None


def call_with_retry(
    call: Callable[[], T],
    *,
    what: str,
    backoff: Backoff,
    is_retryable: Callable[[BaseException], bool],
    retry_after: Callable[[BaseException], float | None] = lambda exc: None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `call`; retry what `is_retryable` accepts; after the last attempt raise SourceUnavailable."""
    for attempt in range(backoff.attempts):
        try:
            return call()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            if attempt == backoff.attempts - 1:
                raise SourceUnavailable(
                    f"{what} failed after {backoff.attempts} attempts: {type(exc).__name__}: {_short(exc)}"
                ) from exc
            wait = backoff.delay(attempt, retry_after(exc))
            log.warning("%s failed (%s: %s); retry %d/%d in %.1fs", what, type(exc).__name__, _short(exc),
                        attempt + 1, backoff.attempts - 1, wait)
            sleep(wait)
    raise AssertionError("unreachable")


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
