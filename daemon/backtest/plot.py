"""The backtest as one PNG (matplotlib, headless): equity, drawdown, rolling accuracy, and every retrain.

Panels, top to bottom: the equity of every variant (log scale) with a marker at each retrain
(triangle up: promoted, cross: rejected, dot: failed); the drawdown from the running peak; the
rolling direction accuracy of each variant's trades with the policy's threshold line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from autoretrain.daemon.backtest.replay import VariantRun

MARKERS = {"promoted": "^", "rejected": "x", "failed": "o"}


def _dates(ts: np.ndarray) -> list[datetime]:
    return [datetime.fromtimestamp(int(t) / 1000, tz=UTC) for t in ts]


def rolling_accuracy(run: VariantRun, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(exit times, direction accuracy of the last `window` trades at each), from the window-th trade on."""
    if len(run.trades) < window:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    correct = np.array([trade.correct for trade in run.trades], dtype=float)
    sums = np.convolve(correct, np.ones(window), mode="valid") / window
    return np.array([trade.exit_ts for trade in run.trades[window - 1:]], dtype=np.int64), sums


def plot(runs: list[VariantRun], returns: dict[str, np.ndarray], path: Path, *, title: str, threshold: float,
         window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (equity_ax, drawdown_ax, accuracy_ax) = plt.subplots(3, 1, figsize=(12, 11), sharex=True,
                                                                 gridspec_kw={"height_ratios": [3, 1.3, 1.7]})
    for run in runs:
        name = run.variant.name
        equity = np.cumprod(1.0 + returns[name])
        dates = _dates(run.candle_ts)
        (line,) = equity_ax.plot(dates, equity, label=name, linewidth=1.1)
        drawdown_ax.plot(dates, 100 * (equity / np.maximum.accumulate(equity) - 1.0), color=line.get_color(),
                         linewidth=0.8)
        position = {int(ts): i for i, ts in enumerate(run.candle_ts)}
        for status, marker in MARKERS.items():
            at = [position[row.market_ts] for row in run.retrains if row.status == status and row.market_ts in position]
            if at:
                equity_ax.scatter([dates[i] for i in at], equity[at], marker=marker, color=line.get_color(), s=28,
                                  zorder=3)
        times, accuracy = rolling_accuracy(run, window)
        if len(times):
            accuracy_ax.plot(_dates(times), 100 * accuracy, color=line.get_color(), linewidth=0.9)
    equity_ax.set_yscale("log")
    equity_ax.set_ylabel("equity (log), net of fees")
    equity_ax.set_title(title)
    equity_ax.legend(loc="upper left", fontsize=8, ncol=3)
    equity_ax.text(0.99, 0.02, "retrain: ^ promoted  x rejected  o failed", transform=equity_ax.transAxes,
                   ha="right", fontsize=8)
    drawdown_ax.set_ylabel("drawdown %")
    accuracy_ax.axhline(100 * threshold, color="black", linestyle="--", linewidth=0.8,
                        label=f"threshold {100 * threshold:.0f}%")
    accuracy_ax.axhline(50, color="grey", linestyle=":", linewidth=0.8)
    accuracy_ax.set_ylabel(f"direction accuracy %\n(last {window} trades)")
    accuracy_ax.legend(loc="upper left", fontsize=8)
    for ax in (equity_ax, drawdown_ax, accuracy_ax):
        ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
