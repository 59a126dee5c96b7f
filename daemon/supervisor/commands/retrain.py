"""`retrain {symbol}`: queue a manual retrain (the trainer runs it); `run {id}`: one retrain run's record."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from autoretrain.daemon.supervisor.commands.base import Command, CommandContext, NoArgs, SeriesArgs
from autoretrain.ipc import messages
from autoretrain.ipc.control import ControlError

MANUAL = "manual"


class Retrain(Command):
    name = "retrain"
    Args = SeriesArgs

    def handle(self, context: CommandContext, args: SeriesArgs) -> dict[str, Any]:
        symbol, timeframe = args.series(context.config)
        db = context.board.db()
        exchange = context.config.store_exchange
        newest = db.candles.summary(exchange, symbol, timeframe, until_ms=context.board.closed_until_ms()).last_ts
        reason = "requested with autoretrainctl retrain"
        run_id, queued = db.runs.queue(exchange, symbol, timeframe, trigger=MANUAL, reason=reason,
                                       requested_market_ts=newest)
        if queued:
            context.publish(messages.RetrainQueued(symbol=symbol, timeframe=timeframe, run_id=run_id, trigger=MANUAL,
                                                   reason=reason))
        return {"run_id": run_id, "queued": queued, "symbol": symbol, "timeframe": timeframe}


class RunArgs(NoArgs):
    id: int = Field(ge=1, le=2**63 - 1)  # a retrain run number: SQLite's integer range


class Run(Command):
    name = "run"
    Args = RunArgs

    def handle(self, context: CommandContext, args: RunArgs) -> dict[str, Any]:
        run = context.board.db().runs.get(args.id)
        if run is None:
            raise ControlError(f"no retrain run {args.id}")
        return run.as_dict()
