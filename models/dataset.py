"""From candles and features to samples: windows, labels, time-ordered splits with purge gaps, scaling.

A sample is identified by its end index t: its input is the feature rows t-seq_len+1..t and its label
is close[t+horizon] > close[t]. It "uses" the candles of its span [t-seq_len+1-warm-up, t+horizon].
Splits are in time order, and between two splits at least `purge` candles lie that neither uses the
label or inputs of (purge >= seq_len + horizon), so no validation or evaluation label leaks into
training through overlapping windows.

Numpy only: the inference process applies `Normaliser` and `windows` exactly as training did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from autoretrain.models.features import WARMUP_CANDLES

CLIP = 10.0
MIN_STD = 1e-8


@dataclass(frozen=True)
class Normaliser:
    """Per-feature standardisation fitted on training rows only, shipped in meta.json with the model."""

    mean: np.ndarray
    std: np.ndarray
    clip: float = CLIP

    @classmethod
    def fit(cls, rows: np.ndarray) -> Normaliser:
        rows = np.asarray(rows, dtype=np.float64)
        rows = rows[np.isfinite(rows).all(axis=1)]
        if len(rows) == 0:
            raise ValueError("no finite feature rows to fit the normaliser on")
        return cls(rows.mean(axis=0), np.maximum(rows.std(axis=0), MIN_STD))

    def apply(self, features: np.ndarray) -> np.ndarray:
        """(x - mean) / std, clipped to +-clip (one crash candle must not saturate the LSTM), float32."""
        scaled = (np.asarray(features, dtype=np.float64) - self.mean) / self.std
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std], "clip": self.clip}

    @classmethod
    def from_dict(cls, data: dict[str, Any], n_features: int) -> Normaliser:
        mean = np.asarray(data["mean"], dtype=np.float64)
        std = np.asarray(data["std"], dtype=np.float64)
        if mean.shape != (n_features,) or std.shape != (n_features,):
            raise ValueError(f"normaliser has {mean.shape[0]} means and {std.shape[0]} stds, expected {n_features}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError("normaliser holds non-finite or non-positive values")
        return cls(mean, std, float(data.get("clip", CLIP)))


def segment_starts(ts: np.ndarray, step_ms: int) -> np.ndarray:
    """For each candle, the index of the first candle of its contiguous run (a gap starts a new run)."""
    n = len(ts)
    breaks = np.ones(n, dtype=bool)
    if n > 1:
        breaks[1:] = np.diff(np.asarray(ts, dtype=np.int64)) != step_ms
    starts = np.where(breaks, np.arange(n), 0)
    return np.maximum.accumulate(starts) if n else starts


def valid_ends(features: np.ndarray, ts: np.ndarray, step_ms: int, seq_len: int, horizon: int) -> np.ndarray:
    """End indices t whose whole span (warm-up, window, label) is contiguous and whose rows are finite."""
    n = len(ts)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    runs = segment_starts(ts, step_ms)
    t = np.arange(n - horizon, dtype=np.int64) if n > horizon else np.empty(0, dtype=np.int64)
    first_row = t - seq_len + 1
    ok = first_row - WARMUP_CANDLES >= runs[t]
    ok &= runs[t + horizon] == runs[t]
    finite = np.isfinite(features).all(axis=1)
    bad_before = np.concatenate([[0], np.cumsum(~finite)])
    ok &= first_row >= 0
    clipped = np.maximum(first_row, 0)
    ok &= bad_before[t + 1] - bad_before[clipped] == 0
    return t[ok]


def labels(close: np.ndarray, ends: np.ndarray, horizon: int) -> np.ndarray:
    """1.0 where close[t+horizon] > close[t] (the move the model predicts), else 0.0."""
    return (close[ends + horizon] > close[ends]).astype(np.float32)


def future_returns(close: np.ndarray, ends: np.ndarray, horizon: int) -> np.ndarray:
    """Simple return from close[t] to close[t+horizon]: what a trade opened at t would earn."""
    return close[ends + horizon] / close[ends] - 1.0


def windows(scaled: np.ndarray, ends: np.ndarray, seq_len: int) -> np.ndarray:
    """Model inputs (len(ends), seq_len, n_features) float32 from scaled feature rows."""
    offsets = np.arange(-seq_len + 1, 1, dtype=np.int64)
    return np.ascontiguousarray(scaled[np.asarray(ends, dtype=np.int64)[:, None] + offsets], dtype=np.float32)


def span(ends: np.ndarray, seq_len: int, horizon: int) -> tuple[int, int]:
    """(first, last) candle index whose input or label some sample of `ends` uses."""
    return int(ends[0]) - seq_len + 1, int(ends[-1]) + horizon


@dataclass(frozen=True)
class Split:
    """Sample end indices of each part, oldest first."""

    train: np.ndarray
    validation: np.ndarray
    purge: int


def split_samples(ends: np.ndarray, *, seq_len: int, horizon: int, before: int, validation_fraction: float,
                  purge: int) -> Split:
    """train | purge | validation | purge | candle `before` (where the evaluation hold-out starts).

    Every candle a validation sample uses lies more than `purge` candles after every candle a training
    sample uses, and the last validation label lies more than `purge` candles before `before`.
    """
    ends = np.asarray(ends, dtype=np.int64)
    development = ends[ends + horizon <= before - 1 - purge]
    if len(development) == 0:
        return Split(development, development, purge)
    first_val = int(development[min(len(development) - 1, int(len(development) * (1 - validation_fraction)))])
    validation = development[development >= first_val]
    train = development[development + horizon <= first_val - seq_len - purge]
    return Split(train, validation, purge)
