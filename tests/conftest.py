"""Shared fixtures: temporary state, configs written to disk, real data (skipped when absent), fakes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml

from autoretrain.ipc.candles import CANDLE_DTYPE
from autoretrain.daemon.foundation.timeframes import HOUR_MS  # noqa: F401 - re-exported for the tests

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
BTC_1H = SHARED_DATA / "binance_BTCUSDT_1h_2018-2026.csv.gz"
# Environment that changes where the daemon looks; tests set these explicitly when they mean to.
_DAEMON_ENV = {"AUTORETRAIN_CONFIG", "STATE_DIRECTORY", "RUNTIME_DIRECTORY", "JOURNAL_STREAM", "NOTIFY_SOCKET"}


@pytest.fixture
def real_1h() -> Path:
    """The real Binance BTC/USDT 1h file; the test is skipped (with the reason) when it is absent."""
    if not BTC_1H.is_file():
        pytest.skip(f"real market data not available at {BTC_1H} (only present in the development workspace)")
    return BTC_1H


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a YAML config into tmp_path (state under tmp_path/state unless given) and return its path."""

    def write(data: dict[str, Any] | None = None, name: str = "config.yaml") -> Path:
        data = dict(data or {})
        data.setdefault("paths", {}).setdefault("state_dir", str(tmp_path / "state"))
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


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


def run_ctl(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `autoretrainctl` as a real subprocess (python -m daemon.ctl) and capture its output."""
    inherited = {k: v for k, v in os.environ.items() if k not in _DAEMON_ENV}
    full_env = {**inherited, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "autoretrain.daemon.cli.main", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=timeout)
