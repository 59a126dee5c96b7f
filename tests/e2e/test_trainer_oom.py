"""The trainer killed by the kernel's OOM killer in the middle of a job: the job failed saying so, the champion
kept, the cooldown applied, inference never interrupted, and the next trainer works.

The OOM is real: the running trainer is moved into a memory cgroup that lets it allocate 64 MiB more (a job
allocates about 260 MiB; an idle trainer well under 1 MiB), as systemd's MemoryMax= would bound the
service. Needs root and a memory controller; skipped with the reason elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.config import simulated_config
from tests.support.daemon import Daemon, signal_coverage
from tests.support.memory_cgroup import MemoryCgroup
from tests.support.models import prepare_champion, wait_for_unseen_candles

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(MemoryCgroup.unavailable()), reason=MemoryCgroup.unavailable() or "")]
HOUR_MS = 3_600_000
COOLDOWN_HOURS = 5_000  # nothing else retrains during the test: the cooldown is what the policy says


def test_an_oom_killed_trainer_fails_its_job_and_nothing_else_stops(tmp_path: Path) -> None:
    config = simulated_config(tmp_path / "state", market={"simulated": {"seed": 3, "speed": 18000}},
                              auto_training={"cooldown_hours": COOLDOWN_HOURS, "max_days_between_retrain": 365},
                              promotion={"min_eval_samples": 20},
                              training={"epochs": 20, "patience": 1000})
    daemon = Daemon(tmp_path, config)
    registry, champion = prepare_champion(daemon, epochs=3)
    group = MemoryCgroup.create(64 * 2**20)
    daemon.start()
    try:
        daemon.wait_ready()
        trainer, inference = daemon.child_pid("trainer"), daemon.child_pid("inference")
        assert trainer and inference
        # a job the trainer would refuse at once (no unseen candles to judge it on) allocates too little
        wait_for_unseen_candles(daemon, registry, champion, 20)  # promotion.min_eval_samples above
        group.add(trainer)
        queued = daemon.request("retrain", symbol="BTC/USDT")
        run = daemon.wait_for(lambda: (r := daemon.request("run", id=queued["run_id"]))["status"] == "failed" and r,
                              120, "the OOM-killed job marked failed")
        assert group.oom_kills() >= 1
        daemon.wait_for(lambda: daemon.child_pid("trainer") not in (None, trainer), 30, "a new trainer")
        state = daemon.wait_for(lambda: (s := daemon.status()["symbols"][0])["retrain_reason"].startswith("cooldown")
                                and s, 30, "the policy's cooldown after the failed job")
        newest = daemon.query("SELECT MAX(candle_ts) FROM signals")[0][0]
        daemon.wait_for(lambda: daemon.query("SELECT MAX(candle_ts) FROM signals")[0][0] > newest + 10 * HOUR_MS,
                        60, "signals after the OOM kill")
        # the new trainer is outside the limit: a job it runs ends as any job does
        again = daemon.request("retrain", symbol="BTC/USDT")
        second = daemon.wait_for(lambda: (r := daemon.request("run", id=again["run_id"]))["status"] not in
                                 ("queued", "running") and r, 180, "the next job to end")
        status = daemon.status()
    finally:
        code = daemon.shutdown()
        group.remove()
    log = daemon.log()
    assert code == 0, log[-3000:]

    error = run["detail"]["error"]
    assert error.startswith(f"interrupted: the trainer (pid {trainer}) was killed by the kernel's OOM killer "
                            f"(oom_kill 0 -> "), error
    assert f"in {group.path}/" in error and "MemoryMax=" in error
    assert ("ERROR | supervisor | trainer exited with signal 9; restarting in" in log
            and "killed by the kernel's OOM killer (oom_kill 0 -> " in log)
    assert f"WARNING | supervisor | retrain run {run['id']} for BTC/USDT was interrupted: the trainer" in log
    assert f"retrain run {run['id']} was interrupted (its process is gone)" not in log  # marked once, with the cause
    assert "Traceback" not in log

    assert state["model_version"] == champion and state["needs_retrain"] is False
    assert "cooldown after the failed retrain at " in state["retrain_reason"]
    assert second["status"] in ("promoted", "rejected"), second
    processes = {p["name"]: p for p in status["processes"]}
    assert processes["inference"]["restarts"] == 0 and processes["inference"]["pid"] == inference
    assert processes["trainer"]["restarts"] == 1 and processes["ingest"]["restarts"] == 0
    assert registry.promoted("BTC/USDT", "1h") in (champion, second["version"])
    start = json.loads((daemon.config.state_dir / "signal-start.json").read_text())["simulated|BTC/USDT|1h"]
    candles, signals, missing, lag = signal_coverage(daemon, "simulated", "BTC/USDT", "1h", start)
    assert candles > 20 and missing == 0 and signals == candles and lag <= 3
