"""A scripted market for the outcome, performance and policy tests: candles that rise by one every hour,
and signals that are right (BUY) or wrong (SELL) as a script says."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autoretrain.daemon.foundation.timeframes import HOUR_MS
from autoretrain.daemon.signals.vote import BUY, HOLD, SELL, Signal
from autoretrain.daemon.store.database import Database
from autoretrain.ipc.candles import CANDLE_DTYPE

EX, SYM, TF = "binance", "BTC/USDT", "1h"
BASE_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def ts_at(index: int) -> int:
    return BASE_MS + index * HOUR_MS


def rising(first: int, count: int) -> np.ndarray:
    """Candles `first`..`first+count-1` of a market whose close rises by 1 every candle (close = 100 + index)."""
    index = np.arange(first, first + count)
    out = np.zeros(count, dtype=CANDLE_DTYPE)
    out["ts"] = ts_at(0) + index * HOUR_MS
    out["close"] = 100.0 + index
    out["open"] = out["close"] - 1.0
    out["high"], out["low"], out["volume"] = out["close"] + 0.5, out["open"] - 0.5, 10.0
    return out


def trade(index: int, action: str, version: str | None = None, algo_action: str | None = None, *,
          horizon: int = 1) -> Signal:
    """A signal at candle `index` of the rising market (BUY is right there, SELL wrong), settled `horizon`
    candles later; with a model `version`, the model made the same call."""
    probability = {BUY: 0.6, SELL: 0.4, HOLD: 0.5}[action]
    return Signal(candle_ts=ts_at(index), price=100.0 + index, action=action, confidence=max(probability, 1 - probability),
                  probability_up=probability, model_version=version, model_probability=probability if version else None,
                  components={"rsi": 0.1}, algo_action=algo_action or action, algo_probability=probability,
                  model_action=action if version else None, horizon=horizon)


class Market:
    """Plays a script on the rising market, one candle a character, like the daemon: store the candle,
    record its signal, settle. W: a right trade (BUY), L: a wrong one (SELL), H: HOLD."""

    ACTIONS = {"W": BUY, "L": SELL, "H": HOLD}

    def __init__(self, db_path: Path, *, horizon: int = 1, fee_bps: float = 10.0) -> None:
        self.db = Database(db_path)
        self.conn = self.db.conn
        self.candles = self.db.candles
        self.signals = self.db.signals
        self.horizon, self.fee_bps = horizon, fee_bps
        self.next = 0

    @property
    def now_ms(self) -> int:
        """Open time of the newest candle played."""
        return ts_at(self.next - 1)

    def history(self, count: int) -> None:
        """Candles without signals (a backfill)."""
        self.candles.upsert(EX, SYM, TF, rising(self.next, count))
        self.next += count

    def play(self, script: str, version: str | None = None, *, settle: bool = True) -> None:
        for char in script:
            self.candles.upsert(EX, SYM, TF, rising(self.next, 1))
            self.signals.record(EX, SYM, TF, trade(self.next, self.ACTIONS[char], version, horizon=self.horizon))
            self.next += 1
            if settle:
                self.settle_all()

    def settle_all(self) -> None:
        """Store the candles the pending signals wait for (without advancing the clock) and settle."""
        self.candles.upsert(EX, SYM, TF, rising(self.next, self.horizon))
        self.signals.settle(EX, SYM, TF, horizon=self.horizon, fee_bps=self.fee_bps)

    def activate(self, version: str | None) -> bool:
        return self.signals.record_activation(EX, SYM, TF, version, ts_at(self.next))

    def close(self) -> None:
        self.db.close()
