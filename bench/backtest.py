"""Benchmark: the full walk-forward backtest of 2022-2024 on the real Binance BTC/USDT 1h candles, as JSON.

Every variant (guide, policy, guide_promotion, win_rate_trigger, no_warm_start, static, schedule,
algorithms, hold) on the shipped configuration
(config.yaml's defaults), exactly what `autoretrainctl backtest --csv ... --timeframe 1h --from 2022-01-01
--to 2024-12-31` runs. Prints wall time, the share of it spent training, and candles per second outside
training, per variant and in all; writes the report and the PNG beside (--out, default bench/results/).

    .venv/bin/python bench/backtest.py                       # 1h, 2022-2024, target: under 10 minutes
    .venv/bin/python bench/backtest.py --from 2024-01-01 --to 2024-03-31
    .venv/bin/python bench/backtest.py --market simulated    # the embedded market, 12,000 candles
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoretrain.daemon.backtest.plot import plot  # noqa: E402
from autoretrain.daemon.backtest.report import table  # noqa: E402
from autoretrain.daemon.backtest.run import default_jobs, run_backtest  # noqa: E402
from autoretrain.daemon.backtest.variants import pick_variants  # noqa: E402
from autoretrain.daemon.foundation.config import build_config  # noqa: E402
from autoretrain.daemon.foundation.timeframes import parse_iso_ms  # noqa: E402
from autoretrain.daemon.market.csv_file import read_candle_csv  # noqa: E402
from autoretrain.daemon.market.simulated import SimulatedSeries, regimes_from_config  # noqa: E402

DATA = {"1h": ROOT.parent / "shared" / "data" / "binance_BTCUSDT_1h_2018-2026.csv.gz",
        "5m": ROOT.parent / "shared" / "data" / "binance_BTCUSDT_5m_2024-12_2026-02.csv.gz"}
TARGET_S = 600
SIMULATED_CANDLES = 12_000  # 4 momentum / mean-reversion switches after the first 180 days of history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeframe", default="1h", choices=sorted(DATA))
    parser.add_argument("--from", dest="start", default="2022-01-01")
    parser.add_argument("--to", dest="end", default="2024-12-31T23:59:59Z")
    parser.add_argument("--variants", default=None)
    parser.add_argument("--market", choices=("btc", "simulated"), default="btc",
                        help="btc: the real candles; simulated: the embedded market of config.yaml (seed 7), "
                             "SIMULATED_CANDLES 1h candles from its start")
    parser.add_argument("--jobs", type=int, default=None, help="variants replayed at once (default: one per CPU)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    config = build_config({"paths": {"state_dir": str(args.out / "state")}}, env={})
    if args.market == "btc":
        candles, symbol, source = read_candle_csv(DATA[args.timeframe], args.timeframe).candles, "BTC/USDT", \
            DATA[args.timeframe].name
        start, end = parse_iso_ms(args.start), parse_iso_ms(args.end)
        stem = f"backtest-btc-{args.timeframe}-{args.start[:4]}-{args.end[:4]}"
    else:
        simulated = config.market.simulated
        series = SimulatedSeries(simulated.seed, "SIM/USDT", "1h", parse_iso_ms(simulated.start), simulated.start_price,
                                 regimes_from_config(simulated))
        candles, symbol, source = series.candles(0, SIMULATED_CANDLES - 1), "SIM/USDT", \
            f"simulated market, seed {simulated.seed}, regimes of config.yaml"
        start = end = None
        args.timeframe, stem = "1h", "backtest-simulated-1h"
    variants = pick_variants(args.variants)
    started = time.perf_counter()
    result = run_backtest(config, candles, symbol, args.timeframe, variants=variants, overrides={}, start_ms=start,
                          end_ms=end, source=source, jobs=args.jobs or default_jobs(variants))
    wall = time.perf_counter() - started
    (args.out / f"{stem}.json").write_text(json.dumps(result.report, indent=2) + "\n")
    data = result.report["data"]
    plot(result.runs, result.returns, args.out / f"{stem}.png",
         title=f"{symbol} {args.timeframe} {data['from'][:10]} to {data['to'][:10]}: equity net of fees "
               f"(config.yaml defaults)", threshold=config.auto_training.min_win_rate_threshold,
         window=config.signals.performance_window)
    (args.out / f"{stem}.txt").write_text(table(result.report) + "\n")
    training = sum(run.training_seconds for run in result.runs)
    worker = sum(run.seconds for run in result.runs)  # with --jobs > 1, more than the wall time
    replayed = sum(len(run.candle_ts) for run in result.runs if run.variant.replays)
    variants = {name: v["timing"] | {"retrains": sum(v["retrains"]["fired_by_trigger"].values())}
                for name, v in result.report["variants"].items()}
    json.dump({"benchmark": "backtest", "data": data, "cpus": os.cpu_count(), "python": platform.python_version(),
               "jobs": result.report["settings"]["jobs"], "wall_s": round(wall, 1), "worker_s": round(worker, 1),
               "training_s": round(training, 1), "training_share_of_worker_time": round(training / worker, 3) if worker else None,
               "candles_per_s_outside_training": round(replayed / max(1e-9, worker - training), 1),
               "target_s": TARGET_S, "within_target": wall <= TARGET_S, "variants": variants,
               "report": str(args.out / f"{stem}.json")}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
