"""A local HTTP server on 127.0.0.1 that answers like Binance's public spot REST API.

It serves `/api/v3/ping`, `/api/v3/time`, `/api/v3/exchangeInfo` and `/api/v3/klines` (plus empty
futures `exchangeInfo`, so ccxt's default market loading works) from a deterministic random-walk
series, and injects faults on demand: HTTP 429 with Retry-After, 5xx, malformed JSON, a stalled
response, empty pages, duplicate and out-of-order candles within a page, corrupt candles (NaN,
negative price, an open time off the grid, a twin from years ahead) and, while `down` is set, an outage
(every request answers 503). Real ccxt talks to it through `exchange_params()` (a `urls` override).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

INTERVALS_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
                "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000, "12h": 43_200_000,
                "1d": 86_400_000}


#: how far ahead a 'future' corruption dates the twin of a candle (five years)
FUTURE_TWIN_MS = 5 * 365 * 86_400_000


@dataclass
class Fault:
    """What to do to the n-th klines request: kind is 'status', 'malformed', 'stall' or 'empty' (and, for
    exchanges that answer errors in the body, 'code': `code` and `message` with HTTP 200, see fake_bybit)."""

    kind: str
    status: int = 0
    retry_after: float | None = None
    stall_s: float = 0.0
    code: int = 0
    message: str = ""
    reset_in_s: float | None = None


@dataclass
class RequestRecord:
    path: str
    params: dict[str, str]
    status: int
    fault: str | None = None


@dataclass
class FakeBinance:
    """The fake exchange. `now_ms` is its clock: a fixed time, or a callable for a moving clock."""

    now_ms: int | Callable[[], int]
    history_start_ms: int
    symbols: dict[str, tuple[str, str]] = field(default_factory=lambda: {"BTCUSDT": ("BTC", "USDT"),
                                                                      "ETHUSDT": ("ETH", "USDT")})
    seed: int = 1
    faults: dict[int, Fault] = field(default_factory=dict)
    corrupt: dict[int, str] = field(default_factory=dict)
    duplicate_and_shuffle: bool = False
    missing: set[int] = field(default_factory=set)
    down: bool = False  # while True every request answers 503 Service Unavailable (an outage)

    def __post_init__(self) -> None:
        self.requests: list[RequestRecord] = []
        self.klines_requests = 0
        self.faults_served: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._cache: dict[tuple[str, str], list[list[Any]]] = {}

    # -- market data ----------------------------------------------------------------------------------

    def clock(self) -> int:
        return int(self.now_ms() if callable(self.now_ms) else self.now_ms)

    def candle_at(self, symbol: str, interval: str, open_ms: int) -> list[Any]:
        """The candle that opens at open_ms, derived from the open time alone (so any range is consistent)."""
        rng = random.Random(f"{self.seed}:{symbol}:{interval}:{open_ms}")
        step = INTERVALS_MS[interval]
        base = 20000.0 + 10000.0 * math.sin(open_ms / (step * 500.0))
        open_price = base * (1 + rng.uniform(-0.01, 0.01))
        close_price = open_price * (1 + rng.uniform(-0.02, 0.02))
        high = max(open_price, close_price) * (1 + rng.uniform(0, 0.01))
        low = min(open_price, close_price) * (1 - rng.uniform(0, 0.01))
        volume = rng.uniform(10, 1000)
        return [open_ms, f"{open_price:.2f}", f"{high:.2f}", f"{low:.2f}", f"{close_price:.2f}", f"{volume:.5f}",
                open_ms + step - 1, f"{volume * close_price:.2f}", rng.randint(100, 5000), "0", "0", "0"]

    def expected_open_times(self, interval: str, start_ms: int, end_ms: int) -> list[int]:
        """Open times the exchange holds in [start, end], before corruption (missing ones excluded)."""
        step = INTERVALS_MS[interval]
        first = max(self.history_start_ms, -(-start_ms // step) * step)
        return [t for t in range(first, end_ms + 1, step) if t not in self.missing]

    def _klines(self, params: dict[str, str]) -> list[list[Any]]:
        symbol = params.get("symbol", "")
        interval = params.get("interval", "")
        if symbol not in self.symbols or interval not in INTERVALS_MS:
            raise ValueError("bad symbol or interval")
        step = INTERVALS_MS[interval]
        limit = min(int(params.get("limit", 500)), 1000)
        now = self.clock()
        newest_open = now // step * step
        end = min(int(params["endTime"]), newest_open) if "endTime" in params else newest_open
        if "startTime" in params:
            start = max(int(params["startTime"]), self.history_start_ms)
            times = self.expected_open_times(interval, start, end)[:limit]
        else:
            times = self.expected_open_times(interval, self.history_start_ms, end)[-limit:]
        rows = [self.candle_at(symbol, interval, t) for t in times]
        for row in rows:
            kind = self.corrupt.get(row[0])
            if kind == "nan":
                row[4] = "NaN"
            elif kind == "negative":
                row[1] = "-5.00"
            elif kind == "high_below":
                row[2] = f"{min(float(row[1]), float(row[4])) * 0.9:.2f}"
            elif kind == "misaligned":
                row[0] += 1000  # one second off the timeframe's grid
        for open_ms in [row[0] for row in rows if self.corrupt.get(row[0]) == "future"]:
            twin = self.candle_at(symbol, interval, open_ms)
            twin[0] = open_ms + FUTURE_TWIN_MS  # the same candle again, dated years ahead
            rows.append(twin)
        if self.duplicate_and_shuffle and len(rows) > 2:
            rows = rows + rows[: len(rows) // 3]
            random.Random(f"{self.seed}:{params.get('startTime')}").shuffle(rows)
        return rows

    def _exchange_info(self) -> dict[str, Any]:
        def market(symbol: str, base: str, quote: str) -> dict[str, Any]:
            return {
                "symbol": symbol, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
                "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True,
                "ocoAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "NONE",
                "allowedSelfTradePreventionModes": ["NONE"],
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
                    {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.00", "stepSize": "0.00001"},
                ],
            }

        return {"timezone": "UTC", "serverTime": self.clock(), "rateLimits": [], "exchangeFilters": [],
                "symbols": [market(s, b, q) for s, (b, q) in self.symbols.items()]}

    # -- HTTP -----------------------------------------------------------------------------------------

    def _respond(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, str], bytes, str | None]:
        if self.down:
            return 503, {}, b"<html>503 Service Unavailable</html>", "down"
        if path.endswith("/klines"):
            with self._lock:
                self.klines_requests += 1
                fault = self.faults.get(self.klines_requests)
                if fault is not None:
                    self.faults_served.append(f"status {fault.status}" if fault.kind == "status" else fault.kind)
            if fault is not None:
                if fault.kind == "status":
                    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                    body = json.dumps({"code": -1003, "msg": "Too many requests."}) if fault.status == 429 else "<html>Bad Gateway</html>"
                    return fault.status, headers, body.encode(), f"status {fault.status}"
                if fault.kind == "malformed":
                    return 200, {}, b'[[1514764800000, "13715.65", "13818.55"', "malformed"
                if fault.kind == "stall":
                    time.sleep(fault.stall_s)
                if fault.kind == "empty":
                    return 200, {}, b"[]", "empty"
            try:
                rows = self._klines(params)
            except (ValueError, KeyError):
                return 400, {}, json.dumps({"code": -1121, "msg": "Invalid symbol."}).encode(), None
            return 200, {}, json.dumps(rows).encode(), (fault.kind if fault else None)
        if path.endswith("/api/v3/time"):
            return 200, {}, json.dumps({"serverTime": self.clock()}).encode(), None
        if path.endswith("/api/v3/ping"):
            return 200, {}, b"{}", None
        if path.endswith("/api/v3/exchangeInfo"):
            return 200, {}, json.dumps(self._exchange_info()).encode(), None
        if path.endswith("/exchangeInfo"):  # futures: no markets
            return 200, {}, json.dumps({"timezone": "UTC", "serverTime": self.clock(), "symbols": []}).encode(), None
        return 404, {}, json.dumps({"code": -1, "msg": "not found"}).encode(), None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                url = urlparse(self.path)
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                status, headers, body, fault = fake._respond(url.path, params)
                with fake._lock:
                    fake.requests.append(RequestRecord(url.path, params, status, fault))
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                return

        return Handler

    def start(self) -> FakeBinance:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-binance", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def exchange_params(self, timeout_ms: int = 2000) -> dict[str, Any]:
        """`market.exchange_params` that point real ccxt at this server."""
        base = self.base_url
        return {
            "urls": {"api": {"public": f"{base}/api/v3", "private": f"{base}/api/v3", "v1": f"{base}/api/v1",
                             "fapiPublic": f"{base}/fapi/v1", "dapiPublic": f"{base}/dapi/v1",
                             "sapi": f"{base}/sapi/v1"}},
            "timeout": timeout_ms,
        }
