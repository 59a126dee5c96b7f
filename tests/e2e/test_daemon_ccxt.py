"""The daemon on a ccxt exchange (the local fake Binance, its clock running at 3600x): backfill, then follow."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.timeframes import HOUR_MS
from tests.support.config import FAST_SUPERVISOR
from tests.support.daemon import Daemon, signal_coverage
from tests.support.fake_exchange import FakeBinance

pytestmark = pytest.mark.slow


def test_backfill_then_follow_closed_candles_from_a_ccxt_exchange(tmp_path: Path) -> None:
    started_wall = time.time()
    market_start = 1_747_000_000_000 // HOUR_MS * HOUR_MS + 30 * 60_000  # half-way through an hour

    def clock() -> int:  # one market hour per real second
        return int(market_start + (time.time() - started_wall) * 3_600_000)

    with FakeBinance(now_ms=clock, history_start_ms=market_start - 400 * 24 * HOUR_MS,
                     corrupt={market_start // HOUR_MS * HOUR_MS + 5 * HOUR_MS: "nan"}) as fake:
        config = {
            "paths": {"state_dir": str(tmp_path / "state")},
            "market": {"source": "ccxt", "exchange": "binance", "symbols": ["BTC/USDT", "ETH/USDT"],
                       "timeframe": "1h", "backfill_days": 30, "poll_interval": 0.2,
                       "exchange_params": fake.exchange_params(timeout_ms=2000),
                       "retry": {"attempts": 3, "base_delay": 0.05, "max_delay": 0.2}},
            "auto_training": {"enabled": False},
            "supervisor": dict(FAST_SUPERVISOR),
            "heartbeat_interval": 2,
        }
        daemon = Daemon(tmp_path, config).start()
        try:
            daemon.wait_ready()
            backfilled = daemon.query("SELECT COUNT(*) FROM candles")[0][0]
            assert backfilled >= 2 * (30 * 24 - 1)  # 30 days of closed candles for each symbol (and a few new)
            daemon.wait_for(lambda: daemon.query("SELECT COUNT(*) FROM signals WHERE symbol = 'ETH/USDT'")[0][0]
                            >= 10, 60, "ten live signals from the exchange")
            status = daemon.status()
        finally:
            code = daemon.shutdown()
    log = daemon.log()
    assert code == 0, log[-3000:]
    assert {s["symbol"] for s in status["symbols"]} == {"BTC/USDT", "ETH/USDT"}
    assert all(s["candles"] > 720 for s in status["symbols"])

    # only closed candles: nothing at or after the exchange's current hour at the moment we stopped
    newest = daemon.query("SELECT MAX(ts) FROM candles")[0][0]
    assert newest + HOUR_MS <= clock()
    # the NaN candle the exchange served was rejected and logged, never stored
    bad = market_start // HOUR_MS * HOUR_MS + 5 * HOUR_MS
    assert daemon.query("SELECT COUNT(*) FROM candles WHERE ts = ?", bad)[0][0] == 0
    assert "rejected BTC/USDT 1h candle" in log and "non-finite value" in log
    # every live candle of each symbol got exactly one signal; stored prices are the exchange's
    for symbol in ("BTC/USDT", "ETH/USDT"):
        start = json.loads((daemon.config.state_dir / "signal-start.json").read_text())[f"binance|{symbol}|1h"]
        candles, signals, missing, lag = signal_coverage(daemon, "binance", symbol, "1h", start)
        assert candles >= 10 and missing == 0 and signals == candles and lag <= 3
    row = daemon.query("SELECT c.ts, c.open, c.close FROM candles c JOIN series s ON s.id = c.series_id"
                       " WHERE s.symbol = 'ETH/USDT' ORDER BY c.ts DESC LIMIT 1")[0]
    expected = fake.candle_at("ETHUSDT", "1h", row[0])
    assert (row[1], row[2]) == (float(expected[1]), float(expected[4]))
