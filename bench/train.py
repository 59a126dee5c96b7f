"""Benchmark: one full retrain on the real Binance BTC/USDT 1h candles, printed as JSON.

The job is exactly what `autoretrainctl train BTC/USDT` runs (processes.retrain_job.run_training: data,
features, training, ONNX export, parity, evaluation, registration) on the newest `--days` days of
`../shared/data/binance_BTCUSDT_1h_2018-2026.csv.gz`, with `--epochs` epochs and early stopping off
(patience larger than the epoch count), in a temporary state directory.

Several configurations run one after the other so the chosen defaults can be compared with slower
ones (bigger batches or windows, more threads, a bigger network) on wall time AND validation accuracy:

    .venv/bin/python bench/train.py                      # every variant
    .venv/bin/python bench/train.py --variants default   # just the shipped configuration
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoretrain.daemon.foundation.config import build_config  # noqa: E402
from autoretrain.daemon.market.csv_file import read_candle_csv  # noqa: E402
from autoretrain.daemon.store.database import Database  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "binance_BTCUSDT_1h_2018-2026.csv.gz"
SYMBOL = "BTC/USDT"

# name -> (model overrides, training overrides). "default" is config.yaml's configuration.
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "default": ({}, {}),
    "threads_1": ({}, {"threads": 1}),
    "batch_32": ({}, {"batch_size": 32}),
    "batch_512": ({}, {"batch_size": 512}),
    "seq_64": ({"seq_len": 64}, {}),
    "reference_slow": ({"seq_len": 64, "hidden_size": 64, "num_layers": 2}, {"batch_size": 32}),
}


def _run_variant(name: str, candles: Any, days: float, epochs: int) -> dict[str, Any]:
    from autoretrain.daemon.processes.retrain_job import run_training

    model, training = VARIANTS[name]
    with tempfile.TemporaryDirectory(prefix="bench-train-") as state:
        config = build_config({
            "paths": {"state_dir": state},
            "model": model,
            "training": {"days": days, "epochs": epochs, "patience": epochs + 1, "device": "cpu", **training},
        }, env={})
        with Database(config.db_path) as db:
            db.candles.upsert(config.store_exchange, SYMBOL, "1h", candles)
        started = time.perf_counter()
        outcome = run_training(config, SYMBOL, "1h", promote="never", trigger="bench")
        wall = time.perf_counter() - started
    history_accuracy = outcome.training.get("validation_accuracy")
    return {
        "variant": name, "model": {**config.model.model_dump()},
        "training": {k: getattr(config.training, k) for k in ("batch_size", "threads", "learning_rate", "epochs")},
        "wall_s": round(wall, 2), "durations_s": outcome.durations,
        "epochs_run": outcome.training.get("epochs_run"), "best_epoch": outcome.training.get("best_epoch"),
        "best_val_accuracy": history_accuracy,
        "train_samples": outcome.training.get("train_samples"),
        "validation_samples": outcome.training.get("validation_samples"),
        "eval_accuracy": outcome.metrics["challenger"]["accuracy"],
        "baseline_accuracy": outcome.metrics["baseline"]["accuracy"],
        "eval_samples": outcome.metrics["challenger"]["samples"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=180)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    args = parser.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants: {', '.join(unknown)}")
    if not DATA.is_file():
        print(json.dumps({"skipped": f"real data not available at {DATA}"}))
        return 0
    logging.basicConfig(level=logging.WARNING)
    loaded = read_candle_csv(DATA, "1h").candles
    runs = [_run_variant(name, loaded, args.days, args.epochs) for name in names]
    default = next((r for r in runs if r["variant"] == "default"), None)
    report = {
        "benchmark": "train", "data": DATA.name, "symbol": SYMBOL, "timeframe": "1h", "days": args.days,
        "epochs": args.epochs, "early_stopping": False, "cpus": os.cpu_count(), "python": platform.python_version(),
        "target_s": 60, "runs": runs,
        "default_wall_s": default["wall_s"] if default else None,
        "default_within_target": bool(default and default["wall_s"] <= 60),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
