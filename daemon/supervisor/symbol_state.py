"""One symbol's state as operators see it: `status` fields and the guide's heartbeat line.

Built from durable state only (the store, the registry pointer) plus what the processes report
(the version inference serves, the trainer's epoch), through the same performance and policy code
inference runs (`daemon.retrain_policy.assess`), so `status` and the daemon never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.formatting import pct
from autoretrain.daemon.foundation.timeframes import iso
from autoretrain.daemon.loop.assess import assess
from autoretrain.daemon.loop.watch import drift_reference, expected_accuracy
from autoretrain.daemon.signals.policy import PolicyInputs, scope_text
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.views.history import tallies
from autoretrain.models.registry import Registry, RegistryError


@dataclass(frozen=True)
class SymbolState:
    symbol: str
    timeframe: str
    candles: int
    last_candle_ts: int | None
    price: float | None
    promoted_version: str | None
    model_version: str | None
    signals: int
    win_rate: float | None
    pnl_pct: float | None
    needs_retrain: bool
    retrain_reason: str
    retrain_trigger: str | None
    last_retrain: dict[str, Any] | None
    training: dict[str, Any]
    performance: dict[str, Any]
    win_rate_scope: str = ""
    model_record: dict[str, Any] | None = None  # the serving model's own record in its current window
    counts: dict[str, Any] = field(default_factory=dict)  # since the store began: trades, retrains, promotions
    error: str | None = None  # why the state could not be read (a damaged store): the rest is empty

    @classmethod
    def unreadable(cls, symbol: str, timeframe: str, error: str) -> SymbolState:
        """The state of a symbol whose store reads failed: the heartbeat and `status` say why, and go on."""
        return cls(symbol=symbol, timeframe=timeframe, candles=0, last_candle_ts=None, price=None,
                   promoted_version=None, model_version=None, signals=0, win_rate=None, pnl_pct=None,
                   needs_retrain=False, retrain_reason=f"state unreadable: {error}", retrain_trigger=None,
                   last_retrain=None, training={}, performance={}, error=error)

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol, "timeframe": self.timeframe, "candles": self.candles,
            "last_candle": iso(self.last_candle_ts), "price": self.price,
            "promoted_version": self.promoted_version, "model_version": self.model_version,
            "signals": self.signals, "win_rate": self.win_rate, "win_rate_scope": self.win_rate_scope,
            "win_rate_record": "the combined signal's settled trades (direction right / trades)",
            "pnl_pct": self.pnl_pct, "pnl_record": "the combined signal's settled trades, net of fees, since the start",
            "model_record": self.model_record,
            "needs_retrain": self.needs_retrain, "retrain_reason": self.retrain_reason,
            "retrain_trigger": self.retrain_trigger, "last_retrain": self.last_retrain,
            "training": self.training, "performance": self.performance, "counts": self.counts, "error": self.error,
        }

    def heartbeat_line(self) -> str:
        """The guide's `Heartbeat | Price: … | Candles: … | Signals: … | Win Rate: …% | Needs Retrain: … | Last Retrain: …`."""
        if self.error is not None:
            return f"Heartbeat | {self.symbol} | state unreadable: {self.error}"
        price = f"${self.price:,.2f}" if self.price is not None else "n/a"
        win = pct(self.win_rate)
        last = (self.last_retrain or {}).get("market_time") or "never"
        line = (f"Heartbeat | {self.symbol} | Price: {price} | Candles: {self.candles} | Signals: {self.signals} | "
                f"Win Rate: {win} | Needs Retrain: {self.needs_retrain} | Last Retrain: {last}")
        record = self.model_record
        if record and record.get("version"):
            line += (f" | Model {record['version']}: direction {pct(record['direction_accuracy'])} over "
                     f"{record['predictions']} predictions{' (benched)' if record.get('benched') else ''}")
        if self.training.get("in_progress"):
            line += f" | training in progress (epoch {self.training.get('epoch')}/{self.training.get('epochs') or '?'})"
        return line


def read_symbol_state(config: Config, db: Database, registry: Registry, symbol: str, *,
                      serving_version: str | None, serving_known: bool,
                      training: dict[str, Any] | None, closed_until_ms: int | None = None) -> SymbolState:
    """The symbol's state from the store and the registry; candles only up to `closed_until_ms` (the newest
    closed one: a candle from the future that the store holds is neither the price nor the last candle)."""
    timeframe = config.market.timeframe
    exchange = config.store_exchange
    try:
        promoted = registry.promoted(symbol, timeframe)
    except RegistryError:
        promoted = None
    latest = db.candles.latest(exchange, symbol, timeframe, 1, end_ms=closed_until_ms)
    meta = registry.promoted_meta(symbol, timeframe) if promoted is not None else None
    accuracy = expected_accuracy(meta)
    performance, decision = assess(db, config, exchange, symbol, timeframe, has_model=promoted is not None,
                                   accuracy=drift_reference(meta), until_ms=closed_until_ms)
    since_start = performance.since_start
    measured = PolicyInputs.from_performance(performance, has_model=promoted is not None,
                                             scope=config.auto_training.win_rate_scope)
    last_run = performance.retrain.last
    in_progress = training is not None  # the trainer reports this job: it is really training now
    return SymbolState(
        symbol=symbol, timeframe=timeframe, candles=performance.candles, last_candle_ts=performance.last_candle_ts,
        price=float(latest["close"][-1]) if len(latest) else None, promoted_version=promoted,
        model_version=serving_version if serving_known else None,
        signals=since_start.signals, win_rate=measured.win_rate,
        pnl_pct=since_start.pnl_total_pct if since_start.signals else None,
        needs_retrain=decision.retrain, retrain_reason=decision.reason, retrain_trigger=decision.trigger,
        last_retrain=last_run.as_dict() if last_run is not None else None,
        training={"in_progress": in_progress, "epoch": (training or {}).get("epoch"),
                  "epochs": (training or {}).get("epochs"), "run_id": (training or {}).get("run_id"),
                  "queued_or_running": performance.retrain.in_progress},
        win_rate_scope=scope_text(config, "settled "),
        performance=performance.as_dict(),
        model_record={"version": performance.current_version, "record": "the model's own predictions, in the vote "
                      "or not, since it started serving", **performance.model_current.as_dict(),
                      "evaluation_accuracy": accuracy, "benched": performance.benched}
        if performance.current_version else None,
        counts=tallies(db, config, symbol),
    )
