"""The signal store on real SQLite files: one signal per candle, restarts, concurrency, model activations.

Also home of `Market`, the scripted market the outcome, performance and policy tests share.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np

from autoretrain.daemon.store.candles import CandleStore
from autoretrain.ipc.candles import CANDLE_DTYPE
from autoretrain.daemon.store.connection import connect
from autoretrain.daemon.store.signals import SignalStore
from autoretrain.daemon.signals.vote import BUY, HOLD, SELL, Signal
from autoretrain.daemon.foundation.timeframes import HOUR_MS

EX, SYM, TF = "binance", "BTC/USDT", "1h"
BASE_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def ts_at(index: int) -> int:
    return BASE_MS + index * HOUR_MS


def rising(first: int, count: int) -> np.ndarray:
    """Candles `first`..`first+count-1` of a market whose close rises by 1 every candle (close = 100 + index)."""
    index = np.arange(first, first + count)
    out = np.zeros(count, dtype=CANDLE_DTYPE)
    out["ts"] = ts_at(0) + index * HOUR_MS
    out["close"] = 100.0 + index
    out["open"] = out["close"] - 1.0
    out["high"], out["low"], out["volume"] = out["close"] + 0.5, out["open"] - 0.5, 10.0
    return out


def trade(index: int, action: str, version: str | None = None, algo_action: str | None = None) -> Signal:
    """A signal at candle `index` of the rising market (BUY is right there, SELL wrong)."""
    probability = {BUY: 0.6, SELL: 0.4, HOLD: 0.5}[action]
    return Signal(candle_ts=ts_at(index), price=100.0 + index, action=action, confidence=max(probability, 1 - probability),
                  probability_up=probability, model_version=version, model_probability=probability if version else None,
                  components={"rsi": 0.1}, algo_action=algo_action or action, algo_probability=probability)


class Market:
    """Plays a script on the rising market, one candle a character, like the daemon: store the candle,
    record its signal, settle. W: a right trade (BUY), L: a wrong one (SELL), H: HOLD."""

    ACTIONS = {"W": BUY, "L": SELL, "H": HOLD}

    def __init__(self, db_path: Path, *, horizon: int = 1, fee_bps: float = 10.0) -> None:
        self.candles = CandleStore(db_path)
        self.conn = self.candles.conn
        self.signals = SignalStore(self.conn)
        self.horizon, self.fee_bps = horizon, fee_bps
        self.next = 0

    @property
    def now_ms(self) -> int:
        """Open time of the newest candle played."""
        return ts_at(self.next - 1)

    def history(self, count: int) -> None:
        """Candles without signals (a backfill)."""
        self.candles.upsert(EX, SYM, TF, rising(self.next, count))
        self.next += count

    def play(self, script: str, version: str | None = None, *, settle: bool = True) -> None:
        for char in script:
            self.candles.upsert(EX, SYM, TF, rising(self.next, 1))
            self.signals.record(EX, SYM, TF, trade(self.next, self.ACTIONS[char], version))
            self.next += 1
            if settle:
                self.settle_all()

    def settle_all(self) -> None:
        """Store the candles the pending signals wait for (without advancing the clock) and settle."""
        self.candles.upsert(EX, SYM, TF, rising(self.next, self.horizon))
        self.signals.settle(EX, SYM, TF, horizon=self.horizon, fee_bps=self.fee_bps)

    def activate(self, version: str | None) -> bool:
        return self.signals.record_activation(EX, SYM, TF, version, ts_at(self.next))

    def close(self) -> None:
        self.candles.close()


def test_a_candle_gets_one_signal_and_the_first_one_stays(tmp_path: Path) -> None:
    store = SignalStore(connect(tmp_path / "a.db"))
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
    store = SignalStore(conn)
    assert store.last_signal_ts(EX, SYM, TF) is None and store.recent(EX, SYM, TF) == []
    for index, action in enumerate([BUY, HOLD, SELL, BUY]):
        store.record(EX, SYM, TF, trade(index, action, "v0001"))
    conn.close()

    store = SignalStore(connect(path))  # a restarted process
    assert store.last_signal_ts(EX, SYM, TF) == ts_at(3)
    recent = store.recent(EX, SYM, TF, limit=3)
    assert [r.signal.candle_ts for r in recent] == [ts_at(3), ts_at(2), ts_at(1)]
    assert recent[0].signal == trade(3, BUY, "v0001")  # every field round-trips
    assert all(r.outcome is None for r in recent) and recent[0].as_dict()["status"] == "pending"
    assert store.get(EX, SYM, TF, ts_at(1)).signal.action == HOLD
    assert store.get(EX, SYM, TF, ts_at(9)) is None
    assert store.pending(EX, SYM, TF) == 4


def _record_all(path: str, count: int, queue: multiprocessing.Queue) -> None:
    store = SignalStore(connect(path))
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
    store = SignalStore(connect(tmp_path / "a.db"))
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
