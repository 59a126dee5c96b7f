"""An exchange that is not Binance: real ccxt (its `bybit` class) against a local server that answers like
Bybit, whose errors come as a `retCode` with HTTP 200 and whose rate limit resets at the moment named in
`X-Bapi-Limit-Reset-Timestamp` rather than after `Retry-After`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.errors import SourceUnavailable
from autoretrain.daemon.foundation.timeframes import HOUR_MS
from autoretrain.daemon.market.backfill import backfill
from autoretrain.daemon.market.ccxt_source import CcxtSource
from autoretrain.daemon.market.retry import Backoff, rate_limit_wait
from autoretrain.daemon.store.database import Database
from tests.support.cli import run_ctl
from tests.support.fake_bybit import RATE_LIMITED, SYSTEM_ERROR, FakeBybit, code_fault

DAY_MS = 24 * HOUR_MS
START = 1_747_000_000_000 // HOUR_MS * HOUR_MS + 25 * 60_000


def running_clock() -> Callable[[], int]:
    """The exchange's clock running in real time from START (so a reset moment is a real delay ahead)."""
    began = time.time()
    return lambda: START + int((time.time() - began) * 1000)


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_bybit_system_errors_are_retried_and_its_rate_limit_reset_is_honoured(tmp_path: Path) -> None:
    faults = {2: code_fault(SYSTEM_ERROR), 3: code_fault(RATE_LIMITED, reset_in_s=2.0), 5: code_fault(SYSTEM_ERROR)}
    sleep = RecordingSleep()
    with FakeBybit(now_ms=running_clock(), history_start_ms=START - 30 * DAY_MS, faults=faults) as fake, \
            Database(tmp_path / "db.sqlite") as db:
        source = CcxtSource("bybit", fake.exchange_params(), backoff=Backoff(6, 0.01, 0.05), page_limit=200,
                            sleep=sleep)
        since = START - 20 * DAY_MS
        report = backfill(source, db.candles, "BTC/USDT", "1h", since)
        stored = db.candles.window("bybit", "BTC/USDT", "1h")
        newest_closed = fake.clock() // HOUR_MS * HOUR_MS - HOUR_MS

    assert fake.faults_served == ["retCode 10016", "retCode 10006", "retCode 10016"]
    assert report.complete and not report.rejected
    assert list(stored["ts"]) == fake.expected_open_times("1h", since, newest_closed)  # each candle once, in order
    assert len(sleep.waits) == 3
    rate_limited = sorted(sleep.waits)[-1]
    assert 1.8 <= rate_limited <= 2.0  # until the reset Bybit named, on its own clock, not the 0.05 s backoff
    assert all(wait <= 0.05 for wait in sorted(sleep.waits)[:-1])


def test_a_system_error_that_persists_gives_up_after_every_attempt() -> None:
    faults = {n: code_fault(SYSTEM_ERROR) for n in range(1, 20)}
    sleep = RecordingSleep()
    with FakeBybit(now_ms=START, history_start_ms=START - 5 * DAY_MS, faults=faults) as fake:
        source = CcxtSource("bybit", fake.exchange_params(), backoff=Backoff(3, 0.01, 0.02), sleep=sleep)
        with pytest.raises(SourceUnavailable, match="failed after 3 attempts: ExchangeError: .*System error"):
            list(source.fetch("BTC/USDT", "1h", START - DAY_MS))
    assert len(sleep.waits) == 2


def test_an_error_that_is_no_passing_one_is_not_retried() -> None:
    faults = {1: code_fault((10001, "params error: interval invalid"))}
    sleep = RecordingSleep()
    with FakeBybit(now_ms=START, history_start_ms=START - 5 * DAY_MS, faults=faults) as fake:
        source = CcxtSource("bybit", fake.exchange_params(), backoff=Backoff(3, 0.01, 0.02), sleep=sleep)
        with pytest.raises(SourceUnavailable, match="BadRequest"):
            list(source.fetch("BTC/USDT", "1h", START - DAY_MS))
    assert sleep.waits == [] and fake.klines_requests == 1


NOW_MS = 1_700_000_000_000.0


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"Retry-After": "3"}, 3.0),  # Binance and most: delta-seconds
    ({"retry-after": "Tue, 14 Nov 2023 22:13:30 GMT"}, 10.0),  # or an HTTP date
    ({"X-Bapi-Limit-Reset-Timestamp": str(int(NOW_MS) + 2500)}, 2.5),  # Bybit: epoch ms
    ({"X-Bapi-Limit-Reset-Timestamp": str(int(NOW_MS) - 10)}, 0.0),  # Bybit, not limited: "now", no wait
    ({"gw-ratelimit-reset": "1489"}, 1.489),  # KuCoin: ms to go
    ({"X-RateLimit-Reset": "7"}, 7.0),  # generic: seconds to go
    ({"X-RateLimit-Reset": str(int(NOW_MS / 1000) + 4)}, 4.0),  # generic: epoch seconds
    ({"RateLimit-Reset": "12"}, 12.0),  # the IETF draft
    ({"Retry-After": "1", "X-Bapi-Limit-Reset-Timestamp": str(int(NOW_MS) + 9000)}, 1.0),  # Retry-After first
    ({"X-RateLimit-Reset": "nan"}, None), ({"Retry-After": "soon"}, None), ({}, None), (None, None),
])
def test_each_exchange_reset_header_gives_the_wait(headers: dict[str, str] | None, seconds: float | None) -> None:
    wait = rate_limit_wait(headers, NOW_MS)
    assert wait == (pytest.approx(seconds) if seconds is not None else None)


def test_download_command_from_bybit_through_its_system_errors(write_config: Callable[..., Path]) -> None:
    faults = {1: code_fault(SYSTEM_ERROR), 3: code_fault(SYSTEM_ERROR)}
    with FakeBybit(now_ms=START, history_start_ms=START - 30 * DAY_MS, faults=faults) as fake:
        config = write_config({"market": {"source": "ccxt", "exchange": "bybit", "page_limit": 200,
                                          "exchange_params": fake.exchange_params(timeout_ms=1000),
                                          "retry": {"attempts": 4, "base_delay": 0.01, "max_delay": 0.02}}})
        result = run_ctl("--config", str(config), "download", "BTC/USDT", "--days", "10", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["complete"] is True and report["inserted"] == 10 * 24 - 1 and report["exchange"] == "bybit"
    assert fake.faults_served == ["retCode 10016", "retCode 10016"]
    assert "retry 1/3" in result.stderr and "System error" in result.stderr  # the retries are logged
