"""Prometheus metrics scraped from a running daemon, read with the official parser, checked against `status`.

The market is a CSV replayed fast that ends: once its last candle is signalled and settled and the retrain
it asked for is done, nothing in the store moves any more, so every per-symbol figure a scrape shows must
equal the one `status --json` shows, exactly. Processes are compared on what stays still (pid, restarts,
up). Then the listeners' failures: a bad endpoint and a port in use are one line and exit 78.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoretrain.daemon.foundation.timeframes import parse_iso_ms
from tests.support.config import simulated_config
from tests.support.daemon import Daemon
from tests.support.data import random_walk_candles

CANDLES, HISTORY = 1150, 1000


def write_csv(path: Path, candles: np.ndarray) -> None:
    rows = [f"{int(c['ts'])},{c['open']:.6f},{c['high']:.6f},{c['low']:.6f},{c['close']:.6f},{c['volume']:.4f}"
            for c in candles]
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")


def scrape(url: str) -> dict[str, Any]:
    """name -> family, and (sample name, sorted labels) -> value."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in families.values() for sample in family.samples}
    return {"families": families, "samples": samples, "text": text}


def quiet(daemon: Daemon) -> dict[str, Any] | None:
    """The status once the replay is over: its last candle signalled (what can settle, settled: the newest signals
    wait for exit candles that never come) and the retrain it asked for done."""
    status = daemon.status()
    state = status["symbols"][0]
    performance = state["performance"]
    done = (state["candles"] == CANDLES and performance["last_signal"] == state["last_candle"]
            and performance["signals_recorded"] > 0
            and not state["training"]["queued_or_running"] and not state["training"]["in_progress"]
            and state["counts"]["retrains"])
    return status if done else None


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, dict[str, Any]]]:
    tmp_path = tmp_path_factory.mktemp("metrics")
    write_csv(tmp_path / "btc.csv", random_walk_candles(CANDLES, seed=3))
    config = simulated_config(tmp_path / "state", market={"source": "csv", "csv": {"BTC/USDT": str(tmp_path / "btc.csv")},
                                                          "replay": {"speed": 72000, "history_candles": HISTORY}},
                              metrics={"endpoint": "127.0.0.1:0"}, dashboard={"endpoint": None})
    daemon = Daemon(tmp_path, config).start()
    try:
        daemon.wait_ready()
        daemon.wait_for(lambda: quiet(daemon), 120, "the replay to end and settle")
        time.sleep(1.5)  # past the status board's 1 s cache: the next reads are fresh
        yield daemon, daemon.wait_for(lambda: quiet(daemon), 30, "a quiet status")
    finally:
        daemon.shutdown()


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def test_every_figure_of_a_scrape_is_the_one_status_reports(replayed: tuple[Daemon, dict[str, Any]]) -> None:
    daemon, _ = replayed
    before = daemon.status()
    scraped = scrape(before["daemon"]["metrics_url"])
    after = daemon.status()
    assert before["symbols"] == after["symbols"], "the store moved: the comparison below would not be exact"
    samples, state = scraped["samples"], before["symbols"][0]
    series = {"symbol": "BTC/USDT", "timeframe": "1h"}
    performance, counts = state["performance"], state["counts"]

    assert samples[("autoretrain_status_ok", ())] == 1.0
    assert samples[("autoretrain_ready", ())] == 1.0
    assert samples[("autoretrain_candles", labels(**series))] == state["candles"] == CANDLES
    assert samples[("autoretrain_last_close", labels(**series))] == state["price"]
    assert samples[("autoretrain_last_candle_timestamp_seconds", labels(**series))] == \
        parse_iso_ms(state["last_candle"]) / 1000
    for action, count in performance["actions"].items():
        assert samples[("autoretrain_signals_total", labels(**series, action=action))] == count
    assert sum(performance["actions"].values()) == performance["signals_recorded"] > 0
    for record in ("combined", "model"):
        for action in ("BUY", "SELL"):
            assert samples[("autoretrain_trades_total", labels(**series, record=record, action=action))] == \
                counts["trades_by_action"][record].get(action, 0)
    settled = performance["since_start"]["signals"]
    assert sum(counts["trades_by_action"]["combined"].values()) == settled > 0
    for window in ("current_model", "rolling", "since_start"):
        stats = performance[window]
        key = labels(**series, record="combined", window=window)
        assert samples.get(("autoretrain_win_rate_ratio", key)) == stats["win_rate"]
        assert samples[("autoretrain_pnl_net_ratio", key)] == pytest.approx(stats["pnl_total_pct"] / 100, abs=1e-12)
    own = performance["model"]["current_model"]
    assert samples.get(("autoretrain_win_rate_ratio", labels(**series, record="model", window="current_model"))) == \
        own["direction_accuracy"]
    info = labels(**series, promoted=state["promoted_version"] or "none", serving=state["model_version"] or "none")
    assert samples[("autoretrain_model_info", info)] == 1.0
    assert samples[("autoretrain_needs_retrain", labels(**series))] == float(state["needs_retrain"])
    assert samples[("autoretrain_training_in_progress", labels(**series))] == 0.0
    retrains = {(row["trigger"], row["result"]): row["count"] for row in counts["retrains"]}
    assert retrains and {(dict(key)["trigger"], dict(key)["result"]): value for (name, key), value in samples.items()
                         if name == "autoretrain_retrains_total"} == retrains
    assert samples[("autoretrain_promotions_total", labels(**series))] == counts["promotions"]
    assert samples[("autoretrain_rejections_total", labels(**series))] == counts["rejections"] == \
        sum(n for (_, result), n in retrains.items() if result == "rejected")
    assert samples[("autoretrain_rollbacks_total", labels(**series))] == counts["rollbacks"] == 0
    # a promotion is a version going live: the one serving now went live once
    assert counts["promotions"] == (1 if state["model_version"] else 0)


