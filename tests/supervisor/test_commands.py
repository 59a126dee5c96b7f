"""Each control command in-process (no sockets): its argument schema, its reply, what it publishes.

The commands run against a real store and a real registry; the bus is a list that collects what a
command publishes. The end-to-end socket tests (tests/e2e) cover the same commands through a daemon.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.supervisor.children import PROCESS_MODULES, Children
from autoretrain.daemon.supervisor.commands import COMMANDS, CommandContext, ControlCommands
from autoretrain.daemon.supervisor.status_board import StatusBoard
from autoretrain.ipc import messages
from autoretrain.ipc.control import ControlError
from autoretrain.models.registry import Registry
from tests.support.data import random_walk_candles
from tests.support.models import register_copy, trained_version


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.config: Config = build_config({"paths": {"state_dir": str(tmp_path / "state")},
                                            "market": {"symbols": ["BTC/USDT", "ETH/USDT"]}}, env={})
        children = Children(tuple(PROCESS_MODULES), tmp_path / "config.json", self.config.supervisor)
        self.board = StatusBoard(self.config, children, started_at=time.time())
        self.published: list[messages.Message] = []
        self.commands = ControlCommands(CommandContext(self.config, self.board, self.published.append))

    def __call__(self, name: str, **args: Any) -> dict[str, Any]:
        return self.commands.handle(name, args)


@pytest.fixture
def daemon(tmp_path: Path) -> Setup:
    setup = Setup(tmp_path)
    yield setup
    setup.board.close()


def test_the_command_table_is_what_the_design_card_asks_for() -> None:
    # the design card's commands, and `history` (read-only: the dashboard's chart data, issue 13)
    assert set(COMMANDS) == {"ping", "status", "history", "retrain", "run", "models", "promote", "rollback"}


def test_ping_and_status(daemon: Setup) -> None:
    assert daemon("ping") == {"pong": True}
    status = daemon("status")
    assert [p["name"] for p in status["processes"]] == ["supervisor", *PROCESS_MODULES]
    assert [s["symbol"] for s in status["symbols"]] == ["BTC/USDT", "ETH/USDT"]
    assert status["daemon"]["ready"] is False  # no child has reported ready


@pytest.mark.parametrize("name, args, problem", [
    ("nope", {}, "unknown command 'nope'"),
    ("ping", {"extra": 1}, "ping: argument 'extra': unknown argument"),
    ("retrain", {}, "retrain: argument 'symbol': Field required"),
    ("retrain", {"symbol": 7}, "retrain: argument 'symbol': Input should be a valid string"),
    ("retrain", {"symbol": "X" * 65}, "retrain: argument 'symbol': String should have at most 64 characters"),
    ("retrain", {"symbol": "DOGE/USDT"}, "'DOGE/USDT' is not a configured symbol (configured: BTC/USDT, ETH/USDT)"),
    ("retrain", {"symbol": "BTC/USDT", "timeframe": "5m"}, "the daemon runs 1h candles, not '5m'"),
    ("run", {"id": "1"}, "run: argument 'id': Input should be a valid integer"),
    ("run", {"id": True}, "run: argument 'id': Input should be a valid integer"),
    ("run", {"id": 2**63}, "run: argument 'id': Input should be less than or equal to 9223372036854775807"),
    ("run", {"id": 0}, "run: argument 'id': Input should be greater than or equal to 1"),
    ("run", {"id": 5}, "no retrain run 5"),
    ("promote", {"symbol": "BTC/USDT"}, "promote: argument 'version': Field required"),
    ("promote", {"symbol": "BTC/USDT", "version": "9" * 5000}, "at most 16 characters"),
    ("promote", {"symbol": "BTC/USDT", "version": "\u0663"}, "invalid version '\u0663'"),
    ("promote", {"symbol": "BTC/USDT", "version": "v0009"}, "no version v0009 of BTC/USDT 1h"),
    ("rollback", {"symbol": "BTC/USDT"}, "cannot roll back BTC/USDT 1h: no champion and no previous champion"),
])
def test_a_bad_request_is_one_line_of_refusal(daemon: Setup, name: str, args: dict[str, Any], problem: str) -> None:
    with pytest.raises(ControlError) as caught:
        daemon(name, **args)
    assert problem in str(caught.value) and "\n" not in str(caught.value)
    assert daemon.published == []


def test_retrain_queues_once_and_run_reports_it(daemon: Setup) -> None:
    daemon.board.db().candles.upsert("binance", "BTC/USDT", "1h", random_walk_candles(10))
    first = daemon("retrain", symbol="BTC/USDT")
    again = daemon("retrain", symbol="BTC/USDT", timeframe="1h")
    assert first["queued"] and not again["queued"] and again["run_id"] == first["run_id"]
    assert daemon.published == [messages.RetrainQueued(symbol="BTC/USDT", timeframe="1h", run_id=first["run_id"],
                                                       trigger="manual", reason="requested with autoretrainctl retrain")]
    run = daemon("run", id=first["run_id"])
    assert (run["status"], run["trigger"], run["requested_market_time"]) == ("queued", "manual", "2024-01-01T09:00:00Z")


def test_models_promote_and_rollback_through_the_registry(daemon: Setup,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    registry = Registry(daemon.config.models_dir)
    source = trained_version(tmp_path_factory)
    for _ in range(2):
        register_copy(registry, "BTC/USDT", "1h", source)
    assert daemon("models", symbol="BTC/USDT")["promoted"] is None
    assert daemon("promote", symbol="BTC/USDT", version="1") == {
        "symbol": "BTC/USDT", "timeframe": "1h", "promoted": "v0001", "previous": None}
    daemon("promote", symbol="BTC/USDT", version="v0002")
    listing = daemon("models", symbol="BTC/USDT")
    assert (listing["promoted"], listing["history"], [row["version"] for row in listing["versions"]]) == (
        "v0002", ["v0001"], ["v0001", "v0002"])
    assert daemon("rollback", symbol="BTC/USDT")["promoted"] == "v0001"
    assert [m.version for m in daemon.published if isinstance(m, messages.ModelPromoted)] == ["v0001", "v0002", "v0001"]


def test_a_version_that_would_not_load_is_never_promoted(daemon: Setup, tmp_path_factory: pytest.TempPathFactory) -> None:
    registry = Registry(daemon.config.models_dir)
    register_copy(registry, "BTC/USDT", "1h", trained_version(tmp_path_factory), truncated=True)
    with pytest.raises(ControlError, match="BTC/USDT 1h v0001 refused: model.onnx sha256"):
        daemon("promote", symbol="BTC/USDT", version="v0001")
    assert registry.promoted("BTC/USDT", "1h") is None and daemon.published == []
