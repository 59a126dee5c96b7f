"""The daemon survives what its store holds: a candle no calendar can show (year 10000 and more, put there
by hand, by an older import or a damaged copy) neither stops the supervisor at its heartbeat nor `status`,
and ingest names it and goes on following the market from the newest closed candle."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.support.cli import run_ctl
from tests.support.config import simulated_config
from tests.support.daemon import Daemon

pytestmark = pytest.mark.slow

YEAR_10000 = 253_402_300_800_000  # 10000-01-01T00:00:00Z: one hour past the last candle of the year 9999


def test_a_candle_from_beyond_the_year_9999_in_the_store_stops_neither_heartbeat_nor_status(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, simulated_config(tmp_path / "state", auto_training={"enabled": False},
                                               heartbeat_interval=1))
    seeded = run_ctl("--config", str(daemon.config_path), "download", "BTC/USDT", "--days", "2")
    assert seeded.returncode == 0, seeded.stderr
    with sqlite3.connect(daemon.config.db_path) as conn:
        for ts in (YEAR_10000 - 3_600_000, YEAR_10000, 2**62):
            conn.execute("INSERT INTO candles SELECT series_id, ?, open, high, low, close, volume FROM candles"
                         " ORDER BY ts LIMIT 1", (ts,))
    conn.close()
    newest_before = daemon.query("SELECT MAX(ts) FROM candles WHERE ts < ?", YEAR_10000 - 3_600_000)[0][0]

    daemon.start()
    try:
        daemon.wait_ready()
        daemon.wait_for(lambda: daemon.log().count("Heartbeat | BTC/USDT") >= 3, 60, "three heartbeats")
        status = run_ctl("--config", str(daemon.config_path), "status", "--json")
        daemon.wait_for(lambda: daemon.query("SELECT COUNT(*) FROM candles WHERE ts > ? AND ts < ?", newest_before,
                                             YEAR_10000 - 3_600_000)[0][0] >= 20, 60, "twenty live candles")
        performance = run_ctl("--config", str(daemon.config_path), "performance", "BTC/USDT")
        alive = daemon.process is not None and daemon.process.poll() is None
    finally:
        code = daemon.shutdown()
    log = daemon.log()
    assert alive and code == 0, log[-3000:]
    assert "Traceback" not in log and "year 10000 is out of range" not in log
    assert status.returncode == 0, status.stderr
    (symbol,) = json.loads(status.stdout)["symbols"]
    assert symbol["last_candle"] == f"out-of-range time ({2**62} ms)" and symbol["error"] is None
    assert performance.returncode == 0, performance.stderr
    # ingest named the candles from the future and followed the market from the newest closed one
    assert "the store holds 3 BTC/USDT 1h candle(s) from the future" in log
