"""A second fake exchange: a local HTTP server on 127.0.0.1 that answers like Bybit's public v5 REST API.

Binance and Bybit differ where a source can get them wrong: Bybit answers errors with HTTP 200 and a
`retCode` in the body (10006 "Too many visits!" for a rate limit, 10016 "System error. Please try
again later." for a passing failure, which ccxt maps to a plain `ExchangeError`), says when its rate
limit resets in `X-Bapi-Limit-Reset-Timestamp` (epoch ms on its own clock, on every response) rather
than `Retry-After`, and lists candles newest first. It serves `/v5/market/time`,
`/v5/market/instruments-info` (spot) and `/v5/market/kline` from the same deterministic series as
`FakeBinance`; ccxt's own `bybit` class talks to it through `exchange_params()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.support.fake_exchange import INTERVALS_MS, FakeBinance, Fault

#: Bybit's interval names for the timeframes the fake serves
BYBIT_INTERVALS = {"1": "1m", "3": "3m", "5": "5m", "15": "15m", "30": "30m", "60": "1h", "120": "2h",
                   "240": "4h", "360": "6h", "720": "12h", "D": "1d"}
RATE_LIMITED = (10006, "Too many visits!")
SYSTEM_ERROR = (10016, "System error. Please try again later.")


def code_fault(code: tuple[int, str], reset_in_s: float | None = None) -> Fault:
    """A kline answer of HTTP 200 with this retCode; `reset_in_s` moves the rate-limit reset header."""
    return Fault("code", code=code[0], message=code[1], reset_in_s=reset_in_s)


@dataclass
class FakeBybit(FakeBinance):
    """The fake Bybit; faults as FakeBinance's plus `code_fault(...)` answers (a retCode with HTTP 200)."""

    def _envelope(self, result: Any, code: int = 0, message: str = "OK") -> bytes:
        return json.dumps({"retCode": code, "retMsg": message, "result": result, "retExtInfo": {},
                           "time": self.clock()}).encode()

    def _limit_headers(self, reset_in_s: float | None = None) -> dict[str, str]:
        """Bybit's rate-limit headers: the reset is "now" unless the limit was exceeded."""
        reset = self.clock() + int(1000 * (reset_in_s or 0.0))
        return {"X-Bapi-Limit": "600", "X-Bapi-Limit-Status": "0" if reset_in_s else "599",
                "X-Bapi-Limit-Reset-Timestamp": str(reset)}

    def _instruments(self) -> dict[str, Any]:
        return {"category": "spot", "nextPageCursor": "", "list": [
            {"symbol": symbol, "baseCoin": base, "quoteCoin": quote, "innovation": "0", "status": "Trading",
             "marginTrading": "none",
             "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.00000001", "minOrderQty": "0.00001",
                               "maxOrderQty": "100", "minOrderAmt": "1", "maxOrderAmt": "1000000"},
             "priceFilter": {"tickSize": "0.01"}}
            for symbol, (base, quote) in self.symbols.items()]}

    def _bybit_klines(self, params: dict[str, str]) -> dict[str, Any]:
        interval = BYBIT_INTERVALS.get(params.get("interval", ""), "")
        if params.get("symbol") not in self.symbols or interval not in INTERVALS_MS:
            raise ValueError("bad symbol or interval")
        binance_params = {"symbol": params["symbol"], "interval": interval, "limit": params.get("limit", "200")}
        if "start" in params:
            binance_params["startTime"] = params["start"]
        if "end" in params:
            binance_params["endTime"] = params["end"]
        rows = self._klines(binance_params)  # the same series, faults (NaN, ...) and clock as FakeBinance
        newest_first = [[str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), str(r[7])]
                        for r in reversed(rows)]
        return {"symbol": params["symbol"], "category": "spot", "list": newest_first}

    def _kline_fault(self) -> tuple[int, dict[str, str], bytes, str | None] | None:
        with self._lock:
            self.klines_requests += 1
            fault = self.faults.get(self.klines_requests)
        if fault is None:
            return None
        if fault.kind == "code":
            label = f"retCode {fault.code}"
            with self._lock:
                self.faults_served.append(label)
            return 200, self._limit_headers(fault.reset_in_s), self._envelope({}, fault.code, fault.message), label
        with self._lock:
            self.faults_served.append(f"status {fault.status}" if fault.kind == "status" else fault.kind)
        if fault.kind == "status":
            return fault.status, {}, b"<html>Bad Gateway</html>", f"status {fault.status}"
        if fault.kind == "malformed":
            return 200, {}, b'{"retCode":0,"retMsg":"OK","result":{"list":[["1514764800000","13715.65"', "malformed"
        if fault.kind == "empty":
            return 200, self._limit_headers(), self._envelope({"symbol": "", "category": "spot", "list": []}), "empty"
        return None

    def _respond(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, str], bytes, str | None]:
        if path.endswith("/v5/market/kline"):
            faulted = self._kline_fault()
            if faulted is not None:
                return faulted
            try:
                return 200, self._limit_headers(), self._envelope(self._bybit_klines(params)), None
            except (ValueError, KeyError):
                return 200, self._limit_headers(), self._envelope({}, 10001, "params error: symbol invalid"), None
        if path.endswith("/v5/market/time"):
            now = self.clock()
            return 200, {}, self._envelope({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}), None
        if path.endswith("/v5/market/instruments-info"):
            return 200, self._limit_headers(), self._envelope(self._instruments()), None
        return 404, {}, json.dumps({"retCode": 404, "retMsg": "not found"}).encode(), None

    def exchange_params(self, timeout_ms: int = 2000) -> dict[str, Any]:
        """`market.exchange_params` that point ccxt's bybit class at this server (spot markets only)."""
        base = self.base_url
        return {"urls": {"api": {name: base for name in ("spot", "futures", "v2", "public", "private")}},
                "options": {"fetchMarkets": {"types": ["spot"]}}, "timeout": timeout_ms}
