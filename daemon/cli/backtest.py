"""`autoretrainctl backtest`: does retraining help, on these candles, against simpler choices?

Replays the market candle by candle through the daemon's own components for each variant (see
`backtest.variants`), prints a table, and writes the whole report as JSON (`--json OUT`) and a PNG
(`--plot OUT.png`) when asked. It works without the daemon: `SYMBOL` reads the store, `--csv` a file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from autoretrain.daemon.cli.arguments import date_arg, symbol_arg, terminal_bar, timeframe_arg
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import NoInputError, UsageError
from autoretrain.daemon.store.database import Database

DEFAULT_MAX_RETRAINS = 200


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    backtest = commands.add_parser(
        "backtest", parents=[common], help="replay the market to compare retraining with simpler choices",
        description="Replay candles in market time through the daemon's own components (features, ONNX Runtime, "
                    "algorithms, vote, settlement, performance, policy, retrain job, registry) for each variant: "
                    "guide, policy, static, schedule, algorithms, hold. Prints a table; --json and --plot write the "
                    "whole report.")
    source = backtest.add_mutually_exclusive_group(required=True)
    source.add_argument("symbol", nargs="?", type=symbol_arg, metavar="SYMBOL", help="replay the stored candles")
    source.add_argument("--csv", type=Path, metavar="PATH", help="replay a timestamp,open,high,low,close,volume file")
    backtest.add_argument("--symbol-name", default=None, metavar="SYMBOL", type=symbol_arg,
                          help="with --csv: the symbol to call it (default BTC/USDT)")
    backtest.add_argument("--timeframe", type=timeframe_arg, required=True)
    backtest.add_argument("--from", dest="start", type=date_arg, metavar="DATE",
                          help="first candle replayed (default: training.days after the first candle)")
    backtest.add_argument("--to", dest="end", type=date_arg, metavar="DATE", help="last candle replayed")
    backtest.add_argument("--variants", default=None, metavar="LIST",
                          help="comma-separated (default all): guide, policy, static, schedule, algorithms, hold")
    backtest.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                          help="override a configuration key for this run (repeatable), "
                               "e.g. auto_training.min_win_rate_threshold=0.5")
    backtest.add_argument("--train-latency-candles", type=int, default=1, metavar="N",
                          help="candles a retrain takes: its model serves from the candle after (default 1)")
    backtest.add_argument("--max-retrains", type=int, default=DEFAULT_MAX_RETRAINS, metavar="N",
                          help=f"retrains per variant at most (default {DEFAULT_MAX_RETRAINS}); more are "
                               "counted as skipped")
    backtest.add_argument("--jobs", type=int, default=None, metavar="N",
                          help="replay this many variants at once (default: one per CPU, at most one per variant)")
    backtest.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    backtest.add_argument("--json", dest="json_out", type=Path, default=None, metavar="OUT",
                          help="write the report as JSON ('-': to stdout instead of the table)")
    backtest.add_argument("--plot", type=Path, default=None, metavar="OUT.png", help="write the charts as one PNG")
    backtest.set_defaults(handler=run_backtest_command)


def _candles(args: argparse.Namespace, config: Config) -> tuple[np.ndarray, str, str]:
    """(candles, symbol, where they come from)."""
    if args.csv is not None:
        from autoretrain.daemon.market.csv_file import read_candle_csv

        return read_candle_csv(args.csv, args.timeframe).candles, args.symbol_name or "BTC/USDT", str(args.csv)
    if not config.db_path.exists():
        raise NoInputError(f"no store at {config.db_path}: download or import candles first, or pass --csv PATH")
    with Database(config.db_path, create=False) as db:
        candles = db.candles.window(config.store_exchange, args.symbol, args.timeframe)
    if len(candles) == 0:
        raise NoInputError(f"no {args.symbol} {args.timeframe} candles stored for {config.store_exchange}")
    return candles, args.symbol, f"store {config.store_exchange}"


def run_backtest_command(args: argparse.Namespace, config: Config) -> int:
    from autoretrain.daemon.backtest.report import table
    from autoretrain.daemon.backtest.run import default_jobs, run_backtest
    from autoretrain.daemon.backtest.variants import parse_set, pick_variants

    if args.train_latency_candles < 0 or args.max_retrains < 0:
        raise UsageError("--train-latency-candles and --max-retrains must be 0 or more")
    if args.start is not None and args.end is not None and args.end < args.start:
        raise UsageError("--to is before --from")
    variants = pick_variants(args.variants)
    if args.jobs is not None and not 1 <= args.jobs <= 64:
        raise UsageError(f"--jobs must be between 1 and 64, not {args.jobs}")
    overrides = parse_set(args.overrides)
    candles, symbol, source = _candles(args, config)
    bar = terminal_bar(argparse.Namespace(json=args.json_out == Path("-")), total=0, unit="candle")

    def progress(count: int, total: int) -> None:
        bar.total = total
        bar.update(count)

    try:
        result = run_backtest(config, candles, symbol, args.timeframe, variants=variants, overrides=overrides,
                              start_ms=args.start, end_ms=args.end, train_latency=args.train_latency_candles,
                              max_retrains=args.max_retrains, seed=args.seed, source=source,
                              progress=progress if bar is not None else None,
                              jobs=args.jobs if args.jobs is not None else default_jobs(variants))
    finally:
        if bar is not None:
            bar.close()
    if args.plot is not None:
        from autoretrain.daemon.backtest.plot import plot

        data = result.report["data"]
        plot(result.runs, result.returns, args.plot,
             title=f"{data['symbol']} {data['timeframe']} {data['from'][:10]} to {data['to'][:10]}: equity net of fees",
             threshold=config.auto_training.min_win_rate_threshold, window=config.signals.performance_window)
    document = json.dumps(result.report, indent=2)
    if args.json_out == Path("-"):
        sys.stdout.write(document + "\n")
    else:
        if args.json_out is not None:
            args.json_out.write_text(document + "\n")
        print(table(result.report))
    return 0

