"""`models {symbol}`, `promote {symbol, version}`, `rollback {symbol}`: the model registry, verified.

The same registry operations as the offline commands (`models.promotion`, `Registry.listing`); after a
promotion or a rollback the bus tells inference to hot-swap at once.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from autoretrain.daemon.supervisor.commands.base import Command, CommandContext, SeriesArgs
from autoretrain.ipc import messages
from autoretrain.models import promotion


class Models(Command):
    name = "models"
    Args = SeriesArgs

    def handle(self, context: CommandContext, args: SeriesArgs) -> dict[str, Any]:
        return context.board.registry.listing(*args.series(context.config))


class PromoteArgs(SeriesArgs):
    version: str = Field(min_length=1, max_length=16)


def _moved(context: CommandContext, result: dict[str, Any]) -> dict[str, Any]:
    context.publish(messages.ModelPromoted(symbol=result["symbol"], timeframe=result["timeframe"],
                                           version=result["promoted"]))
    return result


class Promote(Command):
    name = "promote"
    Args = PromoteArgs

    def handle(self, context: CommandContext, args: PromoteArgs) -> dict[str, Any]:
        symbol, timeframe = args.series(context.config)
        return _moved(context, promotion.promote_verified(context.board.registry, symbol, timeframe, args.version))


class Rollback(Command):
    name = "rollback"
    Args = SeriesArgs

    def handle(self, context: CommandContext, args: SeriesArgs) -> dict[str, Any]:
        return _moved(context, promotion.rollback_verified(context.board.registry, *args.series(context.config)))
