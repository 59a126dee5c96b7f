"""`autoretrainctl report [SYMBOL] [--since DATE] --plot OUT.png`: the dashboard's charts of a symbol as one PNG.

Read from the store and the registry, with or without a running daemon (WAL: a reader beside the writers),
up to the newest closed candle at the market's time, as `status` reads it; drawn by `views.report` from
`views.history`, the data the dashboard draws. The title carries the figures `status` shows (settled trades,
win rate, PnL net of fees since the start). One line on stdout says what was written (`--json`: a document
with the pixel box of each panel).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from autoretrain.daemon.cli.arguments import add_json_flag, date_arg, emit, symbol_arg
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import EX_CANTCREAT, AutoretrainError, NoInputError, UsageError
from autoretrain.daemon.foundation.formatting import pct, signed_pct
from autoretrain.daemon.foundation.timeframes import iso
from autoretrain.daemon.market.market_time import MarketTime
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.supervisor.symbol_state import read_symbol_state
from autoretrain.daemon.views.history import symbol_history
from autoretrain.daemon.views.report import PANELS, headline_title, render
from autoretrain.models.durable import write_atomic
from autoretrain.models.registry import Registry, RegistryError


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    report = commands.add_parser(
        "report", parents=[common], help="the dashboard's charts of a symbol as one PNG",
        description="Price with every BUY and SELL, the rolling win rate beside the retrain threshold, the "
                    "cumulative PnL net of fees, and the model timeline (versions, retrains, promotions, "
                    "rollbacks, benching), read from the store and the registry, with or without the daemon.")
    report.add_argument("symbol", nargs="?", type=symbol_arg, metavar="SYMBOL",
                        help="a configured symbol (default: the first of market.symbols)")
    report.add_argument("--since", type=date_arg, default=None, metavar="DATE",
                        help="first candle drawn (default: the newest dashboard.history_candles)")
    report.add_argument("--plot", type=Path, required=True, metavar="OUT.png", help="the PNG to write")
    add_json_flag(report)
    report.set_defaults(handler=run_report)


def _headline(config: Config, db: Database, symbol: str, until_ms: int | None) -> str | None:
    """The figures `status` shows for the symbol (None when the registry cannot say which model is promoted)."""
    try:
        state = read_symbol_state(config, db, Registry(config.models_dir), symbol, serving_version=None,
                                  serving_known=False, training=None, closed_until_ms=until_ms)
    except RegistryError:
        return None
    return (f"{state.signals} settled trades, PnL {signed_pct(state.pnl_pct)} net of fees since the start | "
            f"win rate {pct(state.win_rate, '-')} over {state.win_rate_scope} | "
            f"promoted: {state.promoted_version or 'none'}")


def _cannot_write(path: Path, reason: str) -> AutoretrainError:
    return AutoretrainError(f"cannot write {path}: {reason}", exit_code=EX_CANTCREAT)


def run_report(args: argparse.Namespace, config: Config) -> int:
    symbols = config.market.symbols
    symbol = args.symbol or symbols[0]
    if symbol not in symbols:
        raise UsageError(f"{symbol!r} is not a configured symbol (configured: {', '.join(symbols)})")
    out: Path = args.plot
    if not out.parent.is_dir():
        raise _cannot_write(out, f"no directory {out.parent}")
    if not config.db_path.exists():
        raise NoInputError(f"no store at {config.db_path}: nothing recorded yet (start the daemon, or "
                           "`autoretrainctl download` / `import-csv` first)")
    until_ms = MarketTime(config).closed_until_ms()
    with Database(config.db_path, create=False) as db:
        history = symbol_history(db, config, symbol, until_ms=until_ms, since_ms=args.since)
        if not history["candles"]["ts"]:
            raise NoInputError(f"no candles for {symbol} in the store yet ({config.store_exchange} "
                               f"{config.market.timeframe}{f' since {iso(args.since)}' if args.since else ''})")
        headline = _headline(config, db, symbol, until_ms)
    rendered = render(history, title=headline_title(history, headline))
    try:
        write_atomic(out, rendered.png)
    except OSError as exc:
        raise _cannot_write(out, exc.strerror or str(exc)) from None
    ts = history["candles"]["ts"]
    payload: dict[str, Any] = {
        "path": str(out), "bytes": len(rendered.png), "width": rendered.width, "height": rendered.height,
        "symbol": symbol, "timeframe": history["timeframe"], "candles": len(ts), "first": iso(ts[0]),
        "last": iso(ts[-1]), "signals": len(history["markers"]), "events": len(history["events"]),
        "panels": [{"name": name, "box": list(rendered.panels[name])} for name in PANELS],
    }
    text = (f"wrote {out} ({rendered.width}x{rendered.height} px, {len(PANELS)} panels: {', '.join(PANELS)}; "
            f"{symbol} {history['timeframe']}, {len(ts)} candle{'s' if len(ts) != 1 else ''} {iso(ts[0])} to {iso(ts[-1])})")
    emit(args, payload, text)
    return 0
