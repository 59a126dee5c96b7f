"""The supervisor's answers to control-socket commands: status, retrain, run, models, promote, rollback.

Each handler validates its arguments and raises ControlError with a one-line reason; the control
server turns that into an error reply, so a bad request never disturbs the daemon.
"""

from __future__ import annotations

from typing import Any, Callable

from autoretrain.daemon.foundation.config import Config
from autoretrain.daemon.store.retrain_runs import RetrainRuns
from autoretrain.daemon.supervisor.status_board import StatusBoard
from autoretrain.ipc import messages
from autoretrain.ipc.control import ControlError
from autoretrain.models import promotion

Publish = Callable[..., None]


class ControlCommands:
    def __init__(self, config: Config, board: StatusBoard, publish: Publish) -> None:
        self.config = config
        self.board = board
        self.publish = publish
        self.handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "ping": lambda args: {"pong": True},
            "status": lambda args: self.board.snapshot(),
            "retrain": self.retrain,
            "run": self.run,
            "models": self.models,
            "promote": self.promote,
            "rollback": self.rollback,
        }

    def handle(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        handler = self.handlers.get(command)
        if handler is None:
            raise ControlError(f"unknown command {command!r} (known: {', '.join(sorted(self.handlers))})")
        return handler(args)

    # -- argument checks -------------------------------------------------------------------------------

    def _symbol(self, args: dict[str, Any]) -> str:
        symbol = args.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise ControlError("missing argument 'symbol'")
        if symbol not in self.config.market.symbols:
            raise ControlError(f"{symbol!r} is not a configured symbol (configured: "
                               f"{', '.join(self.config.market.symbols)})")
        return symbol

    def _timeframe(self, args: dict[str, Any]) -> str:
        timeframe = args.get("timeframe") or self.config.market.timeframe
        if timeframe != self.config.market.timeframe:
            raise ControlError(f"the daemon runs {self.config.market.timeframe} candles, not {timeframe!r}")
        return str(timeframe)

    # -- commands --------------------------------------------------------------------------------------

    def retrain(self, args: dict[str, Any]) -> dict[str, Any]:
        symbol = self._symbol(args)
        timeframe = self._timeframe(args)
        store = self.board.store()
        newest = store.summary(self.config.store_exchange, symbol, timeframe).last_ts
        run_id, queued = RetrainRuns(store.conn).queue(
            self.config.store_exchange, symbol, timeframe, trigger="manual",
            reason="requested with autoretrainctl retrain", requested_market_ts=newest)
        if queued:
            self.publish(messages.RETRAIN_QUEUED, symbol=symbol, timeframe=timeframe, run_id=run_id, trigger="manual")
        return {"run_id": run_id, "queued": queued, "symbol": symbol, "timeframe": timeframe}

    def run(self, args: dict[str, Any]) -> dict[str, Any]:
        run_id = args.get("id")
        if not isinstance(run_id, int) or isinstance(run_id, bool):
            raise ControlError("argument 'id' must be a retrain run number")
        run = RetrainRuns(self.board.store().conn).get(run_id)
        if run is None:
            raise ControlError(f"no retrain run {run_id}")
        return run.as_dict()

    # -- the model registry (the same checks as the offline commands) -----------------------------------

    def models(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.board.registry.listing(self._symbol(args), self._timeframe(args))

    def promote(self, args: dict[str, Any]) -> dict[str, Any]:
        symbol, timeframe = self._symbol(args), self._timeframe(args)
        version = args.get("version")
        if not isinstance(version, str) or not version:
            raise ControlError("missing argument 'version'")
        result = promotion.promote_verified(self.board.registry, symbol, timeframe, version)
        self.publish(messages.MODEL_PROMOTED, symbol=symbol, timeframe=timeframe, version=result["promoted"])
        return result

    def rollback(self, args: dict[str, Any]) -> dict[str, Any]:
        symbol, timeframe = self._symbol(args), self._timeframe(args)
        result = promotion.rollback_verified(self.board.registry, symbol, timeframe)
        self.publish(messages.MODEL_PROMOTED, symbol=symbol, timeframe=timeframe, version=result["promoted"])
        return result
