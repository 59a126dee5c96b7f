"""Soak benchmark: the daemon on the simulated market for N simulated months, with random faults, as JSON.

Every `--fault-every` seconds one child, chosen at random (seeded), is `kill -9`ed or SIGSTOPped (a stopped
child is the supervisor's to replace after `supervisor.child_timeout`). At the end it prints: restarts per
process, candles stored, signals, duplicate and missing signals (both must be 0), candle gaps (must be 0),
promotions, RSS per process at the first and last sample and its growth (bound: the last sample within
`--rss-bound-mb` of the median of the second half, i.e. flat after warm-up), open file descriptors at start
and end, the state directory's size at start and end.

    .venv/bin/python bench/soak.py                         # 3 simulated months (~2,200 candles), ~4 minutes
    .venv/bin/python bench/soak.py --months 12 --speed 72000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test harness (tests/support) drives the daemon here too

from tests.support.config import simulated_config  # noqa: E402
from tests.support.daemon import Daemon  # noqa: E402

CHILDREN = ("ingest", "inference", "trainer")
HOURS_PER_MONTH = 730


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def sample(daemon: Daemon) -> dict[str, dict[str, float]]:
    """RSS (MiB) and open fds per process, read with psutil from the pids status reports."""
    out = {}
    for process in daemon.status()["processes"]:
        try:
            proc = psutil.Process(process["pid"])
            out[process["name"]] = {"rss_mb": proc.memory_info().rss / 2**20, "fds": proc.num_fds()}
        except (psutil.Error, TypeError):
            continue
    return out


def inject(daemon: Daemon, rng: random.Random) -> str:
    """kill -9 or SIGSTOP a random child; the fault as text."""
    name = rng.choice(CHILDREN)
    pid = daemon.child_pid(name)
    if not pid:
        return f"{name}: not running"
    how = rng.choice((signal.SIGKILL, signal.SIGSTOP))
    os.kill(pid, how)
    return f"{name}: {how.name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--months", type=float, default=3.0)
    parser.add_argument("--speed", type=float, default=36000.0, help="market seconds per real second")
    parser.add_argument("--fault-every", type=float, default=8.0, help="seconds between faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rss-bound-mb", type=float, default=64.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    seconds = args.months * HOURS_PER_MONTH * 3600 / args.speed
    with tempfile.TemporaryDirectory(prefix="autoretrain-soak-") as tmp:
        tmp_path = Path(tmp)
        config = simulated_config(tmp_path / "state", market={"simulated": {"speed": args.speed}},
                                  supervisor={"child_timeout": 5, "max_restarts": 1000, "restart_window": 60,
                                              "restart_backoff_initial": 0.5, "restart_backoff_max": 2})
        daemon = Daemon(tmp_path, config).start()
        faults: list[str] = []
        samples: list[dict[str, dict[str, float]]] = []
        try:
            daemon.wait_ready()
            started = time.monotonic()
            first = sample(daemon)
            disk_start = directory_bytes(tmp_path / "state")
            next_fault = started + args.fault_every
            while time.monotonic() - started < seconds:
                time.sleep(1.0)
                samples.append(sample(daemon))
                if time.monotonic() >= next_fault:
                    faults.append(inject(daemon, rng))
                    next_fault = time.monotonic() + args.fault_every
            time.sleep(2 * config["supervisor"]["child_timeout"])  # the last stopped child is replaced
            last = sample(daemon)
            status = daemon.status()
            disk_end = directory_bytes(tmp_path / "state")
        finally:
            code = daemon.shutdown()
        report = summarise(daemon, status, first, last, samples, faults, args, seconds, disk_start, disk_end, code)
    print(json.dumps(report, indent=2))


def summarise(daemon: Daemon, status: dict[str, Any], first: dict, last: dict, samples: list[dict],
              faults: list[str], args: argparse.Namespace, seconds: float, disk_start: int, disk_end: int,
              code: int) -> dict[str, Any]:
    query = daemon.query
    candles = query("SELECT COUNT(*) FROM candles")[0][0]
    gaps = query("SELECT COUNT(*) FROM (SELECT ts - LAG(ts) OVER (ORDER BY ts) AS step FROM candles) "
                 "WHERE step != 3600000")[0][0]
    signals = query("SELECT COUNT(*) FROM signals")[0][0]
    duplicates = query("SELECT COUNT(*) FROM (SELECT candle_ts FROM signals GROUP BY exchange, symbol, timeframe, "
                       "candle_ts HAVING COUNT(*) > 1)")[0][0]
    missing = query("SELECT COUNT(*) FROM candles c WHERE c.ts > (SELECT MIN(candle_ts) FROM signals) AND c.ts <= "
                    "(SELECT MAX(candle_ts) FROM signals) AND NOT EXISTS "
                    "(SELECT 1 FROM signals g WHERE g.candle_ts = c.ts)")[0][0]
    promotions = query("SELECT COUNT(*) FROM retrain_runs WHERE status = 'promoted'")[0][0]
    rss = {}
    for name in ("supervisor", *CHILDREN):
        series = [s[name]["rss_mb"] for s in samples if name in s]
        tail = series[len(series) // 2:] or [0.0]
        rss[name] = {"first_mb": round(first.get(name, {}).get("rss_mb", 0.0), 1),
                     "last_mb": round(last.get(name, {}).get("rss_mb", 0.0), 1),
                     "second_half_median_mb": round(statistics.median(tail), 1),
                     "flat": abs(last.get(name, {}).get("rss_mb", 0.0) - statistics.median(tail)) <= args.rss_bound_mb}
    return {
        "benchmark": "soak", "simulated_months": args.months, "wall_s": round(seconds, 1), "speed": args.speed,
        "faults": len(faults), "fault_kinds": {k: sum(f.endswith(k) for f in faults) for k in ("SIGKILL", "SIGSTOP")},
        "restarts": {p["name"]: p["restarts"] for p in status["processes"]},
        "candles": candles, "candle_gaps": gaps, "signals": signals, "duplicate_signals": duplicates,
        "missing_signals": missing, "promotions": promotions, "rss": rss,
        "fds": {name: [first.get(name, {}).get("fds"), last.get(name, {}).get("fds")] for name in ("supervisor", *CHILDREN)},
        "state_dir_bytes": [disk_start, disk_end], "exit_code": code,
        "rss_bound_mb": args.rss_bound_mb,
    }


if __name__ == "__main__":
    main()
