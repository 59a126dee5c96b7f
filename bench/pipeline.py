"""End-to-end pipeline benchmark through the real processes (supervisor, ingest, inference, trainer).

Prints one JSON document with:
- candle-close -> signal-published latency p50/p99 for 1, 10 and 100 symbols (simulated market; the
  close is the wall time at which the market clock reached the candle's close, the publication time
  is the `sent_at` of the `signal` event on the bus; every symbol has a promoted model), split into
  `latency_stages`: close -> `candle` hint sent by ingest, and hint -> `signal` sent by inference;
- predictions lost during 20 promotions under load (10 symbols): candles without a signal, and
  signals of the swapped symbol made without a model; the longest gap between two consecutive signals
  of that symbol while swapping versus without swaps;
- RSS of every process; seconds from start to READY=1.

Usage: .venv/bin/python bench/pipeline.py [--seconds 20] [--symbols 1,10,100]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test harness (tests/support) drives the daemon here too

from autoretrain.daemon.foundation.config import load_config  # noqa: E402
from autoretrain.daemon.foundation.timeframes import HOUR_MS, parse_iso_ms  # noqa: E402
from autoretrain.ipc.bus import Subscriber, bus_endpoints  # noqa: E402
from autoretrain.ipc.messages import CandleClosed, Envelope, ModelSwapped, SignalMade, Topic  # noqa: E402
from autoretrain.models.registry import Registry  # noqa: E402
from tests.support.cli import run_ctl  # noqa: E402
from tests.support.daemon import Daemon  # noqa: E402
from tests.support.models import register_copy  # noqa: E402

HISTORY = 700


def symbols(count: int) -> list[str]:
    return ["BTC/USDT"] + [f"S{i:03d}/USDT" for i in range(1, count)]


def bench_config(directory: Path, count: int, speed: float) -> dict[str, Any]:
    return {
        "paths": {"state_dir": str(directory / "state")},
        "market": {"source": "simulated", "symbols": symbols(count), "timeframe": "1h", "backfill_days": 60,
                   "simulated": {"seed": 5, "speed": speed, "history_candles": HISTORY}},
        "auto_training": {"enabled": False},
        "training": {"epochs": 3, "min_candles": 400, "days": 25},
        "promotion": {"eval_candles": 100, "min_eval_samples": 50},
        "inference": {"model_check_interval": 0.5},
        "heartbeat_interval": 3600,
        "logging": {"level": "WARNING"},
    }


def ctl(config: Path, *args: str) -> None:
    result = run_ctl("--config", str(config), *args, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"autoretrainctl {' '.join(args)} failed: {result.stderr.strip()}")


def prepare_models(config_path: Path, count: int) -> None:
    """Two trained versions of BTC/USDT; every other symbol gets a copy of them (same model, own registry)."""
    ctl(config_path, "download", "BTC/USDT", "--days", "60")
    ctl(config_path, "train", "BTC/USDT", "--promote", "always")
    ctl(config_path, "train", "BTC/USDT", "--promote", "never")
    config = load_config(config_path, env={})
    registry = Registry(config.models_dir)
    for symbol in symbols(count)[1:]:
        for version in ("v0001", "v0002"):
            register_copy(registry, symbol, "1h", registry.version_dir("BTC/USDT", "1h", version))
        registry.promote(symbol, "1h", "v0001")


class Running:
    """The daemon (the tests' harness) plus a subscriber on its bus that records every event with its time."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.config = daemon.config
        started = time.monotonic()
        daemon.start()
        daemon.wait_ready(timeout=300)
        self.ready_s = time.monotonic() - started
        self.context = zmq.Context()
        self.events = Subscriber(self.context, bus_endpoints(self.config.runtime_dir)[1],
                                 (Topic.SIGNAL, Topic.CANDLE, Topic.MODEL_SWAPPED))
        anchor = json.loads((self.config.state_dir / "market-clock.json").read_text())["anchor_wall"]
        simulated = self.config.market.simulated
        self.origin_ms = parse_iso_ms(simulated.start) + simulated.history_candles * HOUR_MS
        self.anchor = float(anchor)
        self.speed = simulated.speed

    def close_wall(self, candle_ts: int) -> float:
        """Wall time at which the candle opening at candle_ts closed on the market clock."""
        return self.anchor + (candle_ts + HOUR_MS - self.origin_ms) / 1000.0 / self.speed

    def collect(self, seconds: float, during: Any = None) -> list[Envelope]:
        events: list[Envelope] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if during is not None:
                during()
            if self.events.sock.poll(50):
                events.extend(self.events.drain())
        return events

    def stop(self) -> None:
        self.events.close()
        self.context.term()
        self.daemon.shutdown(timeout=60)


def signals_of(events: list[Envelope]) -> list[tuple[SignalMade, float]]:
    return [(e.message, e.sent_at) for e in events if isinstance(e.message, SignalMade)]


def latencies_ms(run: Running, events: list[Envelope]) -> np.ndarray:
    return np.array([(sent - run.close_wall(signal.candle_ts)) * 1000 for signal, sent in signals_of(events)])


def stages_ms(run: Running, events: list[Envelope]) -> dict[str, Any]:
    """Where the latency goes: close -> `candle` hint sent by ingest -> `signal` sent by inference."""
    hinted = {(e.message.symbol, e.message.ts): e.sent_at for e in events if isinstance(e.message, CandleClosed)}
    ingest, inference = [], []
    for signal, signal_sent in signals_of(events):
        sent = hinted.get((signal.symbol, signal.candle_ts))
        if sent is not None:
            ingest.append((sent - run.close_wall(signal.candle_ts)) * 1000)
            inference.append((signal_sent - sent) * 1000)
    return {"close_to_candle_hint": summary(np.array(ingest)),
            "candle_hint_to_signal": summary(np.array(inference))}


def summary(values: np.ndarray) -> dict[str, Any]:
    if len(values) == 0:
        return {"count": 0}
    return {"count": int(len(values)), "p50_ms": round(float(np.percentile(values, 50)), 2),
            "p99_ms": round(float(np.percentile(values, 99)), 2), "max_ms": round(float(values.max()), 2)}


def longest_gap_s(events: list[Envelope], symbol: str) -> float | None:
    times = sorted(sent for signal, sent in signals_of(events) if signal.symbol == symbol)
    return round(float(np.diff(times).max()), 3) if len(times) > 1 else None


def lost_predictions(run: Running, symbol: str, since_ts: int) -> dict[str, int]:
    query = run.daemon.query
    newest = query("SELECT MAX(candle_ts) FROM signals WHERE symbol = ?", symbol)[0][0]
    candles = query("SELECT COUNT(*) FROM candles c JOIN series s ON s.id = c.series_id WHERE s.symbol = ?"
                    " AND c.ts > ? AND c.ts <= ?", symbol, since_ts, newest)[0][0]
    signals = query("SELECT COUNT(*), SUM(model_version IS NULL) FROM signals WHERE symbol = ? AND"
                    " candle_ts > ? AND candle_ts <= ?", symbol, since_ts, newest)[0]
    return {"candles": int(candles), "signals": int(signals[0]), "missing_signals": int(candles - signals[0]),
            "signals_without_model": int(signals[1] or 0)}


def bench_symbols(count: int, seconds: float, with_promotions: bool) -> dict[str, Any]:
    # candles arrive every `interval` seconds: fast enough to measure, slow enough to keep up
    interval = {1: 0.1, 10: 0.25, 100: 2.0}.get(count, max(0.1, count * 0.02))
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(Path(tmp), bench_config(Path(tmp), count, speed=3600.0 / interval))
        prepare_models(daemon.config_path, count)
        run = Running(daemon)
        try:
            run.collect(2.0)  # let the catch-up after start pass
            steady = run.collect(seconds)
            result: dict[str, Any] = {"symbols": count, "candle_interval_s": interval, "start_to_ready_s":
                                      round(run.ready_s, 2), "latency": summary(latencies_ms(run, steady)),
                                      "latency_stages": stages_ms(run, steady)}
            if with_promotions:
                promotions = {"done": 0, "next": time.monotonic()}
                first_ts = max(signal.candle_ts for signal, _ in signals_of(steady))

                def promote() -> None:
                    if promotions["done"] < 20 and time.monotonic() >= promotions["next"]:
                        version = "v0002" if promotions["done"] % 2 == 0 else "v0001"
                        run.daemon.request("promote", symbol="BTC/USDT", version=version)
                        promotions["done"] += 1
                        promotions["next"] = time.monotonic() + 0.6

                swapping = run.collect(0.6 * 20 + 2.0, during=promote)
                swaps = sum(1 for e in swapping if isinstance(e.message, ModelSwapped))
                result["promotions"] = {"promotions": promotions["done"], "hot_swaps": swaps,
                                        **lost_predictions(run, "BTC/USDT", first_ts),
                                        "longest_gap_during_swaps_s": longest_gap_s(swapping, "BTC/USDT"),
                                        "longest_gap_without_swaps_s": longest_gap_s(steady, "BTC/USDT"),
                                        "latency_during_swaps": summary(latencies_ms(run, swapping))}
            status = run.daemon.status()
            result["rss_mb"] = {p["name"]: p["rss_mb"] for p in status["processes"]}
        finally:
            run.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--symbols", default="1,10,100")
    args = parser.parse_args()
    results = [bench_symbols(int(n), args.seconds, with_promotions=int(n) == 10) for n in args.symbols.split(",")]
    json.dump({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "runs": results},
              sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
