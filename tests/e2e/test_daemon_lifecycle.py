"""The whole loop on the simulated market: signals, first model, regime switch, retrain, promotion, hot-swap.

Real processes (supervisor, ingest, inference, trainer), real sockets, real SQLite, real onnxruntime.

How fast accelerated candles arrive before the trainer reads its data varies from run to run, so the
first model's verdict (promoted or refused against the baseline) is not known in advance. The test
therefore asserts the sequence that holds whatever that verdict is: a first training ran at start and
the daemon acted on its verdict consistently; after the regime switch a challenger was promoted and
hot-swapped in between two candles; every candle after the start of live signals has exactly one
signal, each made by the model that was serving at that candle.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from autoretrain.daemon.foundation.timeframes import HOUR_MS, iso, parse_iso_ms
from autoretrain.daemon.signals.policy import RetrainDecision, log_line
from tests.support.cli import run_ctl
from tests.support.config import FAST_SUPERVISOR
from tests.support.daemon import Daemon, signal_coverage
from tests.support.data import ROOT

pytestmark = pytest.mark.slow
SWITCH_TS = parse_iso_ms("2024-01-01T00:00:00Z") + 1100 * HOUR_MS  # momentum -> mean reversion
#: the mean-reversion regime lasts 130 s of wall time at the demo's speed; a first model is tried again
#: after each cooldown (2.4 s, doubling after each refusal up to 9.6 s) until one is promoted, which
#: took 10-60 s after the switch in the runs seen so far
PROMOTION_TIMEOUT_S = 300


def promoted_after_switch(daemon: Daemon) -> tuple[int, str, str, str, int] | None:
    """(run id, version, trigger, reason, requested market time) of the first run requested after the
    regime switch that was promoted, once one has finished."""
    rows = daemon.query("SELECT id, version, trigger, reason, requested_market_ts FROM retrain_runs"
                        " WHERE status = 'promoted' AND requested_market_ts > ? ORDER BY id LIMIT 1", SWITCH_TS)
    return rows[0] if rows else None


def serving_at_least(status: dict, version: str) -> dict | None:
    """The status when it shows `version` (or a later one) both promoted and served by inference."""
    symbol = status["symbols"][0]
    promoted, served = symbol["promoted_version"], symbol["model_version"]
    return status if promoted and promoted == served and int(promoted[1:]) >= int(version[1:]) else None


def demo_config(state_dir: Path) -> dict:
    """The README's demo (examples/demo.yaml) as shipped, with its state in the test's directory."""
    config = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    config["paths"] = {"state_dir": str(state_dir)}
    config["supervisor"] = dict(FAST_SUPERVISOR)
    config["heartbeat_interval"] = 2
    return config


def test_demo_lifecycle_from_first_signal_to_a_promotion_after_a_regime_switch(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, demo_config(tmp_path / "state")).start()
    try:
        daemon.wait_ready()
        run_id, version, trigger, reason, requested_ts = daemon.wait_for(
            lambda: promoted_after_switch(daemon), PROMOTION_TIMEOUT_S, "a challenger promoted after the switch")
        # status follows within a second or two: the challenger (or a later one) promoted and serving
        status = daemon.wait_for(lambda: serving_at_least(daemon.status(), version), 20,
                                 f"status showing {version} promoted and served")
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
    assert symbol["symbol"] == "BTC/USDT" and symbol["candles"] > 1100 and symbol["price"] > 0
    assert symbol["signals"] > 0 and symbol["model_version"] == symbol["promoted_version"]
    assert text.returncode == 0 and "BTC/USDT 1h: price" in text.stdout and "PROCESS" in text.stdout
    assert json.loads(as_json.stdout)["symbols"][0]["symbol"] == "BTC/USDT"

    config = daemon.config
    start = json.loads((config.state_dir / "signal-start.json").read_text())["simulated|BTC/USDT|1h"]
    candles, signals, missing, lag = signal_coverage(daemon, "simulated", "BTC/USDT", "1h", start)
    activations = daemon.query("SELECT version, market_ts FROM model_activations ORDER BY id")
    runs = daemon.query("SELECT id, trigger, status, reason, version, requested_market_ts FROM retrain_runs ORDER BY id")
    served = daemon.query("SELECT candle_ts, model_version FROM signals WHERE candle_ts > ? ORDER BY candle_ts", start)
    newest_candle = daemon.query("SELECT MAX(ts) FROM candles")[0][0]

    # every closed candle after the start of live signals has exactly one signal, across every swap
    assert candles > 100 and missing == 0 and signals == candles and lag <= 3

    # a first model was trained at start, and the daemon acted on its verdict
    first = runs[0]
    assert first[1] == "train_at_start" and first[2] in ("promoted", "rejected")
    if first[2] == "promoted":
        assert first[4] == "v0001" and "Hot-swapped BTC/USDT model none -> v0001" in log
        assert "New model saved for BTC/USDT (accuracy:" in log
    else:
        assert f"No model promoted for BTC/USDT (candidate {first[4]} kept unpromoted)" in log
        assert all(model != first[4] for _, model in served)  # a refused model never serves

    # each signal was made by the model serving at its candle: the activation in force, or no model at
    # all while a version could not serve yet (a model needs its full window of history)
    for candle_ts, model in served:
        in_force = [v for v, since in activations if since <= candle_ts]
        assert model is None or (in_force and model == in_force[-1]), (candle_ts, model, in_force)

    # the market switched regime, named in the log at the right candle
    assert newest_candle > SWITCH_TS
    assert (f"simulated market: BTC/USDT 1h switches from momentum to mean_reversion (autocorrelation -0.70, "
            f"volatility 0.0100) at candle {iso(SWITCH_TS)}") in log

    # the policy fired after the switch for the reason it recorded, and its challenger was hot-swapped in
    assert log_line(RetrainDecision(True, trigger, reason), "BTC/USDT") in log
    assert re.search(rf"Hot-swapped BTC/USDT model (none|v\d+) -> {version} \(from candle ", log)
    swapped_at = next(since for v, since in activations if v == version)
    assert swapped_at > requested_ts  # it serves from a candle after the one the retrain was asked at
    after_swap = [model for candle_ts, model in served if candle_ts >= swapped_at]
    assert after_swap and after_swap[0] == version  # from that very candle on: no candle skipped by the swap
    for run in runs:
        if run[1] not in ("train_at_start", "manual"):  # every policy retrain was logged with its reason
            assert log_line(RetrainDecision(True, run[1], run[3]), "BTC/USDT") in log

    # the guide's lines
    assert "Starting background retrain for BTC/USDT" in log and "Retrain completed for BTC/USDT" in log
    assert "New model saved for BTC/USDT (accuracy:" in log
    assert re.search(r"Epoch \d+/20 \| Val Accuracy: \d+\.\d%", log)
    assert re.search(r"Heartbeat \| BTC/USDT \| Price: \$[\d,]+\.\d\d \| Candles: \d+ \| Signals: \d+ \| "
                     r"Win Rate: (\d+\.\d%|n/a) \| Needs Retrain: (True|False) \| Last Retrain: ", log)
    # clean stop: nothing left in the runtime directory
    assert daemon.notify.seen("STOPPING=1")
    assert list(config.runtime_dir.glob("*")) == []
