"""A whole backtest: the period and its history, every variant replayed on the same candles, the report.

The history (every candle before the period) is already closed when the period starts: it fills each
variant's store at once, so a first model can be trained at the first candle. The period starts, unless
given, `training.days` after the first candle, so that first model has its full training window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoretrain.daemon.backtest.metrics import block_length
from autoretrain.daemon.backtest.replay import Replay, VariantRun, hold_run
from autoretrain.daemon.backtest.report import build_report, returns_of
from autoretrain.daemon.backtest.variants import Variant, merge
from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import DataError
from autoretrain.daemon.foundation.timeframes import DAY_MS, iso, timeframe_ms

RESAMPLES = 2000


@dataclass
class Backtest:
    report: dict[str, Any]
    runs: list[VariantRun]
    returns: dict[str, np.ndarray]


def split_period(candles: np.ndarray, *, start_ms: int | None, end_ms: int | None,
                 days: float) -> tuple[np.ndarray, np.ndarray]:
    """(history before the period, the period): the candles of [start, end], the period at least one candle."""
    if len(candles) == 0:
        raise DataError("no candles to replay")
    start = start_ms if start_ms is not None else int(candles["ts"][0]) + int(days * DAY_MS)
    end = end_ms if end_ms is not None else int(candles["ts"][-1])
    inside = (candles["ts"] >= start) & (candles["ts"] <= end)
    if not inside.any():
        raise DataError(f"no candles between {iso(start)} and {iso(end)} (the data runs from "
                        f"{iso(int(candles['ts'][0]))} to {iso(int(candles['ts'][-1]))})")
    return candles[candles["ts"] < start], candles[inside]


def run_backtest(config: Config, candles: np.ndarray, symbol: str, timeframe: str, *, variants: list[Variant],
                 overrides: dict[str, Any], start_ms: int | None = None, end_ms: int | None = None,
                 train_latency: int = 1, max_retrains: int = 200, seed: int = 0, resamples: int = RESAMPLES,
                 source: str = "", progress: Callable[[int, int], None] | None = None) -> Backtest:
    """Replay every variant over the period; `overrides` (from --set) apply to all of them first."""
    base = merge(config.model_dump(), overrides)
    checked = build_config(base, env={}, origin="backtest --set")  # a bad --set is a configuration error
    history, period = split_period(candles, start_ms=start_ms, end_ms=end_ms, days=checked.training.days)
    step, horizon = timeframe_ms(timeframe), checked.model.horizon
    total = len(period) * len(variants)

    def advance(count: int) -> None:
        if progress is not None:
            progress(count, total)

    runs: list[VariantRun] = []
    returns: dict[str, np.ndarray] = {}
    for variant in variants:
        if not variant.replays:
            run, returns[variant.name] = hold_run(variant, period)
            advance(len(period))
        else:
            run = Replay(variant, merge(base, variant.overrides), symbol, timeframe, history, period,
                         train_latency=train_latency, max_retrains=max_retrains, progress=advance).run()
            returns[variant.name] = returns_of(run, horizon)
        runs.append(run)
    data = {"source": source, "symbol": symbol, "timeframe": timeframe, "candles": int(len(period)),
            "history_candles": int(len(history)), "from": iso(int(period["ts"][0])), "to": iso(int(period["ts"][-1])),
            "first_close": float(period["close"][0]), "last_close": float(period["close"][-1])}
    settings = {"variants": [variant.name for variant in variants], "overrides": overrides,
                "train_latency_candles": train_latency, "max_retrains_per_variant": max_retrains,
                "fee_bps": checked.signals.fee_bps, "horizon_candles": horizon}
    report = build_report(runs, returns, data=data, settings=settings, step_ms=step, horizon=horizon,
                          block=block_length(len(period)), resamples=resamples, seed=seed)
    return Backtest(report, runs, returns)
