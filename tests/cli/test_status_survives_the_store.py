"""The daemon survives what its store holds: candles from the future (2030, 9999-12-31, the year 10000 and
more, put there by hand, by an older import or a damaged copy) neither stop the supervisor at its heartbeat
nor `status`, nor take the place of the newest closed candle: ingest names them and follows the market from
the newest closed one, inference names them once and goes on signalling every new candle, and the heartbeat's
price and `status`'s last candle come from closed candles only."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.timeframes import parse_iso_ms
from tests.support.cli import run_ctl
from tests.support.config import simulated_config
from tests.support.daemon import Daemon

pytestmark = pytest.mark.slow

YEAR_10000 = 253_402_300_800_000  # 10000-01-01T00:00:00Z: one hour past the last candle of the year 9999
YEAR_2030 = parse_iso_ms("2030-01-01T00:00:00Z")
FUTURE = (YEAR_2030, YEAR_10000 - 3_600_000, YEAR_10000, 2**62)
FUTURE_PRICE = 987_654.0  # no simulated price comes near it


def test_candles_from_the_future_in_the_store_stop_neither_signals_nor_heartbeat_nor_status(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, simulated_config(tmp_path / "state", auto_training={"enabled": False},
                                               heartbeat_interval=1))
    seeded = run_ctl("--config", str(daemon.config_path), "download", "BTC/USDT", "--days", "2")
    assert seeded.returncode == 0, seeded.stderr
    with sqlite3.connect(daemon.config.db_path) as conn:
        for ts in FUTURE:
            conn.execute("INSERT INTO candles SELECT series_id, ?, ?, ?, ?, ?, volume FROM candles ORDER BY ts LIMIT 1",
                         (ts, FUTURE_PRICE, FUTURE_PRICE, FUTURE_PRICE, FUTURE_PRICE))
    conn.close()
    newest_before = daemon.query("SELECT MAX(ts) FROM candles WHERE ts < ?", YEAR_2030)[0][0]

    def live(table: str, column: str) -> int:
        return daemon.query(f"SELECT COUNT(*) FROM {table} WHERE {column} > ? AND {column} < ?",
                            newest_before, YEAR_2030)[0][0]

    daemon.start()
    try:
        daemon.wait_ready()
        daemon.wait_for(lambda: daemon.log().count("Heartbeat | BTC/USDT") >= 3, 60, "three heartbeats")
        daemon.wait_for(lambda: live("candles", "ts") >= 20, 60, "twenty live candles")
        daemon.wait_for(lambda: live("signals", "candle_ts") >= 15, 60, "signals for the live candles")
        status = run_ctl("--config", str(daemon.config_path), "status", "--json")
        newest_closed = daemon.query("SELECT MAX(ts) FROM candles WHERE ts < ?", YEAR_2030)[0][0]
        performance = run_ctl("--config", str(daemon.config_path), "performance", "BTC/USDT")
        alive = daemon.process is not None and daemon.process.poll() is None
    finally:
        code = daemon.shutdown()
    log = daemon.log()
    assert alive and code == 0, log[-3000:]
    assert "Traceback" not in log and "year 10000 is out of range" not in log
    # inference signalled the live candles, and never one from the future
    assert daemon.query("SELECT COUNT(*) FROM signals WHERE candle_ts >= ?", YEAR_2030)[0][0] == 0
    signalled = {row[0] for row in daemon.query("SELECT candle_ts FROM signals WHERE candle_ts > ?", newest_before)}
    stored = {row[0] for row in daemon.query("SELECT ts FROM candles WHERE ts > ? AND ts < ?", newest_before,
                                             YEAR_2030)}
    assert len(signalled) >= 15 and signalled <= stored, (sorted(signalled - stored), len(signalled))
    # the heartbeat's price and status's last candle are closed candles'
    prices = re.findall(r"Heartbeat \| BTC/USDT \| Price: \$([\d,.]+)", log)
    assert len(prices) >= 3 and f"{FUTURE_PRICE:,.2f}" not in prices, prices
    assert status.returncode == 0, status.stderr
    snapshot = json.loads(status.stdout)
    (symbol,) = snapshot["symbols"]
    assert symbol["error"] is None and snapshot["store"]["error"] is None
    assert symbol["price"] != FUTURE_PRICE and symbol["last_candle"] < "2030"
    assert parse_iso_ms(symbol["last_candle"]) <= newest_closed
    assert performance.returncode == 0, performance.stderr
    # ingest and inference each named the candles from the future, once
    assert log.count("the store holds 4 BTC/USDT 1h candle(s) from the future") == 1
    assert log.count("ignoring 4 BTC/USDT 1h candle(s) from the future in the store") == 1
