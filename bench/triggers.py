"""Benchmark: the retrain triggers' error rates, by seeded simulation, printed as JSON (docs/triggers.md).

Two parts, the same triggers in both (the shipped settings of config.yaml):
- `bernoulli`: a model right with a fixed probability on every candle (stationary: false alarms per
  1,000 candles), or one whose accuracy falls at a switch (mean candles from the switch to the first
  alarm). Many runs, so the rates are tight.
- `simulated_market`: real models on the embedded simulated market. For each seed a model is trained
  (the real retrain job, tiny network) on 2,000 candles of a momentum regime; its own calls and net
  trades are then replayed on 20,000 further candles of the same regime (stationary) and on 3,000
  candles after a switch to mean reversion (after 1,000 more of momentum as warm-up). The drift
  trigger expects the one-sided 95 % lower bound of the accuracy the model's evaluation measured, as
  the daemon does (`--point-estimate`: the measured accuracy itself, to show why not).

    .venv/bin/python bench/triggers.py [--seeds 5] [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoretrain.daemon.foundation.config import build_config  # noqa: E402
from autoretrain.daemon.foundation.config_schema import Config  # noqa: E402
from autoretrain.daemon.market.simulated import Regime, SimulatedSeries  # noqa: E402
from autoretrain.daemon.signals.trigger_simulation import (  # noqa: E402
    DriftTrigger,
    MoneyTrigger,
    Trigger,
    WinRateTrigger,
    detection_delay,
    false_alarms_per_1000,
)
from autoretrain.daemon.store.database import Database  # noqa: E402
from autoretrain.models import dataset as ds  # noqa: E402
from autoretrain.models.features import compute_features  # noqa: E402
from autoretrain.models.runtime import ModelRunner  # noqa: E402

SYMBOL, TIMEFRAME, START_MS = "SIM/USDT", "1h", 1_704_067_200_000
TRAIN, STATIONARY, WARMUP, AFTER = 2000, 20_000, 1000, 3000


def triggers(config: Config, accuracy: float, samples: int | None = None) -> dict[str, Callable[[], Trigger]]:
    """Each trigger as config.yaml ships it; `accuracy` is what the model's evaluation measured on `samples`
    (given, the drift test expects its 95 % lower bound, as the daemon does)."""
    at = config.auto_training
    return {
        "guide (win rate since the last retrain < 45 %, >= 20 calls)":
            lambda: WinRateTrigger(at.min_win_rate_threshold, at.min_signals),
        f"rolling win rate (newest {at.rolling_window} calls < 45 %)":
            lambda: WinRateTrigger(at.min_win_rate_threshold, at.min_signals, at.rolling_window),
        f"drift (CUSUM, shift {at.drift_shift:g}, h {at.drift_threshold:g}) [default]":
            lambda: DriftTrigger(accuracy, at.drift_shift, at.drift_threshold, samples),
        f"losing_money (own trades net of fees, t <= {at.money_t:g}) [default]":
            lambda: MoneyTrigger(at.min_signals, at.money_t),
    }


def bernoulli(config: Config, runs: int) -> dict[str, Any]:
    stationary = {}
    for accuracy in (0.64, 0.55, 0.52, 0.50):
        stationary[f"{accuracy:.2f}"] = {
            name: round(false_alarms_per_1000(make, accuracy, candles=5000, runs=runs, seed=1), 4)
            for name, make in triggers(config, accuracy).items() if not name.startswith("losing_money")}
    delays = {}
    for before, after in ((0.64, 0.36), (0.64, 0.50), (0.55, 0.45)):
        delays[f"{before:.2f}->{after:.2f}"] = {
            name: round(detection_delay(make, before, after, warmup=500, horizon=3000, runs=runs, seed=2), 1)
            for name, make in triggers(config, before).items() if not name.startswith("losing_money")}
    return {"false_alarms_per_1000_candles": stationary, "mean_detection_delay_candles": delays,
            "runs": runs, "note": "losing_money needs trade returns: see simulated_market"}


def _series(seed: int, momentum: int, after: int) -> SimulatedSeries:
    regimes = [Regime("momentum", momentum, 0.5, 0.01)] + ([Regime("mean_reversion", after, -0.5, 0.01)] if after else [])
    return SimulatedSeries(seed, SYMBOL, TIMEFRAME, START_MS, 100.0, regimes)


def _stream(runner: ModelRunner, candles: np.ndarray, first: int, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """(right per candle, net % PnL per candle or NaN where the signal would not trade) from candle `first` on."""
    features = compute_features(candles)
    ends = ds.valid_ends(features, candles["ts"], 3_600_000, runner.seq_len, runner.horizon)
    ends = ends[ends >= first]
    probability = runner.probabilities(candles, ends, runner.normaliser.apply(features))
    up = probability > 0.5
    right = up == ds.labels(candles["close"], ends, runner.horizon).astype(bool)
    move = ds.future_returns(candles["close"], ends, runner.horizon)
    trades = np.maximum(probability, 1 - probability) >= config.signals.confidence_threshold
    pnl = np.where(trades, 100 * (np.where(up, 1.0, -1.0) * move - 2 * config.signals.fee_bps / 10_000), np.nan)
    return right, pnl


def _alarms(make: Callable[[], Trigger], right: np.ndarray, pnl: np.ndarray) -> list[int]:
    trigger, alarms = make(), []
    for index, (r, p) in enumerate(zip(right, pnl, strict=True)):
        if trigger.update(bool(r), None if np.isnan(p) else float(p)):
            alarms.append(index)
    return alarms


def simulated_market(seeds: Sequence[int], *, bound: bool) -> dict[str, Any]:
    from autoretrain.daemon.processes.retrain_job import run_training

    per_seed, false_alarms, delays = [], {}, {}
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="bench-triggers-") as state:
            config = build_config({
                "paths": {"state_dir": state}, "market": {"source": "simulated"},
                "model": {"seq_len": 16, "hidden_size": 16},
                "training": {"epochs": 6, "days": 3650, "min_candles": 500, "device": "cpu", "batch_size": 64,
                             "learning_rate": 0.005},
                "promotion": {"eval_candles": 400, "min_eval_samples": 100}}, env={})
            long_run = _series(seed, TRAIN + STATIONARY, 0).candles(0, TRAIN + STATIONARY - 1)
            with Database(config.db_path) as db:
                db.candles.upsert(config.store_exchange, SYMBOL, TIMEFRAME, long_run[:TRAIN])
            outcome = run_training(config, SYMBOL, TIMEFRAME, promote="always", trigger="bench")
            runner = ModelRunner.load(Path(config.models_dir) / "SIM_USDT" / TIMEFRAME / str(outcome.version))
            accuracy = float(outcome.metrics["challenger"]["accuracy"])
            right, pnl = _stream(runner, long_run, TRAIN, config)
            switch = _series(seed, TRAIN + WARMUP, AFTER).candles(0, TRAIN + WARMUP + AFTER - 1)
            right_s, pnl_s = _stream(runner, switch, TRAIN, config)
            at_switch = int(np.sum(np.arange(len(right_s)) < WARMUP))
            row = {"seed": seed, "evaluation_accuracy": round(accuracy, 4),
                   "stationary_accuracy": round(float(right.mean()), 4),
                   "after_switch_accuracy": round(float(right_s[at_switch:].mean()), 4),
                   "stationary_net_pnl_per_trade_pct": round(float(np.nanmean(pnl)), 4)}
            per_seed.append(row)
            samples = int(outcome.metrics["challenger"]["samples"]) if bound else None
            for name, make in triggers(config, accuracy, samples).items():
                false_alarms.setdefault(name, []).append(len(_alarms(make, right, pnl)))
                alarms = [a for a in _alarms(make, right_s, pnl_s) if a >= at_switch]
                delays.setdefault(name, []).append(alarms[0] - at_switch + 1 if alarms else AFTER)
    candles = len(per_seed) * len(right)
    return {
        "drift_expects": "the evaluation accuracy's one-sided 95 % lower bound" if bound else "the evaluation accuracy",
        "models": per_seed,
        "false_alarms_per_1000_candles": {name: round(1000 * sum(v) / candles, 4) for name, v in false_alarms.items()},
        "false_alarms_total": {name: sum(v) for name, v in false_alarms.items()},
        "stationary_candles": candles,
        "mean_detection_delay_candles": {name: round(float(np.mean(v)), 1) for name, v in delays.items()},
        "detection_delays": delays, "delay_cap": AFTER,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--point-estimate", action="store_true", help="the drift test expects the measured accuracy")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    config = build_config({"market": {"source": "simulated"}}, env={})
    started = time.perf_counter()
    report = {"benchmark": "triggers", "machine": platform.machine(), "python": platform.python_version(),
              "settings": config.auto_training.model_dump(include={"min_win_rate_threshold", "min_signals", "rolling_window",
                                                                   "drift_shift", "drift_threshold", "money_t"}),
              "bernoulli": bernoulli(config, args.runs),
              "simulated_market": simulated_market(range(1, args.seeds + 1), bound=not args.point_estimate)}
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
