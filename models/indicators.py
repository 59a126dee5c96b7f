"""Technical indicators on numpy arrays, causal and vectorised where numpy allows.

Shared by the model features (models.features) and the rule-based signal algorithms, so both read
the market the same way. Every function returns an array as long as its input; the value at index t
uses only inputs at indices <= t (no lookahead), and positions without enough history are NaN.
Only numpy is imported: the inference process uses these without pandas or torch.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _full(length: int) -> np.ndarray:
    return np.full(length, np.nan, dtype=np.float64)


def sma(values: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average over `window` values."""
    values = np.asarray(values, dtype=np.float64)
    out = _full(len(values))
    if window <= len(values):
        out[window - 1:] = sliding_window_view(values, window).mean(axis=1)
    return out


def rolling_std(values: np.ndarray, window: int) -> np.ndarray:
    """Population standard deviation over `window` values."""
    values = np.asarray(values, dtype=np.float64)
    out = _full(len(values))
    if window <= len(values):
        out[window - 1:] = sliding_window_view(values, window).std(axis=1)
    return out


def ema(values: np.ndarray, span: int, *, wilder: bool = False) -> np.ndarray:
    """Exponential moving average (alpha = 2/(span+1), or 1/span for Wilder's smoothing), seeded with the SMA.

    NaNs at the start of `values` (warm-up of an upstream indicator) are skipped; a NaN later on
    propagates, as in the recursion level += alpha * (x - level). The recursion is evaluated in
    blocks with its closed form, level_j = d^j * (level_0 + alpha * sum_{i<=j} d^-i * x_i) with
    d = 1 - alpha: vectorised, and each block short enough that d^-j stays below 1e120, far inside
    float64's range (results agree with the recursion to ~1e-14 relative).
    """
    values = np.asarray(values, dtype=np.float64)
    out = _full(len(values))
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) == 0:
        return out
    start = int(finite[0])
    if len(values) - start < span:
        return out
    alpha = 1.0 / span if wilder else 2.0 / (span + 1.0)
    decay = 1.0 - alpha
    seed_end = start + span - 1
    level = float(values[start:seed_end + 1].mean())
    out[seed_end] = level
    block_length = int(min(4096, max(16, 276.0 / -np.log(decay))))
    exponents = np.arange(1, min(block_length, len(values)) + 1, dtype=np.float64)
    growth, shrink = decay ** -exponents, decay ** exponents
    for first in range(seed_end + 1, len(values), block_length):
        block = values[first:first + block_length]
        size = len(block)
        levels = shrink[:size] * (level + alpha * np.cumsum(growth[:size] * block))
        out[first:first + size] = levels
        level = float(levels[-1])
    return out


def rsi(close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder's relative strength index, 0..100."""
    close = np.asarray(close, dtype=np.float64)
    change = np.diff(close, prepend=np.nan)
    gain = ema(np.where(np.isnan(change), np.nan, np.maximum(change, 0.0)), period, wilder=True)
    loss = ema(np.where(np.isnan(change), np.nan, np.maximum(-change, 0.0)), period, wilder=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = gain / loss
        out = 100.0 - 100.0 / (1.0 + strength)
    out = np.where((loss == 0) & (gain > 0), 100.0, out)
    out = np.where((loss == 0) & (gain == 0), 50.0, out)
    return out


def macd(close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(MACD line, signal line, histogram)."""
    line = ema(close, fast) - ema(close, slow)
    signal_line = ema(line, signal)
    return line, signal_line, line - signal_line


def bollinger(close: np.ndarray, window: int = 20, width: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(middle, upper, lower, position) where position = (close - lower) / (upper - lower)."""
    middle = sma(close, window)
    spread = width * rolling_std(close, window)
    upper, lower = middle + spread, middle - spread
    with np.errstate(divide="ignore", invalid="ignore"):
        position = np.where(spread > 0, (np.asarray(close) - lower) / (upper - lower), 0.5)
    position = np.where(np.isnan(middle), np.nan, position)
    return middle, upper, lower, position


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    prev_close = np.concatenate([[np.nan], np.asarray(close, dtype=np.float64)[:-1]])
    ranges = np.stack([high - low, np.abs(high - prev_close), np.abs(low - prev_close)])
    return np.nanmax(ranges, axis=0)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder's average true range."""
    return ema(true_range(np.asarray(high, float), np.asarray(low, float), np.asarray(close, float)), period, wilder=True)


def zscore(values: np.ndarray, window: int) -> np.ndarray:
    """(x - rolling mean) / rolling std over `window` values; 0 where the std is 0."""
    mean = sma(values, window)
    std = rolling_std(values, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(std > 0, (np.asarray(values, float) - mean) / std, 0.0)
    return np.where(np.isnan(mean), np.nan, out)


def log_returns(close: np.ndarray, lag: int = 1) -> np.ndarray:
    """log(close_t / close_{t-lag})."""
    close = np.asarray(close, dtype=np.float64)
    out = _full(len(close))
    if lag < len(close):
        out[lag:] = np.log(close[lag:] / close[:-lag])
    return out
