"""Exponential backoff with jitter for calls to a flaky remote, honouring Retry-After."""

from __future__ import annotations

import email.utils
import logging
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


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


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
