"""The supervisor survives its own reads: whatever the store holds, the heartbeat and `status` go on.

A candle no calendar can show reads as `out-of-range time`; a store damaged under the supervisor (here a
table gone) makes that symbol's state `unreadable` with the reason, logged once, never an exception out
of `symbol_states()` (the heartbeat) or `snapshot()` (`status`)."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.supervisor import status_board
from autoretrain.daemon.supervisor.children import PROCESS_MODULES, Children
from autoretrain.daemon.supervisor.status_board import StatusBoard
from tests.support.market_script import rising


@pytest.fixture
def board(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatusBoard]:
    monkeypatch.setattr(status_board, "SYMBOLS_TTL_S", 0.0)  # every call reads the store again
    config = build_config({"paths": {"state_dir": str(tmp_path / "state")},
                           "market": {"symbols": ["BTC/USDT", "ETH/USDT"]}}, env={})
    board = StatusBoard(config, Children(tuple(PROCESS_MODULES), tmp_path / "c.json", config.supervisor),
                        started_at=time.time())
    board.db().candles.upsert("binance", "BTC/USDT", "1h", rising(0, 30))
    board.db().candles.upsert("binance", "ETH/USDT", "1h", rising(0, 30))
    yield board
    board.close()


def _insert_candle(board: StatusBoard, symbol: str, ts: int) -> None:
    with sqlite3.connect(board.config.db_path) as conn:
        conn.execute("INSERT INTO candles SELECT c.series_id, ?, open, high, low, close, volume FROM candles c"
                     " JOIN series s ON s.id = c.series_id WHERE s.symbol = ? LIMIT 1", (ts, symbol))
    conn.close()


@pytest.mark.parametrize("ts", [253_402_300_800_000, 2**62, 2**63 - 1])
def test_a_candle_beyond_the_calendar_is_shown_not_raised(board: StatusBoard, ts: int) -> None:
    _insert_candle(board, "BTC/USDT", ts)
    btc, eth = board.symbol_states()
    assert btc.error is None and btc.as_dict()["last_candle"] == f"out-of-range time ({ts} ms)"
    assert btc.heartbeat_line().startswith("Heartbeat | BTC/USDT | Price: ") and eth.error is None
    assert board.snapshot()["symbols"][0]["performance"]["last_candle"] == f"out-of-range time ({ts} ms)"


def test_a_store_damaged_under_the_supervisor_is_a_logged_state_not_a_crash(
        board: StatusBoard, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="autoretrain.supervisor")
    with sqlite3.connect(board.config.db_path) as conn:
        conn.execute("DROP TABLE outcomes")
    conn.close()
    for _ in range(3):  # heartbeat after heartbeat
        states = board.symbol_states()
    assert [s.symbol for s in states] == ["BTC/USDT", "ETH/USDT"]
    for state in states:
        assert state.error is not None and "OperationalError" in state.error and "outcomes" in state.error
        assert state.heartbeat_line() == f"Heartbeat | {state.symbol} | state unreadable: {state.error}"
    snapshot = board.snapshot()  # what `status` answers
    assert [s["error"] for s in snapshot["symbols"]] == [s.error for s in states]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"cannot read the state of {s.symbol} from the store: {s.error}"
                                                for s in states]  # once per symbol, not once per heartbeat
