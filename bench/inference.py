"""Benchmark: onnxruntime (models.runtime.ModelRunner) vs torch eager for the model, printed as JSON.

A real version folder is produced by the training pipeline (a short job on the simulated market), so
onnxruntime runs exactly what the daemon loads: the exported graph with 1 intra-op thread and no
spinning. Torch eager runs the same architecture (same shapes, same work per call) with the same
number of threads (`--threads`, default 1 as in the inference process). Reported: p50/p99/mean
latency per call at batch 1 and 64, the full `predict(candles)` path (features + normalisation +
onnxruntime), and the memory (RSS) and import time of a fresh process that loads the runtime vs one
that imports torch.

    .venv/bin/python bench/inference.py
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoretrain.daemon.foundation.config import build_config  # noqa: E402
from autoretrain.daemon.market.simulated import Regime, SimulatedSeries  # noqa: E402
from autoretrain.daemon.store.database import Database  # noqa: E402
from autoretrain.models.features import N_FEATURES  # noqa: E402

SYMBOL = "SIM/USDT"


def _series() -> SimulatedSeries:
    return SimulatedSeries(7, SYMBOL, "1h", 1_704_067_200_000, 100.0, [Regime("momentum", 5000, 0.5, 0.01)])


def _trained_version(state: Path) -> Path:
    from autoretrain.daemon.processes.retrain_job import run_training

    config = build_config({"paths": {"state_dir": str(state)}, "market": {"source": "simulated"},
                           "training": {"epochs": 2, "device": "cpu"}}, env={})
    with Database(config.db_path) as db:
        db.candles.upsert("simulated", SYMBOL, "1h", _series().candles(0, 2999))
    outcome = run_training(config, SYMBOL, "1h", promote="always", trigger="bench")
    return config.models_dir / "SIM_USDT" / "1h" / str(outcome.version)


def _latency(call: Callable[[], object], iterations: int) -> dict[str, float]:
    for _ in range(min(50, iterations)):
        call()
    samples = np.empty(iterations)
    for i in range(iterations):
        started = time.perf_counter_ns()
        call()
        samples[i] = time.perf_counter_ns() - started
    micros = samples / 1000
    return {"p50_us": round(float(np.percentile(micros, 50)), 1), "p99_us": round(float(np.percentile(micros, 99)), 1),
            "mean_us": round(float(micros.mean()), 1), "iterations": iterations}


_RSS_RUNTIME = textwrap.dedent("""
    import json, sys, time
    started = time.perf_counter()
    import numpy as np
    from autoretrain.models.features import N_FEATURES
    from autoretrain.models.runtime import ModelRunner
    imported = time.perf_counter() - started
    runner = ModelRunner.load(sys.argv[1])
    runner.predict_windows(np.zeros((64, runner.seq_len, N_FEATURES), dtype=np.float32))
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith(("VmRSS", "VmHWM")))
    print(json.dumps({"import_s": imported, "rss_kib": int(status["VmRSS"].split()[0]),
                      "peak_rss_kib": int(status["VmHWM"].split()[0]), "torch_loaded": "torch" in sys.modules}))
""")

_RSS_TORCH = textwrap.dedent("""
    import json, sys, time
    started = time.perf_counter()
    import torch
    from autoretrain.models.features import N_FEATURES
    from autoretrain.models.lstm import DirectionLSTM
    imported = time.perf_counter() - started
    torch.set_num_threads(1)
    seq_len, hidden, layers = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    network = DirectionLSTM(N_FEATURES, hidden, layers).eval()
    with torch.inference_mode():
        network(torch.zeros(64, seq_len, N_FEATURES))
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith(("VmRSS", "VmHWM")))
    print(json.dumps({"import_s": imported, "rss_kib": int(status["VmRSS"].split()[0]),
                      "peak_rss_kib": int(status["VmHWM"].split()[0])}))
""")


def _fresh_process(script: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000, help="calls per batch-1 measurement (batch 64: 1/4)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of both engines (inference: 1)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from autoretrain.models.lstm import DirectionLSTM
    from autoretrain.models.runtime import ModelRunner

    with tempfile.TemporaryDirectory(prefix="bench-inference-") as state:
        version = _trained_version(Path(state) / "state")
        runner = ModelRunner.load(version, threads=args.threads)
        meta = runner.meta["hyperparameters"]
        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        network = DirectionLSTM(N_FEATURES, meta["hidden_size"], meta["num_layers"]).eval()
        rng = np.random.default_rng(0)
        latency: dict[str, Any] = {}
        for batch in (1, 64):
            iterations = args.iterations if batch == 1 else max(50, args.iterations // 4)
            x = rng.normal(size=(batch, runner.seq_len, N_FEATURES)).astype(np.float32)
            tensor = torch.from_numpy(x)

            def eager(tensor: torch.Tensor = tensor) -> object:
                with torch.inference_mode():
                    return torch.sigmoid(network(tensor)).numpy()

            ort = _latency(lambda x=x: runner.predict_windows(x), iterations)
            eager_stats = _latency(eager, iterations)
            # LSTM multiply-adds per call: 4 gates x hidden x (features + hidden) per step, sample and layer
            hidden = meta["hidden_size"]
            flops = 2 * batch * runner.seq_len * 4 * hidden * (N_FEATURES + hidden) * meta["num_layers"]
            for stats in (ort, eager_stats):
                stats["gflop_per_s"] = round(flops / (stats["p50_us"] * 1000), 1)
            latency[f"batch_{batch}"] = {"onnxruntime": ort, "torch_eager": eager_stats, "lstm_mflop": flops / 1e6,
                                         "ort_p50_over_torch_p50": round(ort["p50_us"] / eager_stats["p50_us"], 3)}
        candles = _series().candles(3000, 3000 + runner.required_candles - 1)
        latency["predict_from_candles"] = _latency(lambda: runner.predict(candles), max(50, args.iterations // 4))
        runtime_rss = _fresh_process(_RSS_RUNTIME, str(version))
        torch_rss = _fresh_process(_RSS_TORCH, str(runner.seq_len), str(meta["hidden_size"]), str(meta["num_layers"]))

    report = {
        "benchmark": "inference", "cpus": os.cpu_count(), "threads": args.threads,
        "model": {"seq_len": runner.seq_len, "hidden_size": meta["hidden_size"], "num_layers": meta["num_layers"],
                  "features": N_FEATURES},
        "latency": latency,
        "process": {"runtime_only": runtime_rss, "torch": torch_rss,
                    "rss_saved_mib": round((torch_rss["rss_kib"] - runtime_rss["rss_kib"]) / 1024, 1)},
        "target": "onnxruntime p50 <= 0.5 x torch eager p50",
        "target_met": all(latency[b]["ort_p50_over_torch_p50"] <= 0.5 for b in ("batch_1", "batch_64")),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
