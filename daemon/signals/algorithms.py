"""Rule-based signal algorithms: classic indicator rules that need no model (numpy only).

Each algorithm reads a window of closed candles and votes on the move after the newest one: a number
in [-1, 1], positive for up, negative for down, 0 for no opinion, or None (abstains) while the window
is too short for its indicator. The votes are combined in `daemon.signals`.

| name        | rule (newest candle)                                        | kind           |
|-------------|-------------------------------------------------------------|----------------|
| `rsi`       | (50 - RSI14) / 20, clipped: RSI 30 -> +1, 50 -> 0, 70 -> -1 | mean reversion |
| `macd`      | sign of the MACD(12, 26, 9) histogram                       | trend          |
| `ma_cross`  | sign of SMA10 - SMA30                                       | trend          |
| `bollinger` | 1 - 2 * position in the Bollinger(20, 2) band, clipped:     | mean reversion |
|             | lower band -> +1, middle -> 0, upper band -> -1             |                |

Two trend followers and two mean-reversion rules: they agree only when a move is both established
and not stretched, which is when the combined vote gets strong enough to trade.

The EMAs inside RSI and MACD depend on where their window starts, so every vote is computed on the
newest `REQUIRED_CANDLES` candles only: the same candle gives the same vote whatever the length of
the window the caller holds (a re-run after a crash reproduces the recorded signal).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from autoretrain.models import indicators

RSI_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
MA_FAST, MA_SLOW = 10, 30
BOLLINGER_WINDOW, BOLLINGER_WIDTH = 20, 2.0

# Enough for the slowest indicator (MACD's signal line needs 26 + 9 - 1 = 34 candles) plus a warm-up
# over which the EMA seeds fade (after ~100 more candles their weight is under 0.1 %).
REQUIRED_CANDLES = 128

Vote = float | None
_NOISE = 1e-9


def _newest(values: np.ndarray) -> np.ndarray:
    """The newest value of each row (NaN: not enough history)."""
    return values[..., -1]


def _sign(value: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Sign of price differences; differences within float noise of the price level count as 0."""
    return np.where(np.abs(value) <= _NOISE * np.abs(scale), 0.0, np.sign(value))


def _as_vote(value: float) -> Vote:
    return float(value) if np.isfinite(value) else None


def _rsi_votes(close: np.ndarray) -> np.ndarray:
    return np.clip((50.0 - _newest(indicators.rsi(close, RSI_PERIOD))) / 20.0, -1.0, 1.0)


def _macd_votes(close: np.ndarray) -> np.ndarray:
    _, _, histogram = indicators.macd(close, MACD_FAST, MACD_SLOW, MACD_SIGNAL)
    return _sign(_newest(histogram), close[..., -1])


def _ma_cross_votes(close: np.ndarray) -> np.ndarray:
    slow = _newest(indicators.sma(close, MA_SLOW))
    return _sign(_newest(indicators.sma(close, MA_FAST)) - slow, slow)


def _bollinger_votes(close: np.ndarray) -> np.ndarray:
    _, _, _, position = indicators.bollinger(close, BOLLINGER_WINDOW, BOLLINGER_WIDTH)
    return np.clip(1.0 - 2.0 * _newest(position), -1.0, 1.0)


#: each algorithm's votes on the newest candle of every row of a 2-D close array (float64)
ALGORITHMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "rsi": _rsi_votes, "macd": _macd_votes, "ma_cross": _ma_cross_votes, "bollinger": _bollinger_votes,
}


def votes_batch(candles: np.ndarray) -> list[dict[str, Vote]]:
    """Every algorithm's vote on the newest candle of each row of a 2-D CANDLE_DTYPE array (one symbol
    per row, equally long windows): the same numbers `votes` gives row by row, in one numpy pass."""
    close = np.asarray(candles["close"][..., -REQUIRED_CANDLES:], dtype=np.float64)
    columns = {name: batched(close) for name, batched in ALGORITHMS.items()}
    return [{name: _as_vote(values[row]) for name, values in columns.items()} for row in range(close.shape[0])]


def votes(candles: np.ndarray) -> dict[str, Vote]:
    """Every algorithm's vote on the newest candle of a CANDLE_DTYPE window (oldest first)."""
    return votes_batch(candles[None, :])[0]
