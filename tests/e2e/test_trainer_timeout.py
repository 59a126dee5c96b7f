"""A retrain job past `training.timeout` fails with the reason; the trainer, inference and the champion go on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.config import simulated_config
from tests.support.daemon import Daemon

pytestmark = pytest.mark.slow


def test_a_job_past_training_timeout_fails_and_nothing_else_stops(tmp_path: Path) -> None:
    config = simulated_config(tmp_path / "state", market={"simulated": {"speed": 18000}},
                              auto_training={"enabled": False},
                              training={"epochs": 10_000, "patience": 10_000, "timeout": 3})
    daemon = Daemon(tmp_path, config).start()
    try:
        daemon.wait_ready()
        queued = daemon.request("retrain", symbol="BTC/USDT")
        run = daemon.wait_for(lambda: (r := daemon.request("run", id=queued["run_id"]))["status"] not in
                              ("queued", "running") and r, 120, "the job to end")
        newest = daemon.query("SELECT MAX(candle_ts) FROM signals")[0][0]
        daemon.wait_for(lambda: daemon.query("SELECT MAX(candle_ts) FROM signals")[0][0] > newest + 10 * 3_600_000,
                        60, "signals after the timed-out job")
        status = daemon.status()
    finally:
        code = daemon.shutdown()
    log = daemon.log()
    assert code == 0, log[-3000:]
    assert run["status"] == "failed"
    assert "training timed out after 3 s (training.timeout)" in json.dumps(run["detail"])
    assert "WARNING | trainer | Retrain failed for BTC/USDT: training timed out after 3 s (training.timeout)" in log
    assert "Traceback" not in log
    processes = {p["name"]: p for p in status["processes"]}
    assert processes["trainer"]["restarts"] == 0 and processes["inference"]["restarts"] == 0
    assert status["symbols"][0]["model_version"] is None  # nothing half-trained was promoted
