"""Market-data commands: `download`, `import-csv`, `candles`. They work without the daemon."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from autoretrain.daemon.cli.arguments import (
    MAX_LISTED,
    add_json_flag,
    config_float,
    date_arg,
    emit,
    int_in,
    symbol_arg,
    terminal_bar,
    timeframe_arg,
)
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import UsageError
from autoretrain.daemon.foundation.timeframes import DAY_MS, iso, timeframe_ms
from autoretrain.daemon.market.backfill import BackfillReport, backfill
from autoretrain.daemon.market.sources import open_source
from autoretrain.daemon.store.candles import SeriesSummary
from autoretrain.daemon.store.database import Database

EX_INCOMPLETE = 1


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    download = commands.add_parser("download", parents=[common], help="backfill candles from the configured market",
                                   description="Backfill closed candles from the configured source (ccxt exchange "
                                               "or simulated market) into the store.")
    download.add_argument("symbol", type=symbol_arg, metavar="SYMBOL")
    download.add_argument("--timeframe", type=timeframe_arg, default=None, help="default: market.timeframe")
    span = download.add_mutually_exclusive_group(required=True)
    span.add_argument("--days", type=config_float("market.backfill_days"),
                      help="how many days back from the market's current time (within market.backfill_days' limits)")
    span.add_argument("--since", type=date_arg, metavar="ISO-DATE", help="first candle, e.g. 2024-01-01")
    download.add_argument("--until", type=date_arg, metavar="ISO-DATE", help="last candle (default: newest closed)")
    add_json_flag(download)
    download.set_defaults(handler=run_download)

    importer = commands.add_parser("import-csv", parents=[common], help="load a candle CSV file into the store",
                                   description="Load timestamp,open,high,low,close,volume (ms UTC; .csv or .csv.gz). "
                                               "The whole file is checked first: one bad row and nothing is stored.")
    importer.add_argument("path", metavar="PATH")
    importer.add_argument("--symbol", type=symbol_arg, required=True)
    importer.add_argument("--timeframe", type=timeframe_arg, required=True)
    importer.add_argument("--exchange", default=None, help="exchange key in the store (default: market.exchange)")
    add_json_flag(importer)
    importer.set_defaults(handler=run_import_csv)

    candles = commands.add_parser("candles", parents=[common], help="what the store holds for a symbol",
                                  description="Count, first and last candle, and gaps for one symbol/timeframe.")
    candles.add_argument("symbol", type=symbol_arg, metavar="SYMBOL")
    candles.add_argument("--timeframe", type=timeframe_arg, default=None, help="default: market.timeframe")
    candles.add_argument("--exchange", default=None, help="exchange key in the store (default: the configured source)")
    candles.add_argument("--gaps", type=int_in(0, MAX_LISTED), default=10, metavar="N",
                         help="list the N largest gaps (text output)")
    add_json_flag(candles)
    candles.set_defaults(handler=run_candles)


def _progress_bar(args: argparse.Namespace, timeframe: str) -> tuple[Callable[[int, int, int], None] | None,
                                                                       Callable[[], None]]:
    """Download progress on an interactive terminal; nothing when stderr is a pipe, a file or the journal."""
    bar = terminal_bar(args, total=0, unit="candle")
    if bar is None:
        return None, lambda: None
    step = timeframe_ms(timeframe)

    def update(cursor: int, start: int, end: int) -> None:
        bar.total = max(0, (end - start) // step + 1)
        bar.n = min(bar.total, max(0, (cursor - start) // step))
        bar.refresh()

    return update, bar.close


def _download_text(report: BackfillReport) -> str:
    lines = [f"{report.exchange} {report.symbol} {report.timeframe}: {report.fetched} candles fetched "
             f"({report.inserted} new, {report.updated} updated, {report.unchanged} unchanged) "
             f"from {iso(report.first_ts) or '-'} to {iso(report.last_ts) or '-'} in {report.seconds:.1f}s"]
    if report.rejected:
        lines.append(f"rejected {len(report.rejected)} invalid candles:")
        lines.extend(f"  {r.describe()}" for r in report.rejected[:20])
        if len(report.rejected) > 20:
            lines.append(f"  ... and {len(report.rejected) - 20} more")
    for hole in report.holes:
        lines.append(f"incomplete: hole {hole.describe()}")
    return "\n".join(lines)


def run_download(args: argparse.Namespace, config: Config) -> int:
    if config.market.source == "csv":
        raise UsageError("market.source is csv: load files with `autoretrainctl import-csv`")
    timeframe = args.timeframe or config.market.timeframe
    if args.since is not None and args.until is not None and args.until < args.since:
        raise UsageError(f"--until {iso(args.until)} is before --since {iso(args.since)}")
    source = open_source(config)
    try:
        if args.since is not None:
            since = args.since
        else:
            since = source.now_ms() - int(args.days * DAY_MS)
        update, finish = _progress_bar(args, timeframe)
        with Database(config.db_path) as db:
            try:
                report = backfill(source, db.candles, args.symbol, timeframe, since, args.until, progress=update)
            finally:
                finish()
    finally:
        source.close()
    emit(args, report.as_dict(), _download_text(report))
    if report.holes:
        print(f"autoretrainctl: error: download incomplete: {len(report.holes)} hole(s) the exchange did not fill",
              file=sys.stderr)
        return EX_INCOMPLETE
    return 0


def run_import_csv(args: argparse.Namespace, config: Config) -> int:
    from autoretrain.daemon.market.csv_file import read_candle_csv  # pandas: only this command pays for it

    exchange = args.exchange or config.market.exchange
    loaded = read_candle_csv(args.path, args.timeframe)
    with Database(config.db_path) as db:
        result = db.candles.upsert(exchange, args.symbol, args.timeframe, loaded.candles)
    first, last = int(loaded.candles["ts"][0]), int(loaded.candles["ts"][-1])
    payload: dict[str, Any] = {
        "path": str(args.path), "exchange": exchange, "symbol": args.symbol, "timeframe": args.timeframe,
        "rows": loaded.rows, "duplicates": loaded.duplicates, "candles": len(loaded.candles),
        "inserted": result.inserted, "updated": result.updated, "unchanged": result.unchanged,
        "first": iso(first), "last": iso(last),
    }
    text = (f"imported {len(loaded.candles)} candles into {exchange} {args.symbol} {args.timeframe} "
            f"({result.inserted} new, {result.updated} updated, {result.unchanged} unchanged"
            f"{f'; {loaded.duplicates} duplicate rows collapsed' if loaded.duplicates else ''}) "
            f"from {iso(first)} to {iso(last)}")
    emit(args, payload, text)
    return 0


def run_candles(args: argparse.Namespace, config: Config) -> int:
    timeframe = args.timeframe or config.market.timeframe
    exchange = args.exchange or config.store_exchange
    if config.db_path.exists():
        with Database(config.db_path) as db:
            summary = db.candles.summary(exchange, args.symbol, timeframe)
            gaps = db.candles.gaps(exchange, args.symbol, timeframe)
    else:
        summary, gaps = SeriesSummary(exchange, args.symbol, timeframe, 0, None, None), []
    missing = sum(g.missing for g in gaps)
    payload: dict[str, Any] = {
        "exchange": exchange, "symbol": args.symbol, "timeframe": timeframe, "count": summary.count,
        "first": iso(summary.first_ts), "last": iso(summary.last_ts), "gaps": len(gaps), "missing": missing,
        "gap_list": [g.as_dict() for g in gaps],
    }
    if summary.count == 0:
        text = f"{exchange} {args.symbol} {timeframe}: no candles stored"
    else:
        lines = [f"{exchange} {args.symbol} {timeframe}: {summary.count} candles from {iso(summary.first_ts)} "
                 f"to {iso(summary.last_ts)}",
                 f"gaps: {len(gaps)} ({missing} missing candles)"]
        for gap in sorted(gaps, key=lambda g: -g.missing)[: max(0, args.gaps)]:
            lines.append(f"  {gap.missing} missing after {iso(gap.after_ts)}, before {iso(gap.before_ts)}")
        text = "\n".join(lines)
    emit(args, payload, text)
    return 0
