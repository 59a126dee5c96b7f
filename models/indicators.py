"""Technical indicators on numpy arrays, causal and vectorised where numpy allows.

Shared by the model features (models.features) and the rule-based signal algorithms, so both read
the market the same way. Every function works along the last axis and returns an array shaped like
its input: a 1-D series, or a 2-D array with one series per row (inference computes every symbol
that closed at once in one call). The value at index t uses only inputs at indices <= t (no
lookahead), and positions without enough history are NaN. Only numpy is imported: the inference
process uses these without pandas or torch.
"""

from __future__ import annotations

import numpy as np


def _full(shape: int | tuple[int, ...]) -> np.ndarray:
    return np.full(shape, np.nan, dtype=np.float64)


def shift(values: np.ndarray, lag: int = 1) -> np.ndarray:
    """values[t - lag] at t (NaN for the first `lag` positions), along the last axis."""
    values = np.asarray(values, dtype=np.float64)
    out = _full(values.shape)
    if lag < values.shape[-1]:
        out[..., lag:] = values[..., :-lag]
    return out


class Rolling:
    """Running sums of one series (or one per row), from which any window's mean and std follow in O(n).

    Built once per series and reused for every window length over it (Bollinger's mean and width, a
    z-score's mean and std, the 24- and 96-candle averages...). Values are taken relative to the row's
    first finite value, which depends only on the start of the series (never on later candles) and
    keeps the running sum of squares small enough for float64. A window holding a NaN gives NaN.
    """

    def __init__(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        self.shape = values.shape
        finite = np.isfinite(values)
        first = np.argmax(finite, axis=-1)[..., None]
        self.offset = np.take_along_axis(np.where(finite, values, 0.0), first, axis=-1)
        centred = np.where(finite, values - self.offset, 0.0)
        pad = np.zeros(values.shape[:-1] + (1,))
        self.sums = np.concatenate([pad, np.cumsum(centred, axis=-1)], axis=-1)
        self.squares = np.concatenate([pad, np.cumsum(centred * centred, axis=-1)], axis=-1)
        self.gaps = np.concatenate([pad, np.cumsum(~finite, axis=-1)], axis=-1)

    def _window(self, running: np.ndarray, window: int) -> np.ndarray:
        return running[..., window:] - running[..., :-window]

    def _fill(self, window: int, values: np.ndarray) -> np.ndarray:
        out = _full(self.shape)
        has_nan = self._window(self.gaps, window) > 0
        out[..., window - 1:] = np.where(has_nan, np.nan, values)
        return out

    def mean(self, window: int) -> np.ndarray:
        if window > self.shape[-1]:
            return _full(self.shape)
        return self._fill(window, self._window(self.sums, window) / window + self.offset)

    def std(self, window: int) -> np.ndarray:
        """Population standard deviation."""
        if window > self.shape[-1]:
            return _full(self.shape)
        centred_mean = self._window(self.sums, window) / window
        variance = np.maximum(self._window(self.squares, window) / window - centred_mean ** 2, 0.0)
        return self._fill(window, np.sqrt(variance))


def sma(values: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average over `window` values (NaN where the window holds a NaN)."""
    return Rolling(values).mean(window)


def rolling_std(values: np.ndarray, window: int) -> np.ndarray:
    """Population standard deviation over `window` values (NaN where the window holds a NaN)."""
    return Rolling(values).std(window)


def ema(values: np.ndarray, span: int, *, wilder: bool = False) -> np.ndarray:
    """Exponential moving average (alpha = 2/(span+1), or 1/span for Wilder's smoothing), seeded with the SMA.

    NaNs at the start of `values` (warm-up of an upstream indicator) are skipped; a NaN later on
    propagates, as in the recursion level += alpha * (x - level). The recursion is evaluated in
    blocks with its closed form, level_j = d^j * (level_0 + alpha * sum_{i<=j} d^-i * x_i) with
    d = 1 - alpha: vectorised, and each block short enough that d^-j stays below 1e120, far inside
    float64's range (results agree with the recursion to ~1e-14 relative).
    """
    values = np.asarray(values, dtype=np.float64)
    out = _full(values.shape)
    length = values.shape[-1]
    finite = np.flatnonzero(np.isfinite(values).reshape(-1, length).all(axis=0)) if length else np.empty(0, int)
    if len(finite) == 0:
        return out
    start = int(finite[0])
    if length - start < span:
        return out
    alpha = 1.0 / span if wilder else 2.0 / (span + 1.0)
    decay = 1.0 - alpha
    seed_end = start + span - 1
    level = values[..., start:seed_end + 1].mean(axis=-1)
    out[..., seed_end] = level
    block_length = int(min(4096, max(16, 276.0 / -np.log(decay))))
    exponents = np.arange(1, min(block_length, length) + 1, dtype=np.float64)
    growth, shrink = decay ** -exponents, decay ** exponents
    for first in range(seed_end + 1, length, block_length):
        block = values[..., first:first + block_length]
        size = block.shape[-1]
        levels = shrink[:size] * (level[..., None] + alpha * np.cumsum(growth[:size] * block, axis=-1))
        out[..., first:first + size] = levels
        level = levels[..., -1]
    return out


def rsi(close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder's relative strength index, 0..100."""
    close = np.asarray(close, dtype=np.float64)
    change = close - shift(close)
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


def bollinger(close: np.ndarray, window: int = 20, width: float = 2.0,
              rolling: Rolling | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(middle, upper, lower, position) where position = (close - lower) / (upper - lower)."""
    rolling = rolling or Rolling(close)
    middle = rolling.mean(window)
    spread = width * rolling.std(window)
    upper, lower = middle + spread, middle - spread
    with np.errstate(divide="ignore", invalid="ignore"):
        position = np.where(spread > 0, (np.asarray(close) - lower) / (upper - lower), 0.5)
    position = np.where(np.isnan(middle), np.nan, position)
    return middle, upper, lower, position


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    prev_close = shift(close)
    ranges = np.stack([high - low, np.abs(high - prev_close), np.abs(low - prev_close)])
    with np.errstate(invalid="ignore"):
        return np.nanmax(ranges, axis=0)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder's average true range."""
    return ema(true_range(np.asarray(high, float), np.asarray(low, float), np.asarray(close, float)), period, wilder=True)


def zscore(values: np.ndarray, window: int, rolling: Rolling | None = None) -> np.ndarray:
    """(x - rolling mean) / rolling std over `window` values; 0 where the std is 0.

    `rolling` may pass the running sums of `values` already built for another window."""
    rolling = rolling or Rolling(values)
    mean = rolling.mean(window)
    std = rolling.std(window)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(std > 0, (np.asarray(values, float) - mean) / std, 0.0)
    return np.where(np.isnan(mean), np.nan, out)


def log_returns(close: np.ndarray, lag: int = 1) -> np.ndarray:
    """log(close_t / close_{t-lag})."""
    close = np.asarray(close, dtype=np.float64)
    return np.log(close / shift(close, lag))
