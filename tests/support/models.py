"""Model helpers for tests: simulated series with chosen regimes, stored candles, one trained version per session.

Data comes from the embedded simulated market (`SimulatedSeries`) with hand-picked regimes, so a
model has something real to learn; configurations are small (short windows, a tiny network, few
epochs) so a full train -> export -> evaluate job takes seconds on 2 cores.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.market.simulated import Regime, SimulatedSeries
from autoretrain.daemon.store.database import Database
from autoretrain.models.registry import Registry
from tests.support.cli import run_ctl
from tests.support.config import fast_config
from tests.support.daemon import Daemon

SYMBOL = "SIM/USDT"
TIMEFRAME = "1h"
START_MS = 1_704_067_200_000


def regime_series(*regimes: tuple[str, int], seed: int = 7, strength: float = 0.5) -> SimulatedSeries:
    """A simulated market cycling through (kind, candles) regimes, e.g. ("momentum", 2000)."""
    schedule = [Regime(kind, count, {"momentum": 1.0, "mean_reversion": -1.0, "random_walk": 0.0}[kind] * strength,
                       0.01) for kind, count in regimes]
    return SimulatedSeries(seed, SYMBOL, TIMEFRAME, START_MS, 100.0, schedule)


def store_candles(config: Config, candles: np.ndarray, symbol: str = SYMBOL) -> None:
    with Database(config.db_path) as db:
        db.candles.upsert(config.store_exchange, symbol, TIMEFRAME, candles)


_TRAINED: dict[str, Path] = {}


def trained_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real version folder (trained, exported, registered) built once per test session; copy before changing it."""
    if "path" not in _TRAINED:
        from autoretrain.daemon.processes.retrain_job import run_training

        state = tmp_path_factory.mktemp("trained") / "state"
        config = fast_config(state)
        store_candles(config, regime_series(("momentum", 3000)).candles(0, 1999))
        outcome = run_training(config, SYMBOL, TIMEFRAME, promote="always")
        assert outcome.version is not None
        _TRAINED["path"] = config.models_dir / "SIM_USDT" / TIMEFRAME / outcome.version
    return _TRAINED["path"]


def copy_version(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination


def register_copy(registry: Registry, symbol: str, timeframe: str, source: Path, *, truncated: bool = False) -> str:
    """A new version of `symbol` holding the files of version folder `source` (with `truncated`, its model.onnx
    cut in half, so its sha256 no longer matches); returns the version's name."""
    with registry.stage(symbol, timeframe) as staging:
        for item in source.iterdir():
            shutil.copy(item, staging.path / item.name)
        if truncated:
            model = staging.path / "model.onnx"
            model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
        return staging.commit(json.loads((source / "meta.json").read_text()))


def champion_seen_until(registry: Registry, symbol: str, timeframe: str, version: str) -> int:
    """The newest candle version `version` learnt from or was chosen on (retrain_job's rule for 'unseen')."""
    info = next(i for i in registry.versions(symbol, timeframe) if i.version == version)
    assert info.meta is not None, info.error
    chosen = ((info.meta.get("evaluation") or {}).get("evaluation") or {}).get("last_ts")
    return max(int(info.meta["data"]["trained_until_ts"]), int(chosen or 0))


def unseen_candles_needed(min_eval_samples: int, *, seq_len: int = 32, horizon: int = 1, margin: int = 10) -> int:
    """Candles past the champion's last seen one before a retrain can be judged against it: the purge gap
    (seq_len + horizon, plus one), then `min_eval_samples` whole windows with their label, and a margin."""
    return (seq_len + horizon + 1) + (seq_len + min_eval_samples - 1 + horizon) + margin


def prepare_champion(daemon: Daemon, *, epochs: int) -> tuple[Registry, str]:
    """The guide's "start with a pre-trained model": 60 days of history and a promoted model, made with
    autoretrainctl before `daemon` starts; the registry and the champion's version."""
    for args in (["download", "BTC/USDT", "--days", "60"],
                 ["train", "BTC/USDT", "--epochs", str(epochs), "--promote", "always"]):
        prepared = run_ctl("--config", str(daemon.config_path), *args, timeout=300)
        assert prepared.returncode == 0, prepared.stderr
    registry = Registry(daemon.config.models_dir)
    champion = registry.promoted("BTC/USDT", "1h")
    assert champion is not None
    return registry, champion


def wait_for_unseen_candles(daemon: Daemon, registry: Registry, champion: str, min_eval_samples: int) -> None:
    """Until a retrain can be judged against `champion` (a job refused for want of unseen candles trains nothing)."""
    needed = unseen_candles_needed(min_eval_samples)
    unseen_from = champion_seen_until(registry, "BTC/USDT", "1h", champion) + needed * 3_600_000
    daemon.wait_for(lambda: daemon.query("SELECT MAX(ts) FROM candles")[0][0] >= unseen_from, 90,
                    f"{needed} candles the champion has not seen")
