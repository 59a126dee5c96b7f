"""Real ccxt against a local server that answers like Binance, with faults injected."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autoretrain.daemon.foundation.errors import ConfigError, SourceUnavailable, UsageError
from autoretrain.daemon.foundation.timeframes import HOUR_MS
from autoretrain.daemon.market.backfill import backfill
from autoretrain.daemon.market.ccxt_source import CcxtSource, MonotonicThrottle
from autoretrain.daemon.market.retry import Backoff, parse_retry_after
from autoretrain.daemon.store.database import Database
from tests.support.cli import run_ctl
from tests.support.fake_exchange import FakeBinance, Fault

DAY_MS = 24 * HOUR_MS
# The fake exchange's clock: 25 minutes into an hour, so the newest hourly candle is still open.
NOW = 1_747_000_000_000 // HOUR_MS * HOUR_MS + 25 * 60_000
NEWEST_CLOSED = NOW // HOUR_MS * HOUR_MS - HOUR_MS
NAN_AT = NEWEST_CLOSED - 100 * HOUR_MS
NEGATIVE_AT = NEWEST_CLOSED - 2000 * HOUR_MS


def faulty_exchange() -> FakeBinance:
    return FakeBinance(
        now_ms=NOW,
        history_start_ms=NOW - 400 * DAY_MS,
        faults={
            2: Fault("status", status=429, retry_after=0.3),
            3: Fault("status", status=502),
            4: Fault("malformed"),
            5: Fault("stall", stall_s=2.0),
            7: Fault("empty"),
            8: Fault("status", status=503),
        },
        corrupt={NAN_AT: "nan", NEGATIVE_AT: "negative"},
        duplicate_and_shuffle=True,
    )


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_download_180_days_through_faults_stores_each_valid_candle_once(tmp_path: Path) -> None:
    sleep = RecordingSleep()
    with faulty_exchange() as fake, Database(tmp_path / "db.sqlite") as db:
        source = CcxtSource("binance", fake.exchange_params(timeout_ms=1000), backoff=Backoff(6, 0.01, 0.05),
                            sleep=sleep)
        since = NOW - 180 * DAY_MS
        report = backfill(source, db.candles, "BTC/USDT", "1h", since)
        stored = db.candles.window("binance", "BTC/USDT", "1h")
        faults_seen = set(fake.faults_served)

    expected = [t for t in fake.expected_open_times("1h", since, NEWEST_CLOSED) if t not in (NAN_AT, NEGATIVE_AT)]
    assert faults_seen >= {"status 429", "status 502", "malformed", "stall", "empty", "status 503"}
    assert list(stored["ts"]) == expected  # every valid candle, once, in order, nothing after the last closed one
    assert len(expected) == 180 * 24 - 1 - 2  # the newest hour is still open
    assert report.complete and report.inserted == len(expected)
    assert sorted((r.ts, r.reason) for r in report.rejected) == [
        (NEGATIVE_AT, "price not positive"), (NAN_AT, "non-finite value (NaN or infinity)")]
    assert max(sleep.waits) >= 0.3  # Retry-After honoured
    candle = fake.candle_at("BTCUSDT", "1h", expected[10])
    row = stored[10]
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == tuple(float(v) for v in candle[1:6])


def test_a_second_download_changes_nothing(tmp_path: Path) -> None:
    with FakeBinance(now_ms=NOW, history_start_ms=NOW - 30 * DAY_MS) as fake, \
            Database(tmp_path / "db.sqlite") as db:
        source = CcxtSource("binance", fake.exchange_params(), backoff=Backoff(3, 0.01, 0.02))
        first = backfill(source, db.candles, "BTC/USDT", "1h", NOW - 20 * DAY_MS)
        second = backfill(source, db.candles, "BTC/USDT", "1h", NOW - 20 * DAY_MS)
    assert first.inserted == 20 * 24 - 1 and second.inserted == 0 and second.unchanged == 20 * 24 - 1


def test_empty_pages_before_the_exchange_time_are_retried_then_reported_as_a_hole(tmp_path: Path) -> None:
    faults = {n: Fault("empty") for n in range(2, 50)}
    sleep = RecordingSleep()
    with FakeBinance(now_ms=NOW, history_start_ms=NOW - 30 * DAY_MS, faults=faults) as fake, \
            Database(tmp_path / "db.sqlite") as db:
        source = CcxtSource("binance", {**fake.exchange_params(), "options": {"fetchMarkets": {"types": ["spot"]}}},
                            backoff=Backoff(4, 0.01, 0.02), page_limit=100, sleep=sleep)
        report = backfill(source, db.candles, "BTC/USDT", "1h", NOW - 20 * DAY_MS)
    assert report.inserted == 100  # the first page arrived
    assert len(report.holes) == 1 and not report.complete
    hole = report.holes[0]
    assert hole.start_ts == NOW // HOUR_MS * HOUR_MS - 20 * DAY_MS + 101 * HOUR_MS
    assert hole.end_ts == NEWEST_CLOSED
    assert "no candles after 4 attempts" in hole.reason
    assert len(sleep.waits) == 3


def test_missing_candles_on_the_exchange_are_skipped_not_retried_forever(tmp_path: Path) -> None:
    outage = {NEWEST_CLOSED - h * HOUR_MS for h in range(50, 83)}
    with FakeBinance(now_ms=NOW, history_start_ms=NOW - 30 * DAY_MS, missing=outage) as fake, \
            Database(tmp_path / "db.sqlite") as db:
        source = CcxtSource("binance", fake.exchange_params(), backoff=Backoff(3, 0.01, 0.02), page_limit=200)
        report = backfill(source, db.candles, "BTC/USDT", "1h", NOW - 10 * DAY_MS)
        gaps = db.candles.gaps("binance", "BTC/USDT", "1h")
    assert report.complete and report.inserted == 10 * 24 - 1 - 33
    assert [(g.missing, g.after_ts) for g in gaps] == [(33, NEWEST_CLOSED - 83 * HOUR_MS)]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_exchange_gives_up_with_source_unavailable() -> None:
    port = _closed_port()
    params = {"urls": {"api": {"public": f"http://127.0.0.1:{port}/api/v3"}},
              "options": {"fetchMarkets": {"types": ["spot"]}}, "timeout": 500}
    sleep = RecordingSleep()
    source = CcxtSource("binance", params, backoff=Backoff(3, 0.01, 0.02), sleep=sleep)
    with pytest.raises(SourceUnavailable, match="binance load_markets failed after 3 attempts: NetworkError"):
        list(source.fetch("BTC/USDT", "1h", NOW - DAY_MS))
    assert len(sleep.waits) == 2


def test_unknown_exchange_symbol_and_timeframe_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown ccxt exchange 'nosuchexchange'"):
        CcxtSource("nosuchexchange", {})
    with FakeBinance(now_ms=NOW, history_start_ms=NOW - DAY_MS) as fake:
        source = CcxtSource("binance", fake.exchange_params(), backoff=Backoff(2, 0.01, 0.02))
        with pytest.raises(UsageError, match="binance has no market 'DOGE/EUR'"):
            list(source.fetch("DOGE/EUR", "1h", NOW - DAY_MS))
        with pytest.raises(UsageError, match="binance has no '7h' candles"):
            list(source.fetch("BTC/USDT", "7h", NOW - DAY_MS))


@pytest.mark.parametrize(("value", "seconds"), [("3", 3.0), ("0.5", 0.5), ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
                                                ("soon", None)])
def test_retry_after_header_forms(value: str, seconds: float | None) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 GMT
    assert parse_retry_after({"retry-after": value}, now=now) == seconds


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    backoff = Backoff(attempts=8, base_delay=1.0, max_delay=10.0)
    waits = [backoff.delay(n) for n in range(6)]
    for n, wait in enumerate(waits):
        ceiling = min(10.0, 2.0 ** n)
        assert ceiling / 2 <= wait <= ceiling
    assert backoff.delay(0, retry_after=7.0) == 7.0


# -- the command line, as an operator runs it ---------------------------------------------------------


@pytest.fixture
def exchange_config(write_config: Callable[..., Path]) -> Callable[..., Path]:
    def make(fake: FakeBinance, **market: object) -> Path:
        return write_config({"market": {"source": "ccxt", "exchange": "binance",
                                        "exchange_params": fake.exchange_params(timeout_ms=1000),
                                        "retry": {"attempts": 6, "base_delay": 0.01, "max_delay": 0.05},
                                        **market}})

    return make


def test_download_command_reports_rejections_and_is_quiet_without_a_tty(exchange_config) -> None:
    with faulty_exchange() as fake:
        config = exchange_config(fake)
        text = run_ctl("--config", str(config), "download", "BTC/USDT", "--timeframe", "1h", "--days", "180")
        again = run_ctl("--config", str(config), "download", "BTC/USDT", "--days", "180", "--json")
        summary = run_ctl("--config", str(config), "candles", "BTC/USDT", "--json")
    assert text.returncode == 0, text.stderr
    assert "4317 candles fetched (4317 new" in text.stdout
    assert "rejected 2 invalid candles" in text.stdout and "price not positive" in text.stdout
    assert "\r" not in text.stderr and "candle/s" not in text.stderr  # no progress bar when not on a TTY
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["inserted"] == 0 and report["complete"] is True and len(report["rejected"]) == 2
    counts = json.loads(summary.stdout)
    assert counts["count"] == 4317 and counts["gaps"] == 2 and counts["missing"] == 2


def test_download_command_exits_69_when_the_exchange_is_unreachable(write_config) -> None:
    config = write_config({"market": {"exchange_params": {
        "urls": {"api": {"public": f"http://127.0.0.1:{_closed_port()}/api/v3"}},
        "options": {"fetchMarkets": {"types": ["spot"]}}, "timeout": 300},
        "retry": {"attempts": 2, "base_delay": 0.01, "max_delay": 0.02}}})
    result = run_ctl("--config", str(config), "download", "BTC/USDT", "--days", "1")
    assert result.returncode == 69
    error_lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1 and "failed after 2 attempts" in error_lines[0]
    assert "Traceback" not in result.stderr


def test_download_command_with_a_hole_exits_non_zero(exchange_config) -> None:
    faults = {n: Fault("empty") for n in range(2, 50)}
    with FakeBinance(now_ms=NOW, history_start_ms=NOW - 30 * DAY_MS, faults=faults) as fake:
        result = run_ctl("--config", str(exchange_config(fake, page_limit=100)), "download", "BTC/USDT", "--since",
                         "2025-04-20", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["complete"] is False
    assert "download incomplete: 1 hole(s)" in result.stderr


def test_download_command_rejects_an_unknown_market(exchange_config) -> None:
    with FakeBinance(now_ms=NOW, history_start_ms=NOW - DAY_MS) as fake:
        result = run_ctl("--config", str(exchange_config(fake)), "download", "NOPE/USDT", "--days", "1")
    assert result.returncode == 64
    assert result.stderr.strip() == "autoretrainctl: error: binance has no market 'NOPE/USDT'"


def test_stored_prices_match_the_exchange_exactly(tmp_path: Path) -> None:
    with FakeBinance(now_ms=NOW, history_start_ms=NOW - 5 * DAY_MS) as fake, \
            Database(tmp_path / "db.sqlite") as db:
        backfill(CcxtSource("binance", fake.exchange_params()), db.candles, "ETH/USDT", "1h", NOW - 2 * DAY_MS)
        stored = db.candles.window("binance", "ETH/USDT", "1h")
        rows = [fake.candle_at("ETHUSDT", "1h", int(t)) for t in stored["ts"]]
    expected = np.array([[float(v) for v in row[1:6]] for row in rows])
    actual = np.column_stack([stored[f] for f in ("open", "high", "low", "close", "volume")])
    np.testing.assert_array_equal(actual, expected)


def test_the_rate_limit_waits_by_the_monotonic_clock_at_most_one_interval() -> None:
    """ccxt's own throttle, after the wall clock stepped back a day, would sleep a day before the next request."""
    slept: list[float] = []
    ticks = iter([100.0, 100.02, 100.03, 200.0, 200.0])
    throttle = MonotonicThrottle(type("Client", (), {"rateLimit": 50})(), slept.append, clock=lambda: next(ticks))
    throttle()  # the first request: no wait (monotonic read once, at 100.0)
    throttle(2.0)  # 20 ms later, a request of cost 2: the rest of 100 ms
    throttle()  # long after: no wait
    assert slept == [pytest.approx(0.08)]
