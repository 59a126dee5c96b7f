"""The market's time as inference and the supervisor read it: the clock ingest's source runs, never the wall
clock of an accelerated market, so that "the newest closed candle" means the same in every process."""

from __future__ import annotations

from pathlib import Path

from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.timeframes import HOUR_MS, last_closed_open_ms
from autoretrain.daemon.market.ccxt_source import FUTURE_TOLERANCE_MS
from autoretrain.daemon.market.market_time import MarketTime, simulated_origin_ms
from autoretrain.daemon.processes.ingest import open_market
from tests.market.test_csv_import import csv_text
from tests.support.data import random_walk_candles


class Wall:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _config(tmp_path: Path, market: dict) -> Config:
    return build_config({"paths": {"state_dir": str(tmp_path / "state")}, "market": market}, env={})


def test_the_simulated_market_stands_at_its_origin_until_ingest_starts_its_clock(tmp_path: Path) -> None:
    config = _config(tmp_path, {"source": "simulated", "timeframe": "1h", "simulated": {"speed": 3600}})
    wall = Wall(1_000.0)
    before = MarketTime(config, wall=wall)
    assert before.now_ms() == simulated_origin_ms(config)
    wall.now += 10  # no anchor yet: the market has not started moving
    assert before.now_ms() == simulated_origin_ms(config)

    source = open_market(config)  # ingest's clock, kept in the state directory
    try:
        wall.now = source.clock.anchor + 5.0  # five seconds of wall time: five market hours at 3600x
        assert MarketTime(config, wall=wall).now_ms() == source.clock.origin_ms + 5 * HOUR_MS
        assert before.closed_until_ms() == last_closed_open_ms(source.clock.origin_ms + 5 * HOUR_MS, "1h")
    finally:
        source.close()


def test_a_csv_replay_is_known_once_ingest_recorded_where_it_starts(tmp_path: Path) -> None:
    csv = tmp_path / "btc.csv"
    csv.write_text(csv_text(random_walk_candles(300, seed=3)))
    config = _config(tmp_path, {"source": "csv", "timeframe": "1h", "symbols": ["BTC/USDT"],
                                "csv": {"BTC/USDT": str(csv)}, "replay": {"history_candles": 100}})
    assert MarketTime(config).closed_until_ms() is None  # unknown: no bound rather than a wrong one
    source = open_market(config)
    try:
        wall = Wall(source.clock.anchor + 2.0)
        assert MarketTime(config, wall=wall).now_ms() == source.clock.origin_ms + int(2.0 * config.market.replay.speed
                                                                                      * 1000)
    finally:
        source.close()


def test_an_exchanges_time_is_the_wall_clock_with_ingests_tolerance(tmp_path: Path) -> None:
    config = _config(tmp_path, {"source": "ccxt", "exchange": "binance", "timeframe": "1h"})
    assert MarketTime(config, wall=Wall(1_700_000_000.0)).now_ms() == 1_700_000_000_000 + FUTURE_TOLERANCE_MS
