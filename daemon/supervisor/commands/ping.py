"""`ping`: is the supervisor answering (no arguments)."""

from __future__ import annotations

from typing import Any

from autoretrain.daemon.supervisor.commands.base import Command, CommandContext, NoArgs


class Ping(Command):
    name = "ping"

    def handle(self, context: CommandContext, args: NoArgs) -> dict[str, Any]:
        return {"pong": True}
