"""The status board in-process: what processes report, training epoch by epoch, the per-symbol truth from the store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.supervisor.children import PROCESS_MODULES, Children
from autoretrain.daemon.supervisor.status_board import StatusBoard
from autoretrain.ipc import messages
from tests.support.market_script import rising


class Reporting:
    """A child that is alive, as far as the table can tell (poll() says it runs)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> None:
        return None


@pytest.fixture
def board(tmp_path: Path) -> StatusBoard:
    config = build_config({"paths": {"state_dir": str(tmp_path / "state")}, "market": {"symbols": ["BTC/USDT"]}},
                          env={})
    children = Children(tuple(PROCESS_MODULES), tmp_path / "c.json", config.supervisor)
    for pid, child in enumerate(children.table.values(), start=1):
        child.process = Reporting(pid)  # type: ignore[assignment]
    board = StatusBoard(config, children, started_at=time.time())
    yield board
    board.close()


def report(board: StatusBoard, name: str, state: str, **detail: Any) -> None:
    child = board.children.table[name]
    board.children.on_report(name, state, detail, child.pid)


def test_training_progress_follows_the_trainer_epoch_by_epoch(board: StatusBoard) -> None:
    for name in PROCESS_MODULES:
        report(board, name, "ready")
    assert board.summary_line() == "3/3 processes ready"
    report(board, "trainer", "training", training={"run_id": 4, "symbol": "BTC/USDT", "epoch": 0, "epochs": None})
    board.on_event(messages.RetrainStarted(symbol="BTC/USDT", timeframe="1h", run_id=4, trigger="manual", reason=""))
    assert board.summary_line() == "3/3 processes ready; training BTC/USDT epoch 0/?"
    board.on_event(messages.RetrainProgress(symbol="BTC/USDT", timeframe="1h", run_id=4, epoch=7, epochs=20,
                                            val_accuracy=0.56))
    assert board.summary_line() == "3/3 processes ready; training BTC/USDT epoch 7/20"
    board.on_event(messages.RetrainProgress(symbol="BTC/USDT", timeframe="1h", run_id=99, epoch=1, epochs=5,
                                            val_accuracy=0.5))  # another run's event: the trainer's report wins
    assert board.summary_line() == "3/3 processes ready; training BTC/USDT epoch 0/?"
    board.on_event(messages.RetrainFinished(symbol="BTC/USDT", timeframe="1h", run_id=4, status="rejected",
                                            version="v0001", promoted=False, reason="", seconds=1.0))
    report(board, "trainer", "ready", training=None)
    assert board.summary_line() == "3/3 processes ready"


def test_symbols_come_from_the_store_and_what_inference_serves(board: StatusBoard) -> None:
    board.db().candles.upsert("binance", "BTC/USDT", "1h", rising(0, 30))
    report(board, "inference", "ready", models={"BTC/USDT": "v0003"})
    (symbol,) = board.snapshot()["symbols"]
    assert (symbol["candles"], symbol["price"], symbol["last_candle"]) == (30, 129.0, "2024-01-02T05:00:00Z")
    assert (symbol["model_version"], symbol["promoted_version"], symbol["signals"]) == ("v0003", None, 0)
    assert symbol["needs_retrain"] is False and "candles stored" in symbol["retrain_reason"]
    line = board.symbol_states()[0].heartbeat_line()
    assert line.startswith("Heartbeat | BTC/USDT | Price: $129.00 | Candles: 30 | Signals: 0 | Win Rate: n/a")
