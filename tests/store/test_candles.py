"""The candle store: idempotent upserts, ordered reads, gaps, concurrent writers, SIGKILL mid-batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autoretrain.daemon.foundation import candles as candle_ops
from autoretrain.daemon.foundation.errors import StoreError
from autoretrain.daemon.foundation.timeframes import HOUR_MS
from autoretrain.daemon.store.connection import connect
from autoretrain.daemon.store.database import Database
from tests.support.data import ROOT, random_walk_candles

START = 1_704_067_200_000


def test_upsert_is_idempotent_and_reports_what_changed(tmp_path: Path) -> None:
    candles = random_walk_candles(100)
    with Database(tmp_path / "db.sqlite") as db:
        first = db.candles.upsert("binance", "BTC/USDT", "1h", candles)
        again = db.candles.upsert("binance", "BTC/USDT", "1h", candles)
        assert (first.inserted, first.updated, first.unchanged) == (100, 0, 0)
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, 100)
        revised = candles[40:60].copy()
        revised["volume"] += 1.0
        overlap = np.concatenate([revised, random_walk_candles(10, start_ms=START + 100 * HOUR_MS, seed=3)])
        result = db.candles.upsert("binance", "BTC/USDT", "1h", overlap)
        assert (result.inserted, result.updated, result.unchanged) == (10, 20, 0)
        assert db.candles.summary("binance", "BTC/USDT", "1h").count == 110
        stored = db.candles.window("binance", "BTC/USDT", "1h", start_ms=START + 40 * HOUR_MS, end_ms=START + 59 * HOUR_MS)
        np.testing.assert_array_equal(stored["volume"], revised["volume"])


def test_series_are_kept_apart_by_exchange_symbol_and_timeframe(tmp_path: Path) -> None:
    candles = random_walk_candles(10)
    with Database(tmp_path / "db.sqlite") as db:
        for key in [("binance", "BTC/USDT", "1h"), ("kraken", "BTC/USDT", "1h"), ("binance", "ETH/USDT", "1h"),
                    ("binance", "BTC/USDT", "2h")]:
            assert db.candles.upsert(*key, candles).inserted == 10
        assert len(db.candles.all_series()) == 4
        assert db.candles.summary("binance", "BTC/USDT", "1h").count == 10
        assert db.candles.summary("binance", "DOGE/USDT", "1h").count == 0


def test_reads_are_ordered_and_bounded(tmp_path: Path) -> None:
    candles = random_walk_candles(50)
    shuffled = candles[np.random.default_rng(1).permutation(50)]
    with Database(tmp_path / "db.sqlite") as db:
        db.candles.upsert("binance", "BTC/USDT", "1h", shuffled)
        window = db.candles.window("binance", "BTC/USDT", "1h")
        np.testing.assert_array_equal(window, candles)
        middle = db.candles.window("binance", "BTC/USDT", "1h", start_ms=START + 10 * HOUR_MS, end_ms=START + 19 * HOUR_MS)
        assert list(middle["ts"]) == [START + i * HOUR_MS for i in range(10, 20)]
        latest = db.candles.latest("binance", "BTC/USDT", "1h", 5)
        np.testing.assert_array_equal(latest, candles[-5:])
        before = db.candles.latest("binance", "BTC/USDT", "1h", 3, end_ms=START + 9 * HOUR_MS)
        np.testing.assert_array_equal(before, candles[7:10])
        assert len(db.candles.window("binance", "XRP/USDT", "1h")) == 0


def test_gap_report_counts_events_and_missing_candles(tmp_path: Path) -> None:
    candles = random_walk_candles(100)
    holes = list(range(10, 13)) + [50] + list(range(70, 80))
    kept = np.delete(candles, holes)
    with Database(tmp_path / "db.sqlite") as db:
        db.candles.upsert("binance", "BTC/USDT", "1h", kept)
        gaps = db.candles.gaps("binance", "BTC/USDT", "1h")
    assert [(g.after_ts, g.missing) for g in gaps] == [
        (START + 9 * HOUR_MS, 3), (START + 49 * HOUR_MS, 1), (START + 69 * HOUR_MS, 10)]
    assert gaps[0].before_ts == START + 13 * HOUR_MS


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        Database(path)


WRITER = r"""
import sys, numpy as np
from autoretrain.daemon.store.database import Database
from autoretrain.ipc.candles import CANDLE_DTYPE
path, worker, rounds, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
H = 3_600_000
store = Database(path).candles
for r in range(rounds):
    # every worker writes the shared range [0, size) and its own range, in alternating order
    for base in ((0, (worker + 1) * 100_000) if r % 2 == 0 else ((worker + 1) * 100_000, 0)):
        batch = np.zeros(size, dtype=CANDLE_DTYPE)
        batch["ts"] = (base + np.arange(size)) * H + 1_600_000_000_000 // H * H
        batch["open"] = batch["close"] = 100.0
        batch["high"] = 101.0
        batch["low"] = 99.0
        batch["volume"] = r
        store.upsert("binance", "BTC/USDT", "1h", batch)
print("done", worker)
"""


def test_concurrent_writers_in_several_processes(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    Database(path).close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), "6", "3000"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(4)]
    outputs = [w.communicate(timeout=240) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert out.startswith("done")
    with Database(path) as db:
        assert db.candles.summary("binance", "BTC/USDT", "1h").count == 3000 * 5
        assert db.candles.gaps("binance", "BTC/USDT", "1h") != []
        assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


KILLED_WRITER = r"""
import sys, numpy as np
from autoretrain.daemon.store.database import Database
from autoretrain.ipc.candles import CANDLE_DTYPE
path, size = sys.argv[1], int(sys.argv[2])
H = 3_600_000
store = Database(path).candles
n = 0
while True:
    batch = np.zeros(size, dtype=CANDLE_DTYPE)
    batch["ts"] = (n * size + np.arange(size)) * H + 1_600_000_000_000 // H * H
    batch["open"] = batch["close"] = 100.0 + n
    batch["high"] = 101.0 + n
    batch["low"] = 99.0 + n
    batch["volume"] = n
    print("begin", n, flush=True)
    store.upsert("binance", "BTC/USDT", "1h", batch)
    print("commit", n, flush=True)
    n += 1
