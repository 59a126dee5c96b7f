"""The control socket's commands, one unit each (name, argument schema, handler), and their dispatcher."""

from __future__ import annotations

from typing import Any

from autoretrain.daemon.supervisor.commands.base import Command, CommandContext, run_command
from autoretrain.daemon.supervisor.commands.history import History
from autoretrain.daemon.supervisor.commands.ping import Ping
from autoretrain.daemon.supervisor.commands.registry import Models, Promote, Rollback
from autoretrain.daemon.supervisor.commands.retrain import Retrain, Run
from autoretrain.daemon.supervisor.commands.status import Status
from autoretrain.ipc.control import ControlError

COMMANDS: dict[str, Command] = {command.name: command for command in
                                (Ping(), Status(), History(), Retrain(), Run(), Models(), Promote(), Rollback())}


class ControlCommands:
    """The control server's handler: the command by name, its arguments checked, its reply."""

    def __init__(self, context: CommandContext) -> None:
        self.context = context

    def handle(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        command = COMMANDS.get(name)
        if command is None:
            raise ControlError(f"unknown command {name!r} (known: {', '.join(sorted(COMMANDS))})")
        return run_command(command, self.context, args)
