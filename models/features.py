"""The 28 model features, computed from candles only (numpy; the inference process imports this).

Every feature at candle t uses candles 0..t only (no lookahead) and is scale-free (log ratios,
normalised oscillators), so one model serves any price level. The formulas are listed in
`docs/model.md`; the order of `FEATURE_NAMES` is the column order of `compute_features`.

Rows before `WARMUP_CANDLES` are NaN. The longest plain window is 96 candles, but the exponential
averages (RSI, MACD, ATR) are seeded from the first candles they see, so the same candle would get a
slightly different value from a short history than from a long one. With 200 candles of burn-in the
seed's weight has decayed below 1e-6, so features computed by inference from the last
`seq_len + WARMUP_CANDLES` candles match what training computed from months of history.
"""

from __future__ import annotations

import numpy as np

from autoretrain.models import indicators as ind

FEATURE_SET_VERSION = "f28-v1"
WARMUP_CANDLES = 200
RETURN_LAGS = (1, 2, 3, 6, 12, 24)

FEATURE_NAMES: tuple[str, ...] = (
    *(f"ret_{lag}" for lag in RETURN_LAGS),
    "vol_12", "vol_48", "vol_ratio", "autocorr_24",
    "rsi_14", "rsi_6",
    "macd_line", "macd_signal", "macd_hist",
    "bb_position", "bb_width", "atr_14",
    "volume_z_24", "volume_z_96", "volume_change",
    "body", "upper_wick", "lower_wick", "range", "close_location",
    "close_sma_24", "close_sma_96",
)
N_FEATURES = len(FEATURE_NAMES)
assert N_FEATURES == 28


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """numerator / denominator, `fill` where the denominator is 0; NaN stays NaN (warm-up)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denominator != 0, numerator / denominator, fill)
    return np.where(np.isnan(denominator) | np.isnan(numerator), np.nan, out)


def _lag1_autocorrelation(returns: np.ndarray, window: int, x: ind.Rolling) -> np.ndarray:
    """Rolling Pearson correlation of r[t] with r[t-1] over `window` pairs: the regime (momentum > 0).
    `x` holds the running sums of `returns`, already built for the volatilities."""
    previous = ind.shift(returns)
    y = ind.Rolling(previous)
    covariance = ind.sma(returns * previous, window) - x.mean(window) * y.mean(window)
    spread = x.std(window) * y.std(window)
    return np.clip(_safe_ratio(covariance, spread), -1.0, 1.0)


def compute_features(candles: np.ndarray) -> np.ndarray:
    """Features of every candle: float32, shape (len(candles), 28); rows < WARMUP_CANDLES are NaN.

    `candles` may also be 2-D, one equally long window per symbol: the result is then
    (symbols, candles, 28), computed in one pass (inference batches the symbols that closed together).
    """
    close = np.asarray(candles["close"], dtype=np.float64)
    open_ = np.asarray(candles["open"], dtype=np.float64)
    high = np.asarray(candles["high"], dtype=np.float64)
    low = np.asarray(candles["low"], dtype=np.float64)
    log_volume = np.log1p(np.maximum(np.asarray(candles["volume"], dtype=np.float64), 0.0))
    n = close.shape[-1]

    r1 = ind.log_returns(close, 1)
    r1_sums, close_sums, volume_sums = ind.Rolling(r1), ind.Rolling(close), ind.Rolling(log_volume)
    vol_12, vol_48 = r1_sums.std(12), r1_sums.std(48)
    macd_line, macd_signal, macd_hist = ind.macd(close)
    _, upper, lower, bb_position = ind.bollinger(close, 20, 2.0, rolling=close_sums)
    middle = (upper + lower) / 2.0
    body_top, body_bottom = np.maximum(open_, close), np.minimum(open_, close)
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = [
            *(r1 if lag == 1 else ind.log_returns(close, lag) for lag in RETURN_LAGS),
            vol_12,
            vol_48,
            _safe_ratio(vol_12, vol_48, fill=1.0) - 1.0,
            _lag1_autocorrelation(r1, 24, r1_sums),
            (ind.rsi(close, 14) - 50.0) / 50.0,
            (ind.rsi(close, 6) - 50.0) / 50.0,
            macd_line / close,
            macd_signal / close,
            macd_hist / close,
            bb_position - 0.5,
            _safe_ratio(upper - lower, middle),
            ind.atr(high, low, close, 14) / close,
            ind.zscore(log_volume, 24, volume_sums),
            ind.zscore(log_volume, 96, volume_sums),
            log_volume - ind.shift(log_volume),
            np.log(close / open_),
            np.log(high / body_top),
            np.log(body_bottom / low),
            np.log(high / low),
            _safe_ratio(close - low, high - low, fill=0.5) - 0.5,
            np.log(close / close_sums.mean(24)),
            np.log(close / close_sums.mean(96)),
        ]
    out = np.stack(columns, axis=-1).astype(np.float32)
    out[..., : min(WARMUP_CANDLES, n), :] = np.nan
    return out
