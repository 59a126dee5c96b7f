"""The signal store on real SQLite files: one signal per candle, restarts, concurrency, model activations."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from autoretrain.daemon.signals.vote import BUY, HOLD, SELL
from autoretrain.daemon.store.connection import connect
from autoretrain.daemon.store.signals import SignalTable
from tests.support.market_script import EX, SYM, TF, trade, ts_at


def test_a_candle_gets_one_signal_and_the_first_one_stays(tmp_path: Path) -> None:
    store = SignalTable(connect(tmp_path / "a.db"))
    assert store.record(EX, SYM, TF, trade(5, BUY)) is True
    assert store.record(EX, SYM, TF, trade(5, SELL, "v0009")) is False  # a re-run after a crash, other mind
    rows = store.conn.execute("SELECT action, model_version FROM signals").fetchall()
    assert rows == [("BUY", None)]
    # the same candle of another symbol, timeframe or exchange is another signal
    assert store.record(EX, "ETH/USDT", TF, trade(5, BUY))
    assert store.record(EX, SYM, "4h", trade(5, BUY))
    assert store.record("kraken", SYM, TF, trade(5, BUY))
    assert store.conn.execute("SELECT COUNT(*) FROM signals").fetchone()[0] == 4


def test_recent_last_and_get_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = connect(path)
    store = SignalTable(conn)
    assert store.last_signal_ts(EX, SYM, TF) is None and store.recent(EX, SYM, TF) == []
    for index, action in enumerate([BUY, HOLD, SELL, BUY]):
        store.record(EX, SYM, TF, trade(index, action, "v0001"))
    conn.close()

    store = SignalTable(connect(path))  # a restarted process
    assert store.last_signal_ts(EX, SYM, TF) == ts_at(3)
    recent = store.recent(EX, SYM, TF, limit=3)
    assert [r.signal.candle_ts for r in recent] == [ts_at(3), ts_at(2), ts_at(1)]
    assert recent[0].signal == trade(3, BUY, "v0001")  # every field round-trips
    assert all(r.outcome is None for r in recent) and recent[0].as_dict()["status"] == "pending"
    assert store.get(EX, SYM, TF, ts_at(1)).signal.action == HOLD
    assert store.get(EX, SYM, TF, ts_at(9)) is None
    assert store.pending(EX, SYM, TF) == 4


def _record_all(path: str, count: int, queue: multiprocessing.Queue) -> None:
    store = SignalTable(connect(path))
    queue.put(sum(store.record(EX, SYM, TF, trade(i, BUY)) for i in range(count)))


def test_processes_racing_on_the_same_candles_record_each_once(tmp_path: Path) -> None:
    path = str(tmp_path / "race.db")
    connect(path).close()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_record_all, args=(path, 60, queue)) for _ in range(3)]
    for worker in workers:
        worker.start()
    recorded = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert sum(recorded) == 60
    assert connect(path).execute("SELECT COUNT(*), COUNT(DISTINCT candle_ts) FROM signals").fetchone() == (60, 60)


def test_activations_start_a_window_on_every_change_of_model(tmp_path: Path) -> None:
    store = SignalTable(connect(tmp_path / "a.db"))
    assert store.current_activation(EX, SYM, TF) is None
    assert store.record_activation(EX, SYM, TF, None, ts_at(0)) is False  # algorithms only: already the case
    assert store.record_activation(EX, SYM, TF, "v0001", ts_at(10)) is True
    assert store.record_activation(EX, SYM, TF, "v0001", ts_at(12)) is False  # a restart re-announces it
    assert store.record_activation(EX, SYM, TF, "v0002", ts_at(20)) is True
    assert store.record_activation(EX, SYM, TF, "v0001", ts_at(30)) is True  # rollback: a new window
    current = store.current_activation(EX, SYM, TF)
    assert (current.version, current.market_ts) == ("v0001", ts_at(30))
    assert current.as_dict()["since"] == "2024-01-02T06:00:00Z"
    assert [(a.version, a.market_ts) for a in store.activations(EX, SYM, TF)] == [
        ("v0001", ts_at(10)), ("v0002", ts_at(20)), ("v0001", ts_at(30))]
    assert store.current_activation(EX, "ETH/USDT", TF) is None
