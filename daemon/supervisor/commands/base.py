"""What a control command is: a name, an argument schema and a handler that returns the reply.

Arguments are checked by the command's pydantic schema (strict types, no unknown keys, bounded sizes)
before the handler runs; a bad argument, a symbol the daemon does not serve, or a refusal by the
registry or the store becomes a `ControlError`, which the control server sends back as the one-line
error. A store that fails a handler's read (`sqlite3.DatabaseError`: damaged, read-only, busy) is the
store's one line (`store.failures`), logged once by the status board; only a bug in a handler (a
`sqlite3.ProgrammingError` included) is an internal error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import USER_ERRORS
from autoretrain.daemon.supervisor.status_board import StatusBoard
from autoretrain.ipc import messages
from autoretrain.ipc.control import ControlError


@dataclass(frozen=True)
class CommandContext:
    """What handlers work with: the configuration, the status board (store, registry) and the bus."""

    config: Config
    board: StatusBoard
    publish: Callable[[messages.Message], None]


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SeriesArgs(NoArgs):
    """A symbol the daemon serves, and optionally its timeframe (only the configured one)."""

    symbol: str = Field(min_length=1, max_length=64)
    timeframe: str | None = Field(None, min_length=1, max_length=16)

    def series(self, config: Config) -> tuple[str, str]:
        """(symbol, timeframe), refused unless the daemon serves them."""
        if self.symbol not in config.market.symbols:
            raise ControlError(f"{self.symbol!r} is not a configured symbol (configured: "
                               f"{', '.join(config.market.symbols)})")
        timeframe = self.timeframe or config.market.timeframe
        if timeframe != config.market.timeframe:
            raise ControlError(f"the daemon runs {config.market.timeframe} candles, not {timeframe!r}")
        return self.symbol, timeframe


class Command:
    """One control command; subclasses set `name`, `Args` and `handle`."""

    name: ClassVar[str]
    Args: ClassVar[type[NoArgs]] = NoArgs

    def handle(self, context: CommandContext, args: Any) -> dict[str, Any]:
        raise NotImplementedError


def _argument_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "args"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        message = "unknown argument"
    return f"argument {where!r}: {message}"


def run_command(command: Command, context: CommandContext, raw_args: dict[str, Any]) -> dict[str, Any]:
    """Check the arguments, run the handler; every refusal is a ControlError with one line."""
    try:
        args = command.Args.model_validate(raw_args)
    except ValidationError as exc:
        raise ControlError(f"{command.name}: {_argument_problem(exc)}") from None
    what = f"control command {command.name}"
    try:
        reply = command.handle(context, args)
    except sqlite3.ProgrammingError:
        raise  # the sqlite3 module misused: a bug, an internal error with its traceback
    except sqlite3.DatabaseError as exc:
        raise ControlError(context.board.store_failed(what, exc)) from None
    except USER_ERRORS as exc:
        raise ControlError(str(exc)) from None
    context.board.store_answered(what)
    return reply
