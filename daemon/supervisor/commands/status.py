"""`status`: processes and per-symbol state, exactly what `autoretrainctl status` shows."""

from __future__ import annotations

from typing import Any

from autoretrain.daemon.supervisor.commands.base import Command, CommandContext, NoArgs


class Status(Command):
    name = "status"

    def handle(self, context: CommandContext, args: NoArgs) -> dict[str, Any]:
        return context.board.snapshot()
