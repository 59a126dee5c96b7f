"""Where the project and the real market data are, and plain candles for tests that need some."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autoretrain.daemon.foundation.timeframes import HOUR_MS
from autoretrain.ipc.candles import CANDLE_DTYPE

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
BTC_1H = SHARED_DATA / "binance_BTCUSDT_1h_2018-2026.csv.gz"


def random_walk_candles(count: int, *, start_ms: int = 1_704_067_200_000, step_ms: int = HOUR_MS,
                        seed: int = 0, price: float = 100.0) -> np.ndarray:
    """Valid candles on a random walk, for tests that need plain data."""
    rng = np.random.default_rng(seed)
    closes = price * np.exp(np.cumsum(rng.normal(0, 0.01, count)))
    opens = np.concatenate([[price], closes[:-1]])
    out = np.empty(count, dtype=CANDLE_DTYPE)
    out["ts"] = start_ms + np.arange(count) * step_ms
    out["open"] = opens
    out["close"] = closes
    out["high"] = np.maximum(opens, closes) * (1 + rng.uniform(0, 0.005, count))
    out["low"] = np.minimum(opens, closes) * (1 - rng.uniform(0, 0.005, count))
    out["volume"] = rng.uniform(1, 100, count)
    return out
