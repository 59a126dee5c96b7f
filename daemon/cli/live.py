"""Commands that talk to a running daemon over its control socket: `status`, `retrain`."""

from __future__ import annotations

import argparse
import time
from typing import Any

from autoretrain.daemon.cli.arguments import add_json_flag, emit, positive_float, symbol_arg
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import EX_UNAVAILABLE, AutoretrainError
from autoretrain.daemon.foundation.formatting import pct, signed_pct
from autoretrain.daemon.store.retrain_runs import FINAL_STATUSES, PROMOTED, REJECTED
from autoretrain.ipc.control import ControlClient, DaemonUnavailable, RequestFailed


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    status = commands.add_parser("status", parents=[common], help="processes and per-symbol state of the daemon",
                                 description="Ask the running daemon for its processes (pid, state, restarts, RSS, "
                                             "CPU) and, per symbol, candles, model, signals, win rate, PnL, retrain "
                                             "state and training progress.")
    add_json_flag(status)
    status.set_defaults(handler=run_status)

    retrain = commands.add_parser("retrain", parents=[common], help="queue a retrain in the running daemon",
                                  description="Queue a background retrain for SYMBOL; with --wait, follow it to the end.")
    retrain.add_argument("symbol", type=symbol_arg, metavar="SYMBOL")
    retrain.add_argument("--wait", action="store_true", help="wait until the retrain has finished")
    retrain.add_argument("--timeout", type=positive_float, default=3600.0, metavar="SECONDS",
                         help="with --wait: give up after this long (default 3600)")
    add_json_flag(retrain)
    retrain.set_defaults(handler=run_retrain)


class DaemonNotRunning(AutoretrainError):
    """No daemon answers on the control socket."""

    exit_code = EX_UNAVAILABLE


class DaemonLink:
    """The control socket as the CLI uses it: the wire's errors become one-line command errors."""

    def __init__(self, config: Config, retries: int | None = None) -> None:
        self.client = ControlClient(config.control_endpoint, timeout_ms=config.control.timeout_ms,
                                    retries=config.control.retries if retries is None else retries)

    def request(self, command: str, **args: Any) -> dict[str, Any]:
        try:
            return self.client.request(command, **args)
        except DaemonUnavailable as exc:
            raise DaemonNotRunning(str(exc)) from None
        except RequestFailed as exc:
            raise AutoretrainError(str(exc)) from None

    def __enter__(self) -> DaemonLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()


def request(config: Config, command: str, *, retries: int | None = None, **args: Any) -> dict[str, Any]:
    """One request to the running daemon (DaemonNotRunning when none answers)."""
    with DaemonLink(config, retries) as link:
        return link.request(command, **args)


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MB"


def status_text(status: dict[str, Any]) -> str:
    daemon = status["daemon"]
    lines = [f"autoretraind pid {daemon['pid']}, up {daemon['uptime_s']:.0f}s, "
             f"{'ready' if daemon['ready'] else 'starting'} (source {daemon['source']}, {daemon['timeframe']})",
             f"{'PROCESS':<11}{'PID':>8}  {'STATE':<22}{'RESTARTS':>8}{'RSS':>9}{'CPU':>8}"]
    store_error = (status.get("store") or {}).get("error")
    if store_error:
        lines.insert(1, f"store error: {store_error}")
    for p in status["processes"]:
        cpu = "-" if p.get("cpu_percent") is None else f"{p['cpu_percent']:.0f}%"
        lines.append(f"{p['name']:<11}{p['pid'] or '-':>8}  {str(p['state'])[:21]:<22}{p['restarts']:>8}"
                     f"{_mb(p.get('rss_mb')):>9}{cpu:>8}")
    for s in status["symbols"]:
        lines.append("")
        price = f"{s['price']:,.2f}" if s["price"] is not None else "-"
        lines.append(f"{s['symbol']} {s['timeframe']}: price {price} | "
                     f"candles {s['candles']} (last {s['last_candle'] or '-'}) | model {s['model_version'] or 'none'}"
                     f" (promoted {s['promoted_version'] or 'none'})")
        lines.append(f"  combined signal: {s['signals']} settled trades (PnL {signed_pct(s['pnl_pct'])} net of fees since "
                     f"start) | win rate {pct(s['win_rate'], '-')} over {s['win_rate_scope']}")
        record = s.get("model_record")
        if record:
            trades = record["trades"]
            lines.append(f"  model {record['version']}'s own record{' (benched: out of the vote)' if record['benched'] else ''}: "
                         f"direction {pct(record['direction_accuracy'], '-')} over {record['predictions']} predictions "
                         f"(its evaluation: {pct(record['evaluation_accuracy'], '-')}) | own trades {trades}, PnL "
                         f"{signed_pct(record['trade_pnl_total_pct'] if trades else None)} net of fees")
        lines.append(f"  needs retrain: {'yes' if s['needs_retrain'] else 'no'} ({s['retrain_reason']})")
        last = s.get("last_retrain")
        lines.append(f"  last retrain: {last['status']} {last.get('version') or ''} at market time "
                     f"{last.get('market_time') or '-'} ({last.get('trigger')})" if last else "  last retrain: never")
        training = s.get("training") or {}
        if training.get("in_progress"):
            lines.append(f"  training in progress (epoch {training.get('epoch')}/{training.get('epochs') or '?'})")
    return "\n".join(lines)


def run_status(args: argparse.Namespace, config: Config) -> int:
    status = request(config, "status")
    emit(args, status, status_text(status))
    return 0


def run_retrain(args: argparse.Namespace, config: Config) -> int:
    queued = request(config, "retrain", symbol=args.symbol)
    run_id = queued["run_id"]
    if not args.wait:
        what = "queued" if queued.get("queued") else "already queued or running"
        emit(args, queued, f"retrain of {args.symbol} {what} (run {run_id})")
        return 0
    deadline = time.monotonic() + args.timeout
    with DaemonLink(config) as link:  # one socket for the whole wait
        while True:
            run = link.request("run", id=run_id)
            if run["status"] in FINAL_STATUSES:
                break
            if time.monotonic() > deadline:
                raise AutoretrainError(f"retrain run {run_id} of {args.symbol} still {run['status']} after "
                                       f"{args.timeout:.0f} s")
            time.sleep(1.0)
    detail = run.get("detail") or {}
    text = f"retrain run {run_id} of {args.symbol}: {run['status']}"
    if run.get("version"):
        text += f" ({run['version']})"
    if detail.get("reason") or detail.get("error"):
        text += f": {detail.get('reason') or detail.get('error')}"
    emit(args, run, text)
    return 0 if run["status"] in (PROMOTED, REJECTED) else 1  # failed or aborted: it did not finish
