"""The retrain queue and history: one active job per series, orphans of dead processes, final statuses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from autoretrain.daemon.store.connection import connect
from autoretrain.daemon.store.retrain_runs import RetrainRuns, owner_alive, this_owner

KEY = ("binance", "BTC/USDT", "1h")


def dead_owner() -> str:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}"


def test_queue_keeps_one_active_job_per_series_and_claim_marks_it_running(tmp_path: Path) -> None:
    runs = RetrainRuns(connect(tmp_path / "db.sqlite"))
    first, new = runs.queue(*KEY, trigger="performance", reason="win rate 40%", requested_market_ts=1)
    again, new_again = runs.queue(*KEY, trigger="manual")
    other, _ = runs.queue("binance", "ETH/USDT", "1h", trigger="manual")
    assert new and not new_again and again == first and other != first
    claimed = runs.claim_next()
    assert claimed is not None and claimed.id == first and claimed.status == "running"
    assert claimed.owner == this_owner() and runs.active(*KEY).id == first
    runs.finish(first, "rejected", version="v0002", data_end_ts=5, detail={"reason": "worse"})
    assert runs.active(*KEY) is None
    assert runs.get(first).as_dict()["status"] == "rejected"
    with pytest.raises(ValueError, match="not a final status"):
        runs.finish(first, "running")


def test_a_run_left_running_by_a_dead_process_is_an_orphan(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    runs = RetrainRuns(conn)
    orphan = runs.start(*KEY, trigger="cli")
    alive = runs.start("binance", "ETH/USDT", "1h", trigger="cli")
    conn.execute("UPDATE retrain_runs SET owner = ? WHERE id = ?", (dead_owner(), orphan))
    assert runs.active(*KEY) is None  # the policy and `retrain` are not blocked by it
    assert runs.queue(*KEY, trigger="manual")[1] is True
    assert runs.fail_orphans() == [orphan]
    assert runs.get(orphan).status == "failed" and "is gone" in runs.get(orphan).detail["error"]
    assert runs.get(alive).status == "running"  # a job in a live process is left alone


def test_owner_liveness() -> None:
    assert owner_alive(this_owner())
    assert not owner_alive(dead_owner())
    assert owner_alive("another-host:1:12.00")
    assert not owner_alive(None) and not owner_alive("garbage") and not owner_alive(f"{socket.gethostname()}:x:1")


def test_a_reused_pid_does_not_keep_an_orphan_alive(tmp_path: Path) -> None:
    """After a reboot the dead trainer's pid often belongs to another process: the start time tells them apart."""
    host, pid, started = this_owner().split(":")
    assert pid == str(os.getpid())
    reused = f"{host}:{pid}:{float(started) - 3600:.2f}"  # this pid, but a process that started an hour earlier
    assert not owner_alive(reused)
    assert owner_alive(f"{host}:{pid}")  # an owner recorded before start times: judged by the pid alone
    conn = connect(tmp_path / "db.sqlite")
    runs = RetrainRuns(conn)
    orphan = runs.start(*KEY, trigger="cli")
    with conn:
        conn.execute("UPDATE retrain_runs SET owner = ? WHERE id = ?", (reused, orphan))
    assert runs.active(*KEY) is None
    assert runs.fail_orphans() == [orphan]
