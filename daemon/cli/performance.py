"""Performance commands: `performance` and `signals`. They read the store, with or without a daemon.

`performance` shows the figures of daemon.performance and the retrain policy's current decision on
them (model state from the registry's promoted pointer, market time = the newest stored candle);
`signals` lists the newest signals with their outcomes.
"""

from __future__ import annotations

import argparse
from typing import Any

from autoretrain.daemon.cli.arguments import MAX_LISTED, add_json_flag, emit, int_in, symbol_arg, timeframe_arg
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import NoInputError
from autoretrain.daemon.foundation.formatting import pct, signed_pct
from autoretrain.daemon.foundation.timeframes import iso
from autoretrain.daemon.loop.assess import assess
from autoretrain.daemon.loop.watch import drift_reference
from autoretrain.daemon.signals.performance import Performance, Stats
from autoretrain.daemon.signals.policy import RetrainDecision
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.store.signals import SignalRecord
from autoretrain.models.registry import Registry


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this area's subcommands to the parser."""
    performance = commands.add_parser(
        "performance", parents=[common], help="win rate, PnL and the retrain decision for a symbol",
        description="Signals, win rate and PnL since the start, since the current model, over the rolling window "
                    "and per model version; the last retrain; and whether the policy would retrain now, and why.")
    performance.add_argument("symbol", type=symbol_arg, metavar="SYMBOL")
    performance.add_argument("--timeframe", type=timeframe_arg, default=None, help="default: market.timeframe")
    add_json_flag(performance)
    performance.set_defaults(handler=run_performance)

    signals = commands.add_parser("signals", parents=[common], help="recent signals and their outcomes",
                                  description="The newest signals of a symbol, newest first, with their outcomes "
                                              "(or 'pending' until the exit candle is stored).")
    signals.add_argument("symbol", type=symbol_arg, metavar="SYMBOL")
    signals.add_argument("--timeframe", type=timeframe_arg, default=None, help="default: market.timeframe")
    signals.add_argument("--last", type=int_in(1, MAX_LISTED), default=20, metavar="N",
                         help=f"how many (default 20, at most {MAX_LISTED})")
    add_json_flag(signals)
    signals.set_defaults(handler=run_signals)


def _open_series(config: Config, exchange: str, symbol: str, timeframe: str) -> Database:
    """The store, refusing a missing one and a series with neither candles nor signals (almost surely a typo)."""
    if not config.db_path.exists():
        raise NoInputError(f"no store at {config.db_path}: nothing recorded yet (start the daemon, or "
                           "`autoretrainctl download` / `import-csv` first)")
    db = Database(config.db_path, create=False)
    if not db.knows(exchange, symbol, timeframe):
        db.close()
        raise NoInputError(f"nothing stored for {exchange} {symbol} {timeframe}: no candles and no signals "
                           "(check the symbol and --timeframe; `autoretrainctl candles SYMBOL` shows what is stored)")
    return db


def _row(label: str, stats: Stats, note: str = "") -> str:
    return (f"  {label:<24} {stats.signals:>7} {stats.correct:>8} {pct(stats.win_rate):>9} "
            f"{signed_pct(stats.pnl_total_pct):>10} {signed_pct(stats.pnl_avg_pct, 3):>9}{note}")