"""


def test_sigkill_in_the_middle_of_a_batch_leaves_a_consistent_store(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    size = 40_000
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    committed: set[int] = set()
    for round_number in range(3):
        writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), str(size)], env=env,
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None
        # kill right after the writer announces a batch, i.e. while its transaction is open
        target = round_number + 1
        begun = 0
        for line in writer.stdout:
            word, number = line.split()
            if word == "commit":
                committed.add(int(number))
            if word == "begin":
                begun += 1
                if begun > target:
                    os.kill(writer.pid, signal.SIGKILL)
                    break
        writer.wait(timeout=30)
        assert writer.returncode == -signal.SIGKILL
        with Database(path) as db:
            assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = db.candles.window("binance", "BTC/USDT", "1h")
        batches, counts = np.unique(stored["volume"].astype(int), return_counts=True)
        # all or nothing per batch: every stored batch is complete, and each committed batch is there
        assert (counts == size).all()
        assert set(batches.tolist()) >= committed
        assert len(set(batches.tolist()) - committed) <= 1
        for number in batches:
            rows = stored[stored["volume"] == number]
            assert (rows["open"] == 100.0 + number).all()


def test_migrations_run_once_and_record_the_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    first = connect(path)
    version = first.execute("PRAGMA user_version").fetchone()[0]
    first.close()
    second = connect(path)
    assert second.execute("PRAGMA user_version").fetchone()[0] == version >= 1
    assert second.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in second.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"series", "candles", "retrain_runs"} <= tables
    second.close()


def test_exchange_rows_with_impossible_timestamps_are_rejected_not_crashed_on() -> None:
    rows = [[1704067200000, 1, 2, 0.5, 1.5, 10], [1e30, 1, 2, 0.5, 1.5, 10], [-3_600_000, 1, 2, 0.5, 1.5, 10],
            [2**70, 1, 2, 0.5, 1.5, 10], ["soon", 1, 2, 0.5, 1.5, 10]]
    candles, rejected = candle_ops.from_rows(rows)
    assert candles["ts"].tolist() == [1704067200000]
    assert [(r.index, r.reason.split(":")[0]) for r in rejected] == [
        (1, "timestamp out of range"), (2, "timestamp out of range"), (3, "timestamp out of range"),
        (4, "malformed row ['soon', 1, 2, 0.5, 1.5, 10]")]
    assert all(r.describe() for r in rejected)  # printable: no out-of-range date in the message


def test_a_rolled_back_batch_leaves_no_series_behind_and_the_next_one_stores(tmp_path: Path) -> None:
    """The series-id cache only holds committed series: a series created in a failed transaction is not reused."""
    candles = random_walk_candles(5)
    with Database(tmp_path / "db.sqlite") as db:
        with pytest.raises(ValueError):
            db.candles.store_many([("binance", "NEW/USDT", "1h", candles),
                              ("binance", "BAD/USDT", "1h", np.array(["x", "y"]))])
        assert len(db.candles.window("binance", "NEW/USDT", "1h")) == 0
        assert db.conn.execute("SELECT COUNT(*) FROM series").fetchone()[0] == 0
        db.candles.store_many([("binance", "NEW/USDT", "1h", candles)])
        np.testing.assert_array_equal(db.candles.window("binance", "NEW/USDT", "1h"), candles)
    with Database(tmp_path / "db.sqlite") as other:  # and another process sees it
        np.testing.assert_array_equal(other.candles.window("binance", "NEW/USDT", "1h"), candles)


def test_reads_bounded_by_the_newest_closed_candle_leave_candles_from_the_future_out(tmp_path: Path) -> None:
    """The readers that must know the newest closed candle (inference, status, the policy) pass `until_ms`: a
    candle from the future in the store (2030, or past the calendar) counts for nothing there."""
    candles = random_walk_candles(50)
    closed = int(candles["ts"][-1])
    future = random_walk_candles(3, start_ms=1_893_456_000_000)  # 2030-01-01
    future["ts"][-1] = 2**63 - 1
    with Database(tmp_path / "db.sqlite") as db:
        db.candles.upsert("binance", "BTC/USDT", "1h", candles)
        db.candles.upsert("binance", "BTC/USDT", "1h", future)
        assert db.candles.summary("binance", "BTC/USDT", "1h").last_ts == 2**63 - 1  # unbounded: all of them
        bounded = db.candles.summary("binance", "BTC/USDT", "1h", until_ms=closed)
        assert (bounded.count, bounded.first_ts, bounded.last_ts) == (50, START, closed)
        # unbounded, the window is the ten hours before the last candle of all: only that one is in it
        assert db.candles.count_recent("binance", "BTC/USDT", "1h", span_ms=10 * HOUR_MS, limit=100) == 1
        assert db.candles.count_recent("binance", "BTC/USDT", "1h", span_ms=10 * HOUR_MS, limit=100,
                                       until_ms=closed) == 10
        performance = db.read_performance("binance", "BTC/USDT", "1h", window=10, until_ts=closed)
        assert (performance.candles, performance.last_candle_ts) == (50, closed)
        assert db.read_performance("binance", "BTC/USDT", "1h", window=10).candles == 53
