"""The whole loop on the simulated market: signals, first model, hot-swap, regime switch, retrain, status.

Real processes (supervisor, ingest, inference, trainer), real sockets, real SQLite, real onnxruntime.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from daemon.timeframes import iso, parse_iso_ms
from tests.conftest import HOUR_MS, ROOT, run_ctl
from tests.daemon_harness import FAST_SUPERVISOR, Daemon, signal_coverage

pytestmark = pytest.mark.slow
SWITCH_TS = parse_iso_ms("2024-01-01T00:00:00Z") + 1300 * HOUR_MS  # momentum -> mean reversion


def performance_retrain_done(daemon: Daemon) -> bool:
    rows = daemon.query("SELECT COUNT(*) FROM retrain_runs WHERE trigger = 'performance' AND status IN"
                        " ('promoted', 'rejected') AND requested_market_ts > ?", SWITCH_TS)
    return rows[0][0] > 0


def demo_config(state_dir: Path) -> dict:
    """The README's demo (examples/demo.yaml) as shipped, with its state in the test's directory."""
    config = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    config["paths"] = {"state_dir": str(state_dir)}
    config["supervisor"] = dict(FAST_SUPERVISOR)
    config["heartbeat_interval"] = 2
    return config


def test_demo_lifecycle_from_first_signal_to_retrain_after_a_regime_switch(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, demo_config(tmp_path / "state")).start()
    try:
        daemon.wait_ready()
        daemon.wait_for(lambda: performance_retrain_done(daemon), 200, "a performance retrain after the switch")
        status = daemon.status()
        text = run_ctl("--config", str(daemon.config_path), "status")
        as_json = run_ctl("--config", str(daemon.config_path), "status", "--json")
    finally:
        code = daemon.shutdown()
    log = daemon.log()
    assert code == 0, log[-3000:]

    # status tells the truth about processes and the symbol
    names = {p["name"]: p for p in status["processes"]}
    assert set(names) == {"supervisor", "ingest", "inference", "trainer"}
    assert all(p["pid"] and p["rss_mb"] for p in names.values())
    symbol = status["symbols"][0]
    assert symbol["symbol"] == "BTC/USDT" and symbol["candles"] > 1300 and symbol["price"] > 0
    assert symbol["promoted_version"] is not None and symbol["signals"] > 0
    assert symbol["last_retrain"]["trigger"] in ("performance", "train_at_start", "first_model")
    assert text.returncode == 0 and "BTC/USDT 1h: price" in text.stdout and "PROCESS" in text.stdout
    assert json.loads(as_json.stdout)["symbols"][0]["symbol"] == "BTC/USDT"

    config = daemon.config
    start = json.loads((config.state_dir / "signal-start.json").read_text())["simulated|BTC/USDT|1h"]
    candles, signals, missing, lag = signal_coverage(daemon, "simulated", "BTC/USDT", "1h", start)
    algorithm_only = daemon.query("SELECT COUNT(*) FROM signals WHERE model_version IS NULL")[0][0]
    with_model = daemon.query("SELECT COUNT(*) FROM signals WHERE model_version IS NOT NULL")[0][0]
    activations = daemon.query("SELECT version, market_ts FROM model_activations ORDER BY id")
    runs = daemon.query("SELECT trigger, status, reason, version FROM retrain_runs ORDER BY id")
    newest_candle = daemon.query("SELECT MAX(ts) FROM candles")[0][0]

    # every closed candle after the start of live signals has exactly one signal, across every swap
    assert candles > 200 and missing == 0 and signals == candles and lag <= 3
    assert algorithm_only > 0 and with_model > 0
    # the first model came from training at start, was promoted and hot-swapped in
    assert runs[0][:2] == ("train_at_start", "promoted")
    assert activations[0][0] in (None, "v0001") and any(version == "v0001" for version, _ in activations)
    assert "Hot-swapped BTC/USDT model none -> v0001" in log
    assert "New model saved for BTC/USDT (accuracy:" in log
    # the market switched regime and the policy fired for the reason it gave
    assert newest_candle > SWITCH_TS
    assert (f"simulated market: BTC/USDT 1h switches from momentum to mean_reversion (autocorrelation -0.50, "
            f"volatility 0.0100) at candle {iso(SWITCH_TS)}") in log
    fired = re.findall(r"Performance degraded for BTC/USDT, scheduling retrain \(trigger performance: (.*)\)\n", log)
    performance_runs = [r for r in runs if r[0] == "performance"]
    assert fired and performance_runs
    assert {r[2] for r in performance_runs} <= set(fired)
    assert any(r[1] in ("promoted", "rejected") for r in performance_runs)
    assert "Starting background retrain for BTC/USDT" in log and "Retrain completed for BTC/USDT" in log
    assert re.search(r"Epoch \d+/20 \| Val Accuracy: \d+\.\d%", log)
    assert ("Keeping existing model for BTC/USDT" in log) or log.count("New model saved for BTC/USDT") >= 2
    assert re.search(r"Heartbeat \| BTC/USDT \| Price: \$[\d,]+\.\d\d \| Candles: \d+ \| Signals: \d+ \| "
                     r"Win Rate: (\d+\.\d%|n/a) \| Needs Retrain: (True|False) \| Last Retrain: ", log)
    # clean stop: nothing left in the runtime directory
    assert daemon.notify.seen("STOPPING=1")
    assert list(config.runtime_dir.glob("*")) == []
