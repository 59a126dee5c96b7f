"""kill -9 of each child in turn: restarted with backoff, no lost candle, no missing or duplicate signal."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from autoretrain.models.runtime import ModelRunner
from tests.support.config import simulated_config
from tests.support.daemon import Daemon, signal_coverage
from tests.support.models import prepare_champion, wait_for_unseen_candles

pytestmark = pytest.mark.slow


MIN_EVAL_SAMPLES = 50  # tests.support.config's promotion.min_eval_samples


def restarted(daemon: Daemon, name: str, old_pid: int) -> bool:
    child = next(p for p in daemon.status()["processes"] if p["name"] == name)
    return child["pid"] not in (None, old_pid) and child["ready"] and child["restarts"] >= 1


def kill_and_wait(daemon: Daemon, name: str) -> int:
    pid = daemon.child_pid(name)
    assert pid
    os.kill(pid, signal.SIGKILL)
    daemon.wait_for(lambda: restarted(daemon, name, pid), 60, f"{name} restarted")
    return pid


def test_kill_9_of_each_child_loses_nothing(tmp_path: Path) -> None:
    config = simulated_config(tmp_path / "state", market={"simulated": {"seed": 3, "speed": 18000,
                                                                        "history_candles": 1000}},
                              auto_training={"enabled": False}, training={"epochs": 1000, "patience": 1000})
    daemon = Daemon(tmp_path, config)
    registry, champion = prepare_champion(daemon, epochs=5)
    assert champion == "v0001"
    daemon.start()
    try:
        daemon.wait_ready()
        assert daemon.status()["symbols"][0]["model_version"] == champion

        kill_and_wait(daemon, "ingest")
        kill_and_wait(daemon, "inference")

        # the trainer is killed in the middle of a job; a challenger is judged only on candles that did not
        # choose the champion (promotion.min_eval_samples = 50 windows of them), so the test waits for enough
        wait_for_unseen_candles(daemon, registry, champion, MIN_EVAL_SAMPLES)
        queued = daemon.request("retrain", symbol="BTC/USDT")
        daemon.wait_for(lambda: ((daemon.status()["symbols"][0]["training"] or {}).get("epoch") or 0) >= 2, 120,
                        "the trainer in the middle of an epoch")
        trainer = kill_and_wait(daemon, "trainer")
        run = daemon.wait_for(lambda: (r := daemon.request("run", id=queued["run_id"]))["status"] == "failed" and r,
                              30, "the interrupted run marked failed")
        assert "interrupted" in json.dumps(run["detail"])

        # the store keeps filling after the last restart
        newest = daemon.query("SELECT MAX(candle_ts) FROM signals")[0][0]
        daemon.wait_for(lambda: daemon.query("SELECT MAX(candle_ts) FROM signals")[0][0] > newest + 20 * 3_600_000,
                        60, "signals after the restarts")
        status = daemon.status()
    finally:
        code = daemon.shutdown()
    log = daemon.log()
    assert code == 0, log[-3000:]
    restarts = {p["name"]: p["restarts"] for p in status["processes"]}
    assert restarts == {"supervisor": 0, "ingest": 1, "inference": 1, "trainer": 1}
    for name in ("ingest", "inference", "trainer"):
        assert f"{name} exited with signal 9; restarting in" in log

    # no missing candle: the series has no gap since the simulated market began
    gaps = daemon.query("SELECT COUNT(*) FROM (SELECT ts - LAG(ts) OVER (ORDER BY ts) AS step FROM candles)"
                        " WHERE step != 3600000")[0][0]
    assert gaps == 0
    # every candle since live signals began has exactly one signal (the store refuses duplicates)
    start = json.loads((daemon.config.state_dir / "signal-start.json").read_text())["simulated|BTC/USDT|1h"]
    candles, signals, missing, lag = signal_coverage(daemon, "simulated", "BTC/USDT", "1h", start)
    assert candles > 40 and missing == 0 and signals == candles and lag <= 3
    duplicates = daemon.query("SELECT COUNT(*) FROM (SELECT candle_ts FROM signals GROUP BY candle_ts"
                              " HAVING COUNT(*) > 1)")[0][0]
    assert duplicates == 0

    # no promotion completed (auto-training is off, the one job was killed): the champion is unchanged,
    # and every version on disk is whole
    assert daemon.query("SELECT COUNT(*) FROM retrain_runs WHERE status = 'promoted' AND id > 1")[0][0] == 0
    assert registry.promoted("BTC/USDT", "1h") == champion
    for info in registry.versions("BTC/USDT", "1h"):
        assert info.error is None
        ModelRunner.load(info.path)
    # the supervisor saw the trainer die in the job: it marked the run failed with the cause, once
    assert (f"retrain run {queued['run_id']} for BTC/USDT was interrupted: the trainer (pid {trainer}) was killed by "
            "signal 9 (SIGKILL" in log)
    assert "was interrupted (its process is gone)" not in log
