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

from typing import Callable

import numpy as np

from models import indicators

RSI_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
MA_FAST, MA_SLOW = 10, 30
BOLLINGER_WINDOW, BOLLINGER_WIDTH = 20, 2.0

# Enough for the slowest indicator (MACD's signal line needs 26 + 9 - 1 = 34 candles) plus a warm-up
# over which the EMA seeds fade (after ~100 more candles their weight is under 0.1 %).
REQUIRED_CANDLES = 128

Vote = float | None
_NOISE = 1e-9


def _newest(values: np.ndarray) -> float | None:
    value = float(values[-1]) if len(values) else float("nan")
    return value if np.isfinite(value) else None


def _sign(value: float | None, scale: float) -> Vote:
    """Sign of a price difference; differences within float noise of the price level count as 0."""
    if value is None:
        return None
    return 0.0 if abs(value) <= _NOISE * abs(scale) else float(np.sign(value))


def _clip(value: float | None) -> Vote:
    return None if value is None else float(np.clip(value, -1.0, 1.0))


def rsi_vote(close: np.ndarray) -> Vote:
    """Oversold (RSI under 50, fully at 30) votes up, overbought votes down."""
    value = _newest(indicators.rsi(close, RSI_PERIOD))
    return _clip(None if value is None else (50.0 - value) / 20.0)


def macd_vote(close: np.ndarray) -> Vote:
    """MACD line above its signal line votes up, below votes down."""
    _, _, histogram = indicators.macd(close, MACD_FAST, MACD_SLOW, MACD_SIGNAL)
    return _sign(_newest(histogram), close[-1])


def ma_cross_vote(close: np.ndarray) -> Vote:
    """Fast average above the slow one (a golden cross in force) votes up, below votes down."""
    fast = _newest(indicators.sma(close, MA_FAST))
    slow = _newest(indicators.sma(close, MA_SLOW))
    return None if fast is None or slow is None else _sign(fast - slow, slow)


def bollinger_vote(close: np.ndarray) -> Vote:
    """A close near the lower band votes up (reversion to the mean), near the upper band down."""
    _, _, _, position = indicators.bollinger(close, BOLLINGER_WINDOW, BOLLINGER_WIDTH)
    value = _newest(position)
    return _clip(None if value is None else 1.0 - 2.0 * value)


ALGORITHMS: dict[str, Callable[[np.ndarray], Vote]] = {
    "rsi": rsi_vote,
    "macd": macd_vote,
    "ma_cross": ma_cross_vote,
    "bollinger": bollinger_vote,
}


def votes(candles: np.ndarray) -> dict[str, Vote]:
    """Every algorithm's vote on the newest candle of a CANDLE_DTYPE window (oldest first)."""
    close = np.asarray(candles["close"][-REQUIRED_CANDLES:], dtype=np.float64)
    return {name: vote(close) for name, vote in ALGORITHMS.items()}
