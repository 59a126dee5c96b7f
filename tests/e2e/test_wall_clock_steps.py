"""The wall clock stepped forward and back under a running daemon: nothing changes, market time drives it all.

Every process of the daemon runs with tests/support/wallclock_shift.c preloaded, so the test steps their
wall clock (a day forward, then two back) as `date -s` or an NTP step would, and kills children after each
step, so that processes started on the stepped clock meet the ones that were not. At 18,000x a day of wall
time read as market time would be 49 years of candles: the market must instead move with real elapsed
time alone, with no gap, no duplicate, no candle from the future and a signal for every candle.

The second test runs a ccxt source against the local fake Binance in a process with the stepped clock:
the exchange's time is its own, whatever the local wall clock says.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.timeframes import HOUR_MS
from tests.support.config import simulated_config
from tests.support.daemon import Daemon, signal_coverage
from tests.support.data import ROOT
from tests.support.fake_exchange import FakeBinance
from tests.support.wallclock import WallClockShift

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(WallClockShift.unavailable()),
                                                   reason=WallClockShift.unavailable() or "")]
SPEED = 18_000  # market seconds per real second: five 1h candles a second
DAY_S = 86_400.0


def market_ms(daemon: Daemon) -> int:
    return int(daemon.status()["daemon"]["market_time_ms"])


def restart(daemon: Daemon, name: str) -> None:
    pid = daemon.child_pid(name)
    assert pid
    os.kill(pid, signal.SIGKILL)
    daemon.wait_for(lambda: (p := next(c for c in daemon.status()["processes"] if c["name"] == name))["pid"]
                    not in (None, pid) and p["ready"], 60, f"{name} restarted")


def test_wall_clock_steps_change_nothing_in_a_running_daemon(tmp_path: Path) -> None:
    shift = WallClockShift.build(tmp_path / "shim")
    config = simulated_config(tmp_path / "state", market={"simulated": {"speed": SPEED}},
                              auto_training={"enabled": False})
    daemon = Daemon(tmp_path, config).start(**shift.env())
    try:
        daemon.wait_ready()
        daemon.wait_for(lambda: daemon.query("SELECT COUNT(*) FROM signals")[0][0] >= 10, 60, "first signals")
        readings = [(time.monotonic(), market_ms(daemon))]
        for step in (DAY_S, -2 * DAY_S):
            shift.step(step)
            time.sleep(0.5)
            readings.append((time.monotonic(), market_ms(daemon)))  # the supervisor's clock, never restarted
            for name in ("ingest", "inference", "trainer"):  # processes started on the stepped clock
                restart(daemon, name)
            wanted = daemon.query("SELECT MAX(candle_ts) FROM signals")[0][0] + 20 * HOUR_MS
            daemon.wait_for(lambda w=wanted: daemon.query("SELECT MAX(candle_ts) FROM signals")[0][0] >= w,
                            60, f"signals after a step of {step:+.0f} s")
            readings.append((time.monotonic(), market_ms(daemon)))
        status = daemon.status()
        newest_candle = daemon.query("SELECT MAX(ts) FROM candles")[0][0]
    finally:
        code = daemon.shutdown()
    log = daemon.log()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log and "from the future" not in log

    # the market moved with real time at its speed, through both steps (tolerance: a second of the
    # status round trips and the children's restarts, at most 5 candles)
    for (t0, m0), (t1, m1) in zip(readings, readings[1:], strict=False):
        expected = (t1 - t0) * SPEED * 1000
        assert abs((m1 - m0) - expected) <= 5 * HOUR_MS, (readings, (m1 - m0) / HOUR_MS, expected / HOUR_MS)
    assert abs(status["daemon"]["market_time_ms"] - (newest_candle + 2 * HOUR_MS)) <= 5 * HOUR_MS

    restarts = {p["name"]: p["restarts"] for p in status["processes"]}
    assert restarts == {"supervisor": 0, "ingest": 2, "inference": 2, "trainer": 2}
    gaps = daemon.query("SELECT COUNT(*) FROM (SELECT ts - LAG(ts) OVER (ORDER BY ts) AS step FROM candles)"
                        " WHERE step != 3600000")[0][0]
    assert gaps == 0
    start = json.loads((daemon.config.state_dir / "signal-start.json").read_text())["simulated|BTC/USDT|1h"]
    candles, signals, missing, lag = signal_coverage(daemon, "simulated", "BTC/USDT", "1h", start)
    assert candles >= 50 and missing == 0 and signals == candles and lag <= 5
    assert daemon.query("SELECT COUNT(*) FROM (SELECT candle_ts FROM signals GROUP BY candle_ts"
                        " HAVING COUNT(*) > 1)")[0][0] == 0


PROBE = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from autoretrain.daemon.foundation.config import build_config
    from autoretrain.daemon.market.market_time import MarketTime
    from autoretrain.daemon.processes.ingest import open_market

    state, params, shift_file = Path(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3])
    config = build_config({"paths": {"state_dir": str(state), "runtime_dir": str(state / "run")},
                           "market": {"source": "ccxt", "exchange": "binance", "timeframe": "1h",
                                      "poll_interval": 0.2, "exchange_params": params}}, env={})
    config.runtime_dir.mkdir(parents=True, exist_ok=True)
    source = open_market(config)  # ingest's source: it shares its readings of the exchange's clock
    source.now_ms()
    for step in (0, 86400, -172800):
        shift_file.write_text(str(step))
        time.sleep(0.3)
        fresh = MarketTime(config)  # a process started on the stepped clock (inference restarted)
        print(json.dumps({"step": step, "wall_ms": time.time() * 1000, "source_ms": source.now_ms(),
                          "market_ms": fresh.shown_ms()}), flush=True)
""")


def test_an_exchanges_time_is_its_own_whatever_the_local_wall_clock_says(tmp_path: Path) -> None:
    shift = WallClockShift.build(tmp_path / "shim")
    exchange_start = 1_747_000_000_000  # the exchange's clock: a year and a half behind this machine's
    started = time.monotonic()

    def exchange_now() -> int:
        return int(exchange_start + (time.monotonic() - started) * 1000)

    with FakeBinance(now_ms=exchange_now, history_start_ms=exchange_start - 30 * 24 * HOUR_MS) as fake:
        probe = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "state"),
                                json.dumps(fake.exchange_params(timeout_ms=2000)), str(shift.shift_file)],
                               env={**os.environ, "PYTHONPATH": str(ROOT), **shift.env()},
                               capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    readings = [json.loads(line) for line in probe.stdout.splitlines()]
    assert [r["step"] for r in readings] == [0, 86400, -172800]
    first = readings[0]
    for reading in readings:
        # the local wall clock moved by the step; the exchange's time, read by ingest and by a process
        # started afterwards, moved by the real time in between alone (a second of tolerance)
        assert abs(reading["wall_ms"] - first["wall_ms"] - reading["step"] * 1000) < 5_000
        real = reading["source_ms"] - first["source_ms"]
        assert 0 <= real < 5_000, readings
        assert abs(reading["market_ms"] - reading["source_ms"]) < 1_000, readings
        assert abs(reading["source_ms"] - exchange_now()) < 120_000
