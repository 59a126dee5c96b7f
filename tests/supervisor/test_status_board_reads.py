"""The supervisor survives its own reads: whatever the store holds, the heartbeat and `status` go on.

A candle from the future (2030, or one no calendar can show) is neither the price nor the last candle:
only closed candles are; a store damaged under the supervisor (a table gone, a file cut short while the
children's writes wait in the WAL) makes the symbols' states `unreadable` with the store's one line,
logged once, never an exception out of `symbol_states()` (the heartbeat), `snapshot()` (`status`) or the
WAL checkpoint."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.foundation.timeframes import iso, parse_iso_ms
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.store.failures import describe_failure
from autoretrain.daemon.supervisor import status_board
from autoretrain.daemon.supervisor.arbiter import Supervisor
from autoretrain.daemon.supervisor.children import PROCESS_MODULES, Children
from autoretrain.daemon.supervisor.status_board import StatusBoard
from tests.store.damage import build_store, truncate_candles
from tests.support.market_script import EX, TF, rising, ts_at


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


FUTURE_PRICE = 987_654.0


def _insert_candle(board: StatusBoard, symbol: str, ts: int) -> None:
    """A candle put in the store by hand (or by an older version), past every check the daemon makes."""
    with sqlite3.connect(board.config.db_path) as conn:
        conn.execute("INSERT INTO candles SELECT c.series_id, ?, ?, ?, ?, ?, volume FROM candles c"
                     " JOIN series s ON s.id = c.series_id WHERE s.symbol = ? LIMIT 1",
                     (ts, FUTURE_PRICE, FUTURE_PRICE, FUTURE_PRICE, FUTURE_PRICE, symbol))
    conn.close()


@pytest.mark.parametrize("ts", [parse_iso_ms("2030-01-01T00:00:00Z"), parse_iso_ms("9999-12-31T23:00:00Z"),
                                253_402_300_800_000, 2**62, 2**63 - 1])
def test_a_candle_from_the_future_is_neither_the_price_nor_the_last_candle(board: StatusBoard, ts: int) -> None:
    _insert_candle(board, "BTC/USDT", ts)
    btc, eth = board.symbol_states()
    assert btc.error is None and eth.error is None
    assert btc.last_candle_ts == ts_at(29) and btc.candles == 30 and btc.price == float(rising(0, 30)["close"][-1])
    assert btc.heartbeat_line().startswith(f"Heartbeat | BTC/USDT | Price: ${btc.price:,.2f} | Candles: 30 |")
    snapshot = board.snapshot()
    assert snapshot["symbols"][0]["last_candle"] == snapshot["symbols"][0]["performance"]["last_candle"] == \
        iso(ts_at(29))
    assert snapshot["store"]["error"] is None


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
        assert state.error is not None and state.error.startswith(f"store {board.config.db_path} is damaged: ")
        assert "outcomes" in state.error and "autoretrainctl store recover" in state.error
        assert state.heartbeat_line() == f"Heartbeat | {state.symbol} | state unreadable: {state.error}"
    snapshot = board.snapshot()  # what `status` answers
    assert [s["error"] for s in snapshot["symbols"]] == [s.error for s in states]
    assert snapshot["store"]["error"] == states[0].error
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelno, r.getMessage()) for r in warnings] == [(logging.WARNING, f"status: {states[0].error}")]


def test_a_store_damaged_mid_run_fails_the_checkpoint_and_status_softly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The file cut short while the children's writes wait in the WAL: the supervisor's checkpoint, heartbeat and
    `status` each say so once, in one line, and go on; the children meet the damage on their own reads (75)."""
    monkeypatch.setattr(status_board, "SYMBOLS_TTL_S", 0.0)
    caplog.set_level(logging.INFO, logger="autoretrain.supervisor")
    config = build_config({"paths": {"state_dir": str(tmp_path / "state")},
                           "market": {"symbols": ["BTC/USDT", "ETH/USDT"]}}, env={})
    assert config.store_exchange == EX
    build_store(config.db_path)
    supervisor = Supervisor(config)  # holds state only: no sockets, no children
    try:
        supervisor.board.db()  # opened before the damage, as in a running daemon
        with Database(config.db_path, autocheckpoint=False) as child:  # a child's writes, not yet checkpointed
            child.candles.upsert(EX, "XRP/USDT", TF, rising(0, 500))
            truncate_candles(config.db_path)
        for _ in range(3):  # loop after loop
            supervisor.next_checkpoint = supervisor.next_heartbeat = 0.0
            supervisor._checkpoint()
            supervisor._heartbeat()
            status = supervisor.commands.handle("status", {})
    finally:
        supervisor.board.close()
    error = status["store"]["error"]
    assert error is not None and error.startswith(f"store {config.db_path} is damaged: ") and "\n" not in error
    assert [s["error"] for s in status["symbols"]] == [error, error]
    assert [p["name"] for p in status["processes"]] == ["supervisor", *PROCESS_MODULES]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelno, r.getMessage().split(": ", 1)[0]) for r in warnings] == \
        [(logging.WARNING, "WAL checkpoint"), (logging.WARNING, "status")]  # once each, not once per loop
    assert all(r.exc_info is None and r.getMessage().endswith(error) for r in warnings)
    assert [r.getMessage() for r in caplog.records if "Heartbeat" in r.getMessage()].count(
        f"Heartbeat | BTC/USDT | state unreadable: {error}") == 3
    assert describe_failure(config.db_path, sqlite3.DatabaseError("database disk image is malformed")) in error
