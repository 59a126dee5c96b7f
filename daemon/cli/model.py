"""Model commands: `train`, `models`, `promote`, `rollback`. They work without the daemon.

`train` runs the whole retrain job in this process (the guide's `scripts/train_model.py`); the
others read or move the registry's promoted-version pointer, which a running daemon watches and
hot-swaps on. Heavy imports (torch, onnxruntime) happen inside the handlers, so `autoretrainctl
download` and friends stay fast.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from autoretrain.daemon.cli.arguments import (
    add_json_flag,
    config_float,
    config_int,
    emit,
    symbol_arg,
    timeframe_arg,
    version_arg,
)
from autoretrain.daemon.cli.live import DaemonNotRunning, request
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.formatting import pct, signed_pct
from autoretrain.models import promotion
from autoretrain.models.registry import Registry


def _symbol_command(commands: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str,
                    handler: Callable[[argparse.Namespace, Config], int], help_text: str,
                    description: str) -> argparse.ArgumentParser:
    """A subcommand taking SYMBOL, --timeframe and --json, as all four model commands do."""
    parser = commands.add_parser(name, parents=[common], help=help_text, description=description)
    parser.add_argument("symbol", type=symbol_arg, metavar="SYMBOL")
    parser.add_argument("--timeframe", type=timeframe_arg, default=None, help="default: market.timeframe")
    add_json_flag(parser)
    parser.set_defaults(handler=handler)
    return parser


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this area's subcommands to the parser."""
    train = _symbol_command(commands, common, "train", run_train, "train, evaluate and (maybe) promote a model",
                            "Train an LSTM on the stored candles, export it to ONNX, check parity, score it against "
                            "the promoted model and the majority baseline on recent candles neither has seen, "
                            "register it and promote it per --promote.")
    train.add_argument("--epochs", type=config_int("training.epochs"), default=None, help="default: training.epochs")
    train.add_argument("--days", type=config_float("training.days"), default=None,
                       help="days of candles to learn from (default: training.days)")
    train.add_argument("--promote", choices=("auto", "always", "never"), default="auto",
                       help="auto: only if it beats the champion and the baseline (default); always; never")
    _symbol_command(commands, common, "models", run_models, "list model versions and which is promoted",
                    "Versions in the registry with their evaluation metrics.")
    promote = _symbol_command(commands, common, "promote", run_promote, "make a version the promoted model",
                              "Verify a version (checksum, schema, parity) and point the registry at it; "
                              "a running daemon hot-swaps to it.")
    promote.add_argument("version", type=version_arg, metavar="VERSION", help="e.g. v0007 (or 7)")
    _symbol_command(commands, common, "rollback", run_rollback, "go back to the previous promoted model",
                    "Point the registry back at the previous champion (verified first).")



