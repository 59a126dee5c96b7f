"""What a backtest reports about a variant, and the uncertainty of it (numpy only, no I/O).

Returns are per candle, as fractions. A trade (BUY or SELL) opened at the close of candle t and settled
`horizon` candles later contributes its net PnL (after the fee on both sides) at its exit candle, sized
1/horizon so that overlapping trades never commit more than the whole account; with horizon 1 (the
default) every trade uses the whole account for one candle. Buy and hold is the close-to-close return
with no fee. Equity compounds these returns from 1.

- direction accuracy: trades whose direction happened / settled trades (the model's label definition);
- win rate (net): trades whose PnL after fees is positive / settled trades;
- PnL: the sum of per-trade net PnL % (every trade the same size) and the compounded return;
- maximum drawdown: the largest fall of equity from a previous peak;
- Sharpe: mean / standard deviation of the per-candle returns, annualised by sqrt(candles per year);
- exposure: the share of candles in a position.

Uncertainty: a Wilson score interval for the accuracy (a binomial proportion), and a moving-block
bootstrap over candles for the difference in PnL (the sum of per-candle returns, in %: additive, so it
still compares two variants that both lost everything compounded) between two variants on the same
candles (blocks keep the serial dependence of returns; the block length is reported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoretrain.daemon.signals.confidence import wilson_interval

YEAR_MS = 365 * 86_400_000
def compounded(returns: np.ndarray) -> float:
    return float(np.prod(1.0 + returns) - 1.0)


def max_drawdown(returns: np.ndarray) -> float:
    """The largest relative fall of compounded equity from its running peak (0 when it never falls)."""
    if len(returns) == 0:
        return 0.0
    equity = np.cumprod(1.0 + returns)
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return float(np.max(1.0 - equity / peak))


def sharpe(returns: np.ndarray, step_ms: int) -> float | None:
    """Annualised Sharpe ratio of per-candle returns (risk-free rate 0); None when returns do not vary."""
    if len(returns) < 2 or float(np.std(returns)) == 0.0:
        return None
    return float(np.mean(returns) / np.std(returns, ddof=1) * math.sqrt(YEAR_MS / step_ms))


def block_length(candles: int) -> int:
    """n^(1/3), the usual order for a moving-block bootstrap of a sum, at least 1."""
    return max(1, round(candles ** (1 / 3)))


def bootstrap_difference(first: np.ndarray, second: np.ndarray, *, block: int, resamples: int,
                         seed: int) -> tuple[float, float, float]:
    """(difference of summed returns, 2.5 % and 97.5 % quantiles) of `first` minus `second`, resampling the
    same blocks of candles for both (a paired moving-block bootstrap)."""
    if len(first) != len(second):
        raise ValueError("the two return series must cover the same candles")
    n = len(first)
    difference = np.asarray(first) - np.asarray(second)
    estimate = float(difference.sum())
    if n == 0:
        return estimate, estimate, estimate
    rng = np.random.default_rng(seed)
    blocks = math.ceil(n / block)
    starts = rng.integers(0, max(1, n - block + 1), size=(resamples, blocks))
    index = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(resamples, -1)[:, :n]
    index = np.minimum(index, n - 1)
    low, high = np.quantile(difference[index].sum(axis=1), [0.025, 0.975])
    return estimate, float(low), float(high)


@dataclass(frozen=True)
class Trade:
    """One settled BUY or SELL of a variant."""

    candle_ts: int
    exit_ts: int
    correct: bool
    pnl_pct: float


def candle_returns(trades: list[Trade], candle_ts: np.ndarray, horizon: int) -> np.ndarray:
    """Per-candle account returns: each trade's net PnL / horizon at its exit candle."""
    position = {int(ts): i for i, ts in enumerate(candle_ts)}
    returns = np.zeros(len(candle_ts))
    for trade in trades:
        at = position.get(trade.exit_ts)
        if at is not None:
            returns[at] += trade.pnl_pct / 100.0 / horizon
    return returns


def summarise(trades: list[Trade], returns: np.ndarray, *, signals: int, step_ms: int, horizon: int) -> dict[str, Any]:
    """The per-variant figures (see the module's docstring for what each measures)."""
    settled = len(trades)
    right = sum(trade.correct for trade in trades)
    wins = sum(trade.pnl_pct > 0 for trade in trades)
    accuracy_ci = wilson_interval(right, settled)
    return {
        "signals": signals, "trades": settled,
        "direction_accuracy": right / settled if settled else None,
        "direction_accuracy_ci95": list(accuracy_ci) if accuracy_ci else None,
        "win_rate_net": wins / settled if settled else None,
        "pnl_sum_pct": float(sum(trade.pnl_pct for trade in trades)),
        "pnl_compounded_pct": 100.0 * compounded(returns),
        "max_drawdown_pct": 100.0 * max_drawdown(returns),
        "sharpe": sharpe(returns, step_ms),
        "exposure": min(1.0, settled * horizon / len(returns)) if len(returns) else 0.0,
    }
