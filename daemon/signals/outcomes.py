"""Settling signals against what the market did, from stored candles only.

A signal made at the close of candle t is settled at the close of candle t + horizon: the horizon of
the model that served it (the move that model predicts; `model.horizon` when no model served). The
exit candle must be in the store at exactly that open time; while it is missing (not closed yet, or a
gap the ingest has not filled) the signal stays pending: a gap delays settlement, it never fakes it
with a neighbouring candle.

Per signal:
- `return_pct`: 100 * (exit close / entry close - 1), the gross move.
- `correct` (BUY and SELL only): the predicted direction happened, with the model's label definition
  (up means the exit close is strictly higher): BUY is correct when exit > entry, SELL when exit <= entry.
- `pnl_pct` (BUY and SELL only): +return_pct for BUY, -return_pct for SELL, minus the fee on BOTH
  sides: `signals.fee_bps` is charged per side, so a round trip costs 2 * fee_bps / 100 percent.
  HOLD is not a trade: no `correct`, no PnL.
The same is computed for the algorithms' own vote (`algo_correct`, `algo_pnl_pct`) and for the model's
own record (`model_correct`: its direction on every candle it predicted, as offline evaluation scores it;
`model_pnl_pct`: the trade its probability alone would have made), whether or not it was in the vote.

This module is the arithmetic; `store.signals.SignalTable.settle` finds the due signals and writes
their outcomes, idempotently (an outcome row is keyed by its signal and written once, in the same
transaction that clears the signal's pending flag, so settling twice or from two processes settles once).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from autoretrain.daemon.foundation.timeframes import iso
from autoretrain.daemon.signals.vote import BUY, SELL


@dataclass(frozen=True)
class Outcome:
    signal_id: int
    candle_ts: int
    action: str
    entry_price: float
    exit_ts: int
    exit_price: float
    return_pct: float
    correct: bool | None
    pnl_pct: float | None
    algo_correct: bool | None
    algo_pnl_pct: float | None
    horizon: int
    fee_bps: float
    model_correct: bool | None = None  # the model's direction (P(up) > 0.5 means up) happened; None: no model
    model_pnl_pct: float | None = None  # the model's own trade, net of fees; None: no model, or it held
    model_in_vote: bool = False  # the model's vote was part of the combined signal

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "time": iso(self.candle_ts), "exit_time": iso(self.exit_ts)}


def trade_result(action: str, entry: float, exit_: float, fee_bps: float) -> tuple[bool | None, float | None]:
    """(correct, net PnL %) of acting on `action` from entry to exit close; (None, None) for HOLD."""
    if action not in (BUY, SELL):
        return None, None
    move_pct = 100.0 * (exit_ / entry - 1.0)
    up = exit_ > entry
    direction = 1.0 if action == BUY else -1.0
    return (up if action == BUY else not up), direction * move_pct - 2.0 * fee_bps / 100.0


def model_direction_correct(probability: float | None, entry: float, exit_: float) -> bool | None:
    """Whether the model's direction happened, on every candle it predicted (what offline evaluation scores:
    up when P(up) > 0.5, and up means the exit close is strictly higher)."""
    if probability is None:
        return None
    return (probability > 0.5) == (exit_ > entry)