def _train_text(outcome: Any) -> str:
    metrics = outcome.metrics
    lines = [f"{outcome.symbol} {outcome.timeframe}: {'promoted' if outcome.promoted else 'not promoted'} "
             f"{outcome.version or '(nothing registered)'}: {outcome.reason}"]
    for name in ("challenger", "champion", "baseline"):
        entry = metrics.get(name)
        if entry:
            label = f"{name} {entry.get('version', '')}".strip()
            lines.append(f"  {label:<18} accuracy {pct(entry['accuracy'])}  signal precision "
                         f"{pct(entry['signal_precision'])} ({entry['signals']} signals)  PnL {signed_pct(entry['pnl_pct'])}  "
                         f"on {entry['samples']} samples")
    if outcome.durations:
        lines.append("  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in outcome.durations.items()))
    return "\n".join(lines)


def run_train(args: argparse.Namespace, config: Config) -> int:
    from autoretrain.daemon.processes.retrain_job import run_training  # torch: only this command needs it

    if not getattr(args, "json", False):
        logging.getLogger("autoretrain.model").setLevel(logging.INFO)  # the guide's progress lines on stderr
    outcome = run_training(config, args.symbol, args.timeframe, epochs=args.epochs, days=args.days,
                           promote=args.promote, trigger="cli", reason="autoretrainctl train")
    emit(args, outcome.as_dict(), _train_text(outcome))
    return 0


def _models_text(payload: dict[str, Any]) -> str:
    rows, symbol, timeframe = payload["versions"], payload["symbol"], payload["timeframe"]
    if not rows:
        return f"{symbol} {timeframe}: no model versions in {payload['series_dir']}"
    lines = [f"{symbol} {timeframe}: {len(rows)} versions, promoted: {payload['promoted'] or 'none'}",
             f"  {'version':<9} {'created':<21} {'made by':<16} {'accuracy':>8} {'champion':>8} {'baseline':>8}  decision"]
    for row in rows:
        metrics = row["metrics"]
        accuracy = {k: (metrics.get(k) or {}).get("accuracy") for k in ("challenger", "champion", "baseline")}
        decision = (row["decision"] or {}).get("reason") or row["error"] or ""
        made = row.get("made_by") or {}
        made_by = f"fine-tuned {made['warm_start_from']}" if made.get("warm_start_from") else \
            {"full": "full retrain"}.get(made.get("kind") or "", "-")
        lines.append(f"{'*' if row['promoted'] else ' '} {row['version']:<9} {row['created_at'] or '-':<21} {made_by:<16} "
                     f"{pct(accuracy['challenger']):>8} {pct(accuracy['champion']):>8} "
                     f"{pct(accuracy['baseline']):>8}  {decision}")
    return "\n".join(lines)


def run_models(args: argparse.Namespace, config: Config) -> int:
    timeframe = args.timeframe or config.market.timeframe
    payload = Registry(config.models_dir).listing(args.symbol, timeframe)
    emit(args, payload, _models_text(payload))
    return 0


def _through_daemon(config: Config, timeframe: str, command: str, **args: Any) -> dict[str, Any] | None:
    """Move the pointer through a running daemon (it owns the files and hot-swaps at once); None if none runs.

    Operators in the daemon's group can ask it over the control socket even where they may not write
    the registry themselves; without a daemon the registry is changed directly."""
    if timeframe != config.market.timeframe:  # the daemon only serves its own timeframe
        return None
    try:
        return request(config, command, retries=1, timeframe=timeframe, **args)
    except DaemonNotRunning:
        return None


def _move_pointer(config: Config, timeframe: str, command: str, directly: Callable[[], dict[str, Any]],
                  **args: Any) -> dict[str, Any]:
    """promote/rollback through the running daemon, else `directly` on the registry; says which in `via`."""
    result = _through_daemon(config, timeframe, command, **args)
    return {**directly(), "via": "registry"} if result is None else {**result, "via": "daemon"}


def run_promote(args: argparse.Namespace, config: Config) -> int:
    timeframe = args.timeframe or config.market.timeframe
    result = _move_pointer(config, timeframe, "promote",
                           lambda: promotion.promote_verified(Registry(config.models_dir), args.symbol, timeframe, args.version),
                           symbol=args.symbol, version=args.version)
    version, previous = result["promoted"], result["previous"]
    text = (f"{args.symbol} {timeframe}: {version} is already the promoted model" if previous == version else
            f"{args.symbol} {timeframe}: promoted {version} (was {previous or 'none'})")
    emit(args, result, text)
    return 0


def run_rollback(args: argparse.Namespace, config: Config) -> int:
    timeframe = args.timeframe or config.market.timeframe
    result = _move_pointer(config, timeframe, "rollback",
                           lambda: promotion.rollback_verified(Registry(config.models_dir), args.symbol, timeframe),
                           symbol=args.symbol)
    emit(args, result, f"{args.symbol} {timeframe}: rolled back from {result['previous']} to {result['promoted']}")
    return 0
