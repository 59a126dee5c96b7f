"""The market clock's anchor across processes of one boot: the monotonic clock, never the wall clock again.

A child restarted after the wall clock was stepped must read the same market time as the processes that
never restarted; only a new boot (the monotonic clock restarted) measures the downtime with the wall."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.market import clock as clock_module
from autoretrain.daemon.market.ccxt_source import FUTURE_TOLERANCE_MS
from autoretrain.daemon.market.clock import (
    EXCHANGE_CLOCK_FILE,
    ClockAnchor,
    MarketClock,
    boot_id,
    load_or_create_anchor,
    read_exchange_clock,
    write_exchange_clock,
)
from autoretrain.daemon.market.market_time import MarketTime

IDENTITY = {"source": "simulated", "seed": 1}


def no_wall() -> float:
    raise AssertionError("the wall clock was read")


class Ticker:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_first_process_of_a_boot_reads_the_wall_once_and_records_the_monotonic_anchor(tmp_path: Path) -> None:
    path = tmp_path / "market-clock.json"
    anchor = load_or_create_anchor(path, IDENTITY, wall=lambda: 5_000.0, ticker=Ticker(100.0))
    assert anchor == ClockAnchor(5_000.0, 100.0)
    saved = json.loads(path.read_text())
    assert saved["boot_id"] == boot_id() and saved["anchor_monotonic"] == 100.0 and saved["anchor_wall"] == 5_000.0
    # later processes of this boot: the saved monotonic anchor, whatever the wall clock says now
    assert load_or_create_anchor(path, IDENTITY, wall=no_wall, ticker=Ticker(9_999.0)) == anchor


def test_after_a_reboot_the_downtime_is_measured_with_the_wall_once(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "market-clock.json"
    load_or_create_anchor(path, IDENTITY, wall=lambda: 5_000.0, ticker=Ticker(100.0))
    other_boot = tmp_path / "boot_id"
    other_boot.write_text("another-boot\n")
    monkeypatch.setattr(clock_module, "BOOT_ID", other_boot)
    # the machine was off: 600 s of wall time since the anchor, the monotonic clock restarted at 0
    anchor = load_or_create_anchor(path, IDENTITY, wall=lambda: 5_600.0, ticker=Ticker(20.0))
    assert anchor == ClockAnchor(5_000.0, 20.0 - 600.0)
    assert json.loads(path.read_text())["boot_id"] == "another-boot"


def test_a_clock_with_a_monotonic_anchor_never_reads_the_wall() -> None:
    ticker = Ticker(1_000.0)
    clock = MarketClock(origin_ms=0, speed=3600.0, anchor_wall=5_000.0, anchor_monotonic=990.0, wall=no_wall,
                        ticker=ticker)
    assert clock.now_ms() == 10 * 3_600_000  # ten seconds since the anchor at 3600x: ten market hours
    ticker.now += 1.0
    assert clock.now_ms() == 11 * 3_600_000
    assert clock.anchor == 5_000.0


def test_a_clock_anchored_by_wall_time_alone_records_its_monotonic_anchor() -> None:
    clock = MarketClock(origin_ms=0, speed=1.0, anchor_wall=5_000.0, wall=lambda: 5_010.0, ticker=Ticker(50.0))
    assert clock.anchor_monotonic == 40.0 and clock.now_ms() == 10_000


def test_the_exchange_clock_reading_is_for_this_boot_and_exchange_only(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / EXCHANGE_CLOCK_FILE
    assert read_exchange_clock(path, "binance") is None
    write_exchange_clock(path, "binance", 1.7e12, 123.5)
    assert read_exchange_clock(path, "binance") == (1.7e12, 123.5)
    assert read_exchange_clock(path, "bybit") is None
    path.write_text("{not json")
    assert read_exchange_clock(path, "binance") is None
    write_exchange_clock(path, "binance", 1.7e12, 123.5)
    other_boot = tmp_path / "boot_id"
    other_boot.write_text("another-boot\n")
    monkeypatch.setattr(clock_module, "BOOT_ID", other_boot)
    assert read_exchange_clock(path, "binance") is None  # the monotonic time of another boot means nothing


def test_an_exchanges_time_follows_ingests_reading_not_the_wall_clock(tmp_path: Path) -> None:
    config = build_config({"paths": {"state_dir": str(tmp_path / "state"), "runtime_dir": str(tmp_path / "run")},
                           "market": {"source": "ccxt", "exchange": "binance", "timeframe": "1h"}}, env={})
    config.runtime_dir.mkdir(parents=True)
    exchange_ms = (time.time() - 3 * 86_400) * 1000  # the exchange three days behind this machine's wall clock
    write_exchange_clock(config.runtime_dir / EXCHANGE_CLOCK_FILE, "binance", exchange_ms, time.monotonic())
    market = MarketTime(config)
    assert abs(market.now_ms() - (exchange_ms + FUTURE_TOLERANCE_MS)) < 1_000
    assert abs(market.shown_ms() - exchange_ms) < 1_000
