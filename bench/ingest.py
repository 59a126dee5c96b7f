"""Ingest throughput: CSV import of the real BTC/USDT files and ccxt download from the local fake exchange.

Prints one JSON document. Usage: .venv/bin/python bench/ingest.py [--repeat N]
The real-data figures are skipped (with the reason) when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoretrain.daemon.foundation.timeframes import DAY_MS, timeframe_ms  # noqa: E402
from autoretrain.daemon.market.backfill import backfill  # noqa: E402
from autoretrain.daemon.market.ccxt_source import CcxtSource  # noqa: E402
from autoretrain.daemon.market.csv_file import read_candle_csv  # noqa: E402
from autoretrain.daemon.market.retry import Backoff  # noqa: E402
from autoretrain.daemon.store.database import Database  # noqa: E402
from tests.support.fake_exchange import FakeBinance  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
FILES = {"1h": DATA / "binance_BTCUSDT_1h_2018-2026.csv.gz", "5m": DATA / "binance_BTCUSDT_5m_2024-12_2026-02.csv.gz"}


def bench_import(path: Path, timeframe: str, repeat: int) -> dict[str, object]:
    """Best of `repeat` runs of read+validate and of the store upsert, each into a fresh store."""
    best_read, best_store, best_total, count = float("inf"), float("inf"), float("inf"), 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            loaded = read_candle_csv(path, timeframe)
            read_done = time.perf_counter()
            with Database(Path(tmp) / "db.sqlite") as db:
                result = db.candles.upsert("binance", "BTC/USDT", timeframe, loaded.candles)
            finished = time.perf_counter()
        count = result.inserted
        best_read = min(best_read, read_done - started)
        best_store = min(best_store, finished - read_done)
        best_total = min(best_total, finished - started)
    return {"candles": count, "seconds": round(best_total, 3), "candles_per_s": round(count / best_total),
            "read_validate_s": round(best_read, 3), "store_s": round(best_store, 3)}


def bench_download(days: int, timeframe: str, rate_limit: bool) -> dict[str, object]:
    step = timeframe_ms(timeframe)
    now = 1_747_000_000_000 // step * step
    with FakeBinance(now_ms=now, history_start_ms=now - (days + 1) * DAY_MS) as fake, \
            tempfile.TemporaryDirectory() as tmp, Database(Path(tmp) / "db.sqlite") as db:
        params = {**fake.exchange_params(), "enableRateLimit": rate_limit}
        source = CcxtSource("binance", params, backoff=Backoff(3, 0.01, 0.05))
        started = time.perf_counter()
        report = backfill(source, db.candles, "BTC/USDT", timeframe, now - days * DAY_MS)
        seconds = time.perf_counter() - started
    return {"timeframe": timeframe, "days": days, "candles": report.inserted, "pages": report.pages,
            "ccxt_rate_limiter": rate_limit, "seconds": round(seconds, 3),
            "candles_per_s": round(report.inserted / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    out: dict[str, object] = {"machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()}}
    imports: dict[str, object] = {}
    for timeframe, path in FILES.items():
        imports[timeframe] = bench_import(path, timeframe, args.repeat) if path.is_file() else {
            "skipped": f"{path} not found"}
    out["import_csv"] = imports
    out["download_fake_exchange"] = [
        bench_download(180, "1h", rate_limit=True),
        bench_download(180, "1h", rate_limit=False),
        bench_download(60, "5m", rate_limit=False),
    ]
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
