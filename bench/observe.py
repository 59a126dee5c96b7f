"""What watching the daemon costs: a Prometheus scrape, a dashboard status and history request, through the
real supervisor of a daemon on the simulated market.

Prints one JSON document: for `/metrics`, `/api/status` and `/api/history` the wall time per request
(p50, p99, max over `--requests` sequential requests) and the body's size; the supervisor's RSS and CPU
seconds before and after; and the p50/p99 of candle-close -> signal latency from the daemon's own
histogram (`autoretrain_signal_latency_seconds`: buckets, so p50/p99 are bucket upper bounds) while the
requests run, to show they do not slow the signal path.

Usage: .venv/bin/python bench/observe.py [--symbols 3] [--requests 200] [--warmup 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.config import simulated_config  # noqa: E402
from tests.support.daemon import Daemon  # noqa: E402

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "ADA/USDT", "BNB/USDT", "DOGE/USDT", "LTC/USDT"]


def timed(url: str, count: int) -> dict[str, Any]:
    times, size = [], 0
    for _ in range(count):
        started = time.perf_counter()
        size = len(urllib.request.urlopen(url, timeout=30).read())
        times.append(time.perf_counter() - started)
    ms = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "max_ms": round(float(ms.max()), 2), "bytes": size, "requests": count}


def _buckets(status: dict[str, Any]) -> list[tuple[str, int]]:
    latency = next(row["signal_latency"] for row in status["processes"] if row["name"] == "inference")
    return [(str(le), int(count)) for le, count in latency["buckets"]]


def latency_quantiles(buckets: list[tuple[str, int]]) -> dict[str, Any]:
    """Signals counted and the bucket bounds that hold 50 % and 99 % of them (cumulative counts)."""
    total = buckets[-1][1]
    out: dict[str, Any] = {"signals": total}
    for name, q in (("p50_s_at_most", 0.5), ("p99_s_at_most", 0.99)):
        out[name] = next((le for le, count in buckets if count >= q * total), "+Inf") if total else None
    return out


def during(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, int]]:
    """The signals made between two status reads: the difference of the cumulative buckets."""
    return [(le, b - a) for (le, a), (_, b) in zip(_buckets(before), _buckets(after), strict=True)]


def supervisor_usage(status: dict[str, Any]) -> dict[str, Any]:
    row = status["processes"][0]
    return {"rss_mb": row["rss_mb"], "cpu_seconds": row["cpu_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = simulated_config(Path(tmp) / "state", market={"symbols": SYMBOLS[: args.symbols]},
                                  metrics={"endpoint": "127.0.0.1:0"}, dashboard={"endpoint": "127.0.0.1:0"})
        daemon = Daemon(Path(tmp), config).start()
        try:
            daemon.wait_ready(180)
            time.sleep(args.warmup)
            before = daemon.status()
            urls = before["daemon"]
            result: dict[str, Any] = {"symbols": args.symbols, "supervisor_before": supervisor_usage(before),
                                      "latency_before_requests": latency_quantiles(_buckets(before))}
            result["metrics"] = timed(urls["metrics_url"], args.requests)
            result["status"] = timed(urls["dashboard_url"] + "api/status", args.requests)
            result["history"] = timed(urls["dashboard_url"] + "api/history?symbol=BTC/USDT", args.requests)
            after = daemon.status()
            result["supervisor_after"] = supervisor_usage(after)
            result["latency_during_requests"] = latency_quantiles(during(before, after))
        finally:
            daemon.shutdown()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
