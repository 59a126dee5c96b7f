"""The one place tests build configurations: a fast simulated daemon, a fast model job, and how overrides merge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.foundation.config_schema import Config


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with each section of `overrides` merged into it (a section given as a mapping is merged key
    by key, anything else replaces)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in overrides.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


FAST_SUPERVISOR = {"restart_backoff_initial": 0.2, "restart_backoff_max": 2.0, "max_restarts": 5,
                   "restart_window": 60.0, "ready_timeout": 90.0, "stop_timeout": 15.0}


def simulated_config(state_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A fast simulated-market configuration (1h candles, ~10 per second) for daemon tests."""
    config: dict[str, Any] = {
        "paths": {"state_dir": str(state_dir)},
        "market": {"source": "simulated", "symbols": ["BTC/USDT"], "timeframe": "1h", "backfill_days": 60,
                   "simulated": {"seed": 7, "speed": 36000, "history_candles": 1000,
                                 "regimes": [{"kind": "momentum", "candles": 1300, "strength": 0.5},
                                             {"kind": "mean_reversion", "candles": 1300, "strength": 0.5}]}},
        "auto_training": {"win_rate_scope": "rolling", "rolling_window": 30, "min_signals": 20, "cooldown_hours": 48},
        "training": {"days": 25, "epochs": 8, "patience": 3, "min_candles": 400},
        "promotion": {"eval_candles": 100, "min_eval_samples": 50},
        "supervisor": dict(FAST_SUPERVISOR),
        "inference": {"model_check_interval": 1.0},
        "heartbeat_interval": 2,
    }
    return merged(config, overrides)


# Small enough for seconds per job, big enough to learn the simulated regimes.
FAST: dict[str, Any] = {
    "market": {"source": "simulated"},
    "model": {"seq_len": 16, "hidden_size": 16},
    "training": {"epochs": 6, "days": 3650, "min_candles": 500, "threads": 2, "device": "cpu", "batch_size": 64,
                 "learning_rate": 0.005},
    "promotion": {"eval_candles": 400, "min_eval_samples": 100},
}


def fast_config(state_dir: Path, **sections: dict[str, Any]) -> Config:
    """A model-job configuration (FAST, with `sections` merged in) with its state in `state_dir`."""
    data = merged(FAST, sections)
    data["paths"] = {"state_dir": str(state_dir)}
    return build_config(data, base=state_dir.parent, env={})