def _performance_text(perf: Performance, decision: RetrainDecision, promoted: str | None) -> str:
    actions = perf.actions
    lines = [
        f"{perf.exchange} {perf.symbol} {perf.timeframe}: {perf.candles} candles, newest {iso(perf.last_candle_ts) or '-'}",
        f"model: {promoted or 'none (algorithms only)'} promoted; current window: "
        f"{perf.current_version or 'algorithms only'} since {iso(perf.current_since_ts) or 'the start'}",
        f"signals: {perf.recorded} recorded ({actions.get('BUY', 0)} BUY, {actions.get('SELL', 0)} SELL, "
        f"{actions.get('HOLD', 0)} HOLD), {perf.pending} awaiting their outcome",
        f"  {'settled trades':<24} {'signals':>7} {'correct':>8} {'win rate':>9} {'PnL total':>10} {'PnL avg':>9}",
        _row("since start", perf.since_start),
        _row("current model", perf.current),
        _row(f"last {perf.window}", perf.rolling),
    ]
    if perf.by_version:
        lines.append("  per model version:")
    for name, stats in perf.by_version.items():
        lines.append(_row(f"  {name}", stats))
    lines.append(_row("algorithms' own vote", perf.algorithms, "  (baseline)"))
    lines.append("the model's own record (its direction on every candle it predicted; its own trades net of fees):")
    for name, record in [("since it serves", perf.model_current), *perf.model_by_version.items()]:
        trades = record.trades
        lines.append(f"  {name:<24} direction {pct(record.accuracy):>6} over {record.predictions} predictions; "
                     f"{trades.n} own trades, PnL {signed_pct(trades.total if trades.n else None)}"
                     + (f" (t {trades.t:.2f})" if trades.t is not None else ""))
    gain = perf.vote_gain
    if gain.n:
        lines.append(f"  the model's gain to the vote: {gain.mean:+.3f}% a signal over {gain.n} signals"
                     + (f" (t {gain.t:.2f})" if gain.t is not None else "") + ("; benched" if perf.benched else ""))
    last = perf.retrain.last
    if last is None:
        lines.append("last retrain: never")
    else:
        when = iso(last.market_ts) or "unknown market time"
        lines.append(f"last retrain: {when} {last.status}{f' {last.version}' if last.version else ''} "
                     f"(trigger {last.trigger})")
    if perf.retrain.in_progress:
        lines.append("retrain: queued or running")
    verdict = f"retrain ({decision.trigger})" if decision.retrain else "no retrain"
    lines.append(f"needs retrain: {decision.retrain} — {verdict}: {decision.reason}")
    return "\n".join(lines)


def run_performance(args: argparse.Namespace, config: Config) -> int:
    timeframe = args.timeframe or config.market.timeframe
    exchange = config.store_exchange
    registry = Registry(config.models_dir)
    promoted = registry.promoted(args.symbol, timeframe)
    expected = drift_reference(registry.promoted_meta(args.symbol, timeframe)) if promoted is not None else None
    with _open_series(config, exchange, args.symbol, timeframe) as db:
        perf, decision = assess(db, config, exchange, args.symbol, timeframe, has_model=promoted is not None,
                                accuracy=expected)
    payload: dict[str, Any] = {**perf.as_dict(), "promoted_version": promoted, "decision": decision.as_dict()}
    emit(args, payload, _performance_text(perf, decision, promoted))
    return 0


def _signal_line(record: SignalRecord) -> str:
    signal, outcome = record.signal, record.outcome
    model = signal.model_version or "algorithms"
    line = (f"{iso(signal.candle_ts)}  {signal.action:<4}  confidence {pct(signal.confidence):>6}  "
            f"price {signal.price:.8g}  {model}")
    if outcome is None:
        return line + "  | pending"
    line += f"  | exit {outcome.exit_price:.8g} at {iso(outcome.exit_ts)}  move {signed_pct(outcome.return_pct)}"
    if outcome.correct is not None:
        line += f"  {'correct' if outcome.correct else 'wrong'}  PnL {signed_pct(outcome.pnl_pct)}"
    return line


def run_signals(args: argparse.Namespace, config: Config) -> int:
    timeframe = args.timeframe or config.market.timeframe
    exchange = config.store_exchange
    with _open_series(config, exchange, args.symbol, timeframe) as db:
        records = db.signals.recent(exchange, args.symbol, timeframe, args.last)
    payload = {"exchange": exchange, "symbol": args.symbol, "timeframe": timeframe,
               "signals": [record.as_dict() for record in records]}
    header = f"{exchange} {args.symbol} {timeframe}: "
    text = (header + f"newest {len(records)} signals, newest first\n" + "\n".join(map(_signal_line, records))
            if records else header + "no signals recorded yet")
    emit(args, payload, text)
    return 0
