"""`history {symbol, candles?}`: the chart data of one symbol (read-only), what the dashboard draws.

The same builder as `autoretrainctl report` (`views.history`), read through the supervisor's store
connection up to the newest closed candle.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from autoretrain.daemon.supervisor.commands.base import Command, CommandContext, SeriesArgs
from autoretrain.daemon.views.history import symbol_history


class HistoryArgs(SeriesArgs):
    candles: int | None = Field(None, ge=10, le=100_000)


class History(Command):
    name = "history"
    Args = HistoryArgs

    def handle(self, context: CommandContext, args: HistoryArgs) -> dict[str, Any]:
        symbol, _ = args.series(context.config)
        board = context.board
        return symbol_history(board.db(), context.config, symbol, until_ms=board.closed_until_ms(),
                              candles=args.candles)
