"""A whole backtest: the period and its history, every variant replayed on the same candles, the report.

The history (every candle before the period) is already closed when the period starts: it fills each
variant's store at once, so a first model can be trained at the first candle. The period starts, unless
given, `training.days` after the first candle, so that first model has its full training window.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
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


def _replay(variant: Variant, config_data: dict[str, Any], symbol: str, timeframe: str, history: np.ndarray,
            period: np.ndarray, train_latency: int, max_retrains: int) -> tuple[VariantRun, np.ndarray]:
    """One variant, start to finish (what a worker process runs)."""
    logging.getLogger("autoretrain").setLevel(logging.WARNING)  # a worker's guide lines would interleave
    run = Replay(variant, config_data, symbol, timeframe, history, period, train_latency=train_latency,
                 max_retrains=max_retrains).run()
    return run, returns_of(run, int(config_data["model"]["horizon"]))


def default_jobs(variants: list[Variant]) -> int:
    """One worker per replayed variant, at most one per CPU."""
    return max(1, min(os.cpu_count() or 1, sum(variant.replays for variant in variants)))


def run_backtest(config: Config, candles: np.ndarray, symbol: str, timeframe: str, *, variants: list[Variant],
                 overrides: dict[str, Any], start_ms: int | None = None, end_ms: int | None = None,
                 train_latency: int = 1, max_retrains: int = 200, seed: int = 0, resamples: int = RESAMPLES,
                 source: str = "", progress: Callable[[int, int], None] | None = None, jobs: int = 1) -> Backtest:
    """Replay every variant over the period; `overrides` (from --set) apply to all of them first.

    `jobs` > 1 replays that many variants at once in worker processes (spawned: torch's thread pool does
    not survive a fork), each training with at most `training.threads` / its share of the CPUs; the
    result is the same as one after the other at the same thread count."""
    base = merge(config.model_dump(), overrides)
    checked = build_config(base, env={}, origin="backtest --set")  # a bad --set is a configuration error
    history, period = split_period(candles, start_ms=start_ms, end_ms=end_ms, days=checked.training.days)
    step, horizon = timeframe_ms(timeframe), checked.model.horizon
    total = len(period) * len(variants)
    threads = checked.training.threads if jobs <= 1 else \
        max(1, min(checked.training.threads, (os.cpu_count() or 1) // jobs))
    base = merge(base, {"training": {"threads": threads}})

    def advance(count: int) -> None:
        if progress is not None:
            progress(count, total)

    results: dict[str, tuple[VariantRun, np.ndarray]] = {}
    for variant in variants:
        if not variant.replays:
            results[variant.name] = hold_run(variant, period)
            advance(len(period))
    replayed = [variant for variant in variants if variant.replays]
    if jobs <= 1:
        for variant in replayed:
            run = Replay(variant, merge(base, variant.overrides), symbol, timeframe, history, period,
                         train_latency=train_latency, max_retrains=max_retrains, progress=advance).run()
            results[variant.name] = run, returns_of(run, horizon)
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_replay, variant, merge(base, variant.overrides), symbol, timeframe, history, period,
                                   train_latency, max_retrains): variant.name for variant in replayed}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                advance(len(period))
    runs = [results[variant.name][0] for variant in variants]
    returns = {variant.name: results[variant.name][1] for variant in variants}
    data = {"source": source, "symbol": symbol, "timeframe": timeframe, "candles": int(len(period)),
            "history_candles": int(len(history)), "from": iso(int(period["ts"][0])), "to": iso(int(period["ts"][-1])),
            "first_close": float(period["close"][0]), "last_close": float(period["close"][-1])}
    settings = {"variants": [variant.name for variant in variants], "overrides": overrides,
                "train_latency_candles": train_latency, "max_retrains_per_variant": max_retrains,
                "fee_bps": checked.signals.fee_bps, "horizon_candles": horizon, "jobs": jobs,
                "training_threads_per_variant": threads}
    report = build_report(runs, returns, data=data, settings=settings, step_ms=step, horizon=horizon,
                          block=block_length(len(period)), resamples=resamples, seed=seed)
    return Backtest(report, runs, returns)