def test_processes_and_the_latency_of_every_signal(replayed: tuple[Daemon, dict[str, Any]]) -> None:
    daemon, status = replayed
    scraped = scrape(status["daemon"]["metrics_url"])
    samples = scraped["samples"]
    for row in daemon.status()["processes"]:
        assert samples[("autoretrain_up", labels(process=row["name"]))] == 1.0
        assert samples[("autoretrain_process_resident_memory_bytes", labels(process=row["name"]))] > 10 * 2**20
        assert samples[("autoretrain_process_cpu_seconds_total", labels(process=row["name"]))] > 0
        if row["name"] != "supervisor":
            assert samples[("autoretrain_process_restarts_total", labels(process=row["name"]))] == row["restarts"] == 0
    # inference made every signal of the store, each observed once, from its candle's close
    buckets = [(float(dict(key)["le"]), value) for (name, key), value in samples.items()
               if name == "autoretrain_signal_latency_seconds_bucket"]
    buckets.sort()
    counts = [value for _, value in buckets]
    assert counts == sorted(counts) and buckets[-1][0] == float("inf")
    recorded = status["symbols"][0]["performance"]["signals_recorded"]
    assert samples[("autoretrain_signal_latency_seconds_count", ())] == counts[-1] == recorded
    assert 0 < samples[("autoretrain_signal_latency_seconds_sum", ())] < recorded * 60


def test_names_follow_prometheus_conventions_and_the_stale_market_alert_fires(
        replayed: tuple[Daemon, dict[str, Any]]) -> None:
    _, status = replayed
    scraped = scrape(status["daemon"]["metrics_url"])
    for family in scraped["families"].values():
        assert family.name.startswith("autoretrain_"), family.name
        assert family.documentation.strip(), f"{family.name} has no help text"
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
    assert "# TYPE autoretrain_signal_latency_seconds histogram" in scraped["text"]
    assert "# TYPE autoretrain_model_info gauge" in scraped["text"]  # an info metric is a gauge of value 1
    # README's rule: no candle for 3 timeframes. The replay ended, the market's clock went on: it fires.
    samples = scraped["samples"]
    series = labels(symbol="BTC/USDT", timeframe="1h")
    stale_s = samples[("autoretrain_market_time_seconds", ())] - \
        samples[("autoretrain_last_candle_timestamp_seconds", series)]
    frame = samples[("autoretrain_timeframe_seconds", labels(timeframe="1h"))]
    assert frame == 3600 and stale_s > 4 * frame


def test_the_listener_is_read_only(replayed: tuple[Daemon, dict[str, Any]]) -> None:
    _, status = replayed
    request = urllib.request.Request(status["daemon"]["metrics_url"], data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code in (405, 501)


def test_a_bad_endpoint_is_a_configuration_error(tmp_path: Path) -> None:
    config = simulated_config(tmp_path / "state", metrics={"endpoint": "http://0.0.0.0:9"})
    daemon = Daemon(tmp_path, config).start()
    assert daemon.wait_exit() == 78
    assert daemon.log().strip() == (f"autoretraind: error: {daemon.config_path}: metrics.endpoint: 'http://0.0.0.0:9' "
                                    "is not HOST:PORT (such as 127.0.0.1:9477; null turns it off) "
                                    "(got 'http://0.0.0.0:9')")


@pytest.mark.parametrize("section", ["metrics", "dashboard"])
def test_a_port_in_use_is_one_line_and_no_child_starts(tmp_path: Path, section: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = simulated_config(tmp_path / "state", **{section: {"endpoint": f"127.0.0.1:{port}"}})
        daemon = Daemon(tmp_path, config).start()
        assert daemon.wait_exit() == 78
    lines = daemon.log().strip().splitlines()
    assert lines[-1] == (f"autoretraind: error: {section}.endpoint 127.0.0.1:{port}: cannot listen: Address already "
                         f"in use (another process may hold the port: choose another in {section}.endpoint, or null "
                         "to turn it off)")
    assert "Traceback" not in daemon.log() and not any("spawned" in line or "ingest" in line for line in lines)
    assert not (tmp_path / "state" / "run" / "control.sock").exists()
