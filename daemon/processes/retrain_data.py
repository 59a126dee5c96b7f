"""The candles a retrain job learns from, and what meta.json records about them and about the model.

`load_training_data` reads the newest `days` of stored candles up to the newest one (or up to
`until_ms`: a backtest trains on what was known at a market time), plus the warm-up the features need
before them; candles with impossible values are dropped (treated as gaps) and gaps are counted.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

import numpy as np

from autoretrain.daemon.foundation.config_schema import ModelConfig, TrainingConfig
from autoretrain.daemon.foundation.errors import DataError
from autoretrain.daemon.foundation.timeframes import DAY_MS, iso, timeframe_ms
from autoretrain.daemon.store.candles import CandleTable
from autoretrain.models import dataset as ds
from autoretrain.models.features import FEATURE_NAMES, FEATURE_SET_VERSION, WARMUP_CANDLES, compute_features
from autoretrain.models.training import TrainResult

log = logging.getLogger("autoretrain.model")


@dataclass
class TrainingData:
    """The candles of one job and everything derived from them."""

    candles: np.ndarray
    window_start: int  # index of the first candle inside the `days` window (before it: feature warm-up)
    step_ms: int
    features: np.ndarray
    info: dict[str, Any]

    @property
    def close(self) -> np.ndarray:
        return self.candles["close"]

    def ts(self, index: int) -> int:
        return int(self.candles["ts"][index])


def load_training_data(store: CandleTable, exchange: str, symbol: str, timeframe: str, *, days: float,
                       min_candles: int, until_ms: int | None = None) -> TrainingData:
    """The job's candles (DataError when there are fewer than `min_candles` in the window)."""
    step = timeframe_ms(timeframe)
    summary = store.summary(exchange, symbol, timeframe)
    if summary.count == 0 or summary.last_ts is None:
        raise DataError(f"no {symbol} {timeframe} candles stored for {exchange}: load some with "
                        f"`autoretrainctl download {symbol} --timeframe {timeframe} --days N` first")
    end = summary.last_ts if until_ms is None else min(summary.last_ts, until_ms)
    start = end - int(days * DAY_MS) + step
    window = store.window(exchange, symbol, timeframe, start_ms=start, end_ms=end)
    if len(window) < min_candles:
        raise DataError(f"only {len(window)} {symbol} {timeframe} candles in the {days:g} days up to "
                        f"{iso(end)}; training needs at least {min_candles} (training.min_candles)")
    end = int(window["ts"][-1])
    history = store.latest(exchange, symbol, timeframe, WARMUP_CANDLES, end_ms=start - 1)
    candles = np.concatenate([history, window])
    prices = np.stack([candles[f] for f in ("open", "high", "low", "close")], axis=1)
    usable = np.isfinite(prices).all(axis=1) & (prices > 0).all(axis=1) & np.isfinite(candles["volume"])
    dropped = int((~usable).sum())
    if dropped:
        log.warning("%s %s: %d candles with non-finite or non-positive values ignored (treated as gaps)",
                    symbol, timeframe, dropped)
        candles = candles[usable]
    steps = np.diff(candles["ts"])
    gaps = int((steps != step).sum())
    missing = int(np.sum(steps[steps != step] // step - 1))
    if gaps:
        log.warning("%s %s: %d gaps (%d missing candles) in the training data; windows spanning a gap are skipped",
                    symbol, timeframe, gaps, missing)
    window_start = int(np.searchsorted(candles["ts"], start))
    info = {
        "exchange": exchange, "candles": int(len(candles) - window_start), "warmup_candles": window_start,
        "first_ts": int(candles["ts"][window_start]), "last_ts": end, "first": iso(int(candles["ts"][window_start])),
        "last": iso(end), "days": days, "gaps": gaps, "missing_candles": missing, "invalid_candles": dropped,
        "data_hash": "sha256:" + hashlib.sha256(candles.tobytes()).hexdigest(),
    }
    log.info("Training data for %s %s: %d candles from %s to %s", symbol, timeframe, info["candles"],
             info["first"], info["last"])
    return TrainingData(candles, window_start, step, compute_features(candles), info)


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("torch", "onnx", "onnxscript", "onnxruntime", "numpy", "autoretrain"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def base_meta(*, symbol: str, timeframe: str, exchange: str, model: ModelConfig, training: TrainingConfig,
              purge: int, data: TrainingData, split: ds.Split, normaliser: ds.Normaliser, result: TrainResult,
              summary: dict[str, Any]) -> dict[str, Any]:
    """meta.json before export and evaluation add their parts: what the model is and what it learnt from."""
    seq, horizon = model.seq_len, model.horizon

    def first_used(ends: np.ndarray) -> str | None:
        return iso(data.ts(int(ends[0]) - seq + 1))

    trained_until = data.ts(int(split.validation[-1]) + horizon)
    return {
        "format": 1, "symbol": symbol, "timeframe": timeframe, "exchange": exchange,
        "created_at": iso(int(time.time() * 1000)), "feature_set_version": FEATURE_SET_VERSION,
        "feature_names": list(FEATURE_NAMES), "warmup_candles": WARMUP_CANDLES, "seq_len": seq, "horizon": horizon,
        "step_ms": data.step_ms, "normaliser": normaliser.to_dict(),
        "hyperparameters": {**model.model_dump(), **training.model_dump(exclude={"min_candles", "nice"})},
        "training": {**summary, "history": [asdict(h) for h in result.history]},
        "data": {**data.info, "trained_until_ts": trained_until, "trained_until": iso(trained_until),
                 "purge_candles": purge,
                 "train": {"samples": int(len(split.train)), "first": first_used(split.train),
                           "last": iso(data.ts(int(split.train[-1]) + horizon))},
                 "validation": {"samples": int(len(split.validation)), "first": first_used(split.validation),
                                "last": iso(trained_until)}},
        "software": software_versions(),
    }
