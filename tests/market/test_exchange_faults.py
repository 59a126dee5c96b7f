"""Faults of a live exchange as the ingest loop meets them: the real ingest body, real ccxt, the local fake
Binance with a market clock the test moves, a real store and real rings.

An outage of several candles is retried with backoff and, once the exchange answers, the hole is filled
with no gap; garbage (malformed JSON, NaN and negative prices, a candle from the future, an open time
off the grid) is rejected with the reason in the log, never stored, and the loop goes on with the next
good candle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.foundation.timeframes import HOUR_MS
from autoretrain.daemon.processes.child import Child
from autoretrain.daemon.processes.ingest import Ingest
from autoretrain.ipc.ring import CandleRing, ring_path
from tests.support.fake_exchange import FUTURE_TWIN_MS, FakeBinance, Fault

DAY_MS = 24 * HOUR_MS
START = 1_747_000_000_000 // HOUR_MS * HOUR_MS + 25 * 60_000  # 25 minutes into an hour
FIRST_LIVE = START // HOUR_MS * HOUR_MS  # the hour that is open at START: the first candle followed live


class MarketClock:
    """The fake exchange's clock, moved by the test: `advance(hours)` closes that many more candles."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, hours: int) -> None:
        self.now_ms += hours * HOUR_MS


@pytest.fixture
def clock() -> MarketClock:
    return MarketClock(START)


@pytest.fixture
def ingest_on(tmp_path: Path) -> Iterator[Callable[[FakeBinance], Ingest]]:
    """The ingest body on a fake exchange, in-process (rings created as the supervisor would)."""
    made: list[Ingest] = []

    def make(fake: FakeBinance) -> Ingest:
        config = build_config({
            "paths": {"state_dir": str(tmp_path / "state")},
            "market": {"source": "ccxt", "exchange": "binance", "symbols": ["BTC/USDT"], "timeframe": "1h",
                       "backfill_days": 2, "poll_interval": 0.05,
                       "exchange_params": fake.exchange_params(timeout_ms=1000),
                       "retry": {"attempts": 3, "base_delay": 0.01, "max_delay": 0.02}},
        }, env={})
        config.runtime_dir.mkdir(parents=True, exist_ok=True)
        CandleRing.create(ring_path(config.runtime_dir, "BTC/USDT", "1h"), config.ingest.ring_capacity).close()
        ingest = Ingest(Child("ingest", config))
        made.append(ingest)
        return ingest

    yield make
    for ingest in made:
        ingest.close()


def stored(ingest: Ingest) -> np.ndarray:
    return ingest.candles.window("binance", "BTC/USDT", "1h")


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def poll_until(ingest: Ingest, newest_ts: int, timeout: float = 20.0) -> None:
    """Run the ingest loop (poll, wait) until the candle at `newest_ts` is stored."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not ingest.poll_once():
            time.sleep(0.02)
        if ingest.feeds["BTC/USDT"].last_ts == newest_ts:
            return
    raise AssertionError(f"the candle at {newest_ts} was not stored within {timeout} s "
                         f"(newest stored: {ingest.feeds['BTC/USDT'].last_ts})")


def test_an_outage_is_retried_with_backoff_and_its_hole_filled_without_a_gap(
        clock: MarketClock, ingest_on: Callable[[FakeBinance], Ingest], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with FakeBinance(now_ms=clock, history_start_ms=START - 30 * DAY_MS) as fake:
        ingest = ingest_on(fake)
        ingest.backfill_all()
        backfilled = stored(ingest)
        assert int(backfilled["ts"][-1]) == FIRST_LIVE - HOUR_MS

        clock.advance(6)  # six candles close, the source reads the exchange's time once more ...
        wait_until(lambda: ingest.source.now_ms() >= clock() - 1000)
        fake.down = True  # ... and the exchange goes away
        wait_until(lambda: ingest.poll_once() >= 0 and len(
            [r for r in fake.requests if r.fault == "down" and r.path.endswith("/klines")]) >= 6)
        assert len(stored(ingest)) == len(backfilled)  # nothing new while it is down, nothing made up

        fake.down = False  # back: the loop catches up on its own
        poll_until(ingest, FIRST_LIVE + 5 * HOUR_MS)
        candles = stored(ingest)
        head, _ = ingest.feeds["BTC/USDT"].ring.state()
        ring = ingest.feeds["BTC/USDT"].ring.read_latest(7)

    expected = fake.expected_open_times("1h", int(backfilled["ts"][0]), FIRST_LIVE + 5 * HOUR_MS)
    assert list(candles["ts"]) == expected  # every candle once, in order: the outage left no gap
    assert ingest.candles.gaps("binance", "BTC/USDT", "1h") == []
    assert list(ring["ts"]) == expected[-7:]  # the ring holds the caught-up candles too
    retries = [r.getMessage() for r in caplog.records if r.name == "autoretrain.retry"]
    assert any("ExchangeNotAvailable" in line and "retry 1/2" in line for line in retries)  # backoff inside a fetch
    failures = [r.getMessage() for r in caplog.records if r.name == "autoretrain.ingest"]
    assert any("fetching BTC/USDT failed" in line and "retrying in" in line for line in failures)  # and between polls
    assert head > 0


def test_garbage_from_the_exchange_is_rejected_with_the_reason_and_the_loop_goes_on(
        clock: MarketClock, ingest_on: Callable[[FakeBinance], Ingest], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    nan_at, negative_at, future_at, misaligned_at, good_at = (FIRST_LIVE + h * HOUR_MS for h in range(5))
    corrupt = {nan_at: "nan", negative_at: "negative", future_at: "future", misaligned_at: "misaligned"}
    with FakeBinance(now_ms=clock, history_start_ms=START - 30 * DAY_MS, corrupt=corrupt) as fake:
        ingest = ingest_on(fake)
        ingest.backfill_all()
        before = len(stored(ingest))
        fake.faults = {fake.klines_requests + 1: Fault("malformed"), fake.klines_requests + 2: Fault("malformed")}
        clock.advance(5)  # the five corrupt and good candles close
        poll_until(ingest, good_at)
        clock.advance(1)  # and the loop is still following: the next candle comes in as any other
        poll_until(ingest, good_at + HOUR_MS)
        candles = stored(ingest)

    new = [int(t) for t in candles["ts"][before:]]
    assert new == [future_at, good_at, good_at + HOUR_MS]  # the good ones, the future twin of one not at all
    assert int(candles["ts"].max()) == good_at + HOUR_MS
    assert not np.isin(candles["ts"], [nan_at, negative_at, misaligned_at, misaligned_at + 1000,
                                       future_at + FUTURE_TWIN_MS]).any()
    assert {"malformed"} <= set(fake.faults_served)
    log = "\n".join(r.getMessage() for r in caplog.records)
    assert "response is not JSON" in log  # retried, then the page came
    for reason in ("non-finite value (NaN or infinity)", "price not positive", "candle from the future",
                   "open time not aligned to 1h"):
        assert any("rejected BTC/USDT 1h candle" in r.getMessage() and reason in r.getMessage()
                   for r in caplog.records if r.name == "autoretrain.ingest"), reason
