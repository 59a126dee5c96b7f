"""Candles as numpy records, and the checks every candle passes before it may be stored.

A batch of candles is a 1-D structured array of `CANDLE_DTYPE` (open time in ms UTC, then OHLCV).
Every source (ccxt, CSV, simulated) runs its candles through `validate`, which returns the valid ones
and a reason for each rejected one, and through `normalise`, which sorts them, collapses exact
duplicates and reports conflicting ones (same open time, different values).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoretrain.daemon.foundation.timeframes import alignment_offset_ms, iso, timeframe_ms
from autoretrain.ipc.candles import CANDLE_DTYPE

PRICE_FIELDS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class Rejection:
    """A candle that failed validation: where it was in its batch, its open time and why."""

    index: int
    ts: int | None
    reason: str

    def describe(self) -> str:
        when = iso(self.ts) if self.ts is not None else "unknown time"
        return f"{when}: {self.reason}"


@dataclass(frozen=True)
class Conflict:
    """Two candles with the same open time and different values (indices into the input batch)."""

    ts: int
    first_index: int
    second_index: int


def empty() -> np.ndarray:
    return np.empty(0, dtype=CANDLE_DTYPE)


#: 9999-12-31T23:59:59.999Z: a later open time is no real candle (and fits neither iso() nor every int64 path)
LATEST_TS_MS = 253_402_300_799_999


def from_rows(rows: Iterable[Sequence[Any]]) -> tuple[np.ndarray, list[Rejection]]:
    """Candles from `[ts, o, h, l, c, v]` rows (ccxt's shape); rows that are not six numbers are rejected."""
    good: list[tuple[int, float, float, float, float, float]] = []
    rejected: list[Rejection] = []
    for index, row in enumerate(rows):
        try:
            if len(row) < 6:
                raise ValueError
            ts_value = float(row[0])
            o, h, lo, c, v = (float(value) for value in row[1:6])
        except (TypeError, ValueError):
            ts_guess = row[0] if isinstance(row, (list, tuple)) and row and isinstance(row[0], int) else None
            rejected.append(Rejection(index, ts_guess, f"malformed row {row!r:.80}"))
            continue
        if not np.isfinite(ts_value) or ts_value != int(ts_value):
            rejected.append(Rejection(index, None, f"timestamp is not an integer: {row[0]!r}"))
            continue
        if not 0 <= ts_value <= LATEST_TS_MS:
            rejected.append(Rejection(index, None, f"timestamp out of range: {row[0]!r}"))
            continue
        good.append((int(ts_value), o, h, lo, c, v))
    return np.array(good, dtype=CANDLE_DTYPE), rejected


def _first_reasons(candles: np.ndarray, timeframe: str, now_ms: int | None) -> list[str | None]:
    step = timeframe_ms(timeframe)
    offset = alignment_offset_ms(timeframe)
    prices = np.stack([candles[f] for f in PRICE_FIELDS], axis=1) if len(candles) else np.empty((0, 4))
    volume = candles["volume"]
    ts = candles["ts"]
    checks: list[tuple[Any, str]] = [
        (~np.isfinite(prices).all(axis=1) | ~np.isfinite(volume), "non-finite value (NaN or infinity)"),
        ((prices <= 0).any(axis=1), "price not positive"),
        (candles["high"] < np.maximum(candles["open"], candles["close"]), "high below open or close"),
        (candles["low"] > np.minimum(candles["open"], candles["close"]), "low above open or close"),
        (volume < 0, "negative volume"),
        (ts <= 0, "timestamp not positive"),
        ((ts - offset) % step != 0, f"open time not aligned to {timeframe}"),
    ]
    if now_ms is not None:
        checks.append((ts + step > now_ms, "candle not closed yet"))
    reasons: list[str | None] = [None] * len(candles)
    for mask, reason in checks:
        for index in np.flatnonzero(mask):
            if reasons[index] is None:
                reasons[index] = reason
    return reasons


def validate(candles: np.ndarray, timeframe: str, now_ms: int | None = None) -> tuple[np.ndarray, list[Rejection]]:
    """Split a batch into valid candles and rejections (finite, > 0, high/low consistent, aligned, closed).

    A candle repeated within the batch is rejected once.
    """
    if len(candles) == 0:
        return candles, []
    with np.errstate(invalid="ignore"):
        reasons = _first_reasons(candles, timeframe, now_ms)
    bad = [i for i, r in enumerate(reasons) if r is not None]
    if not bad:
        return candles, []
    keep = np.ones(len(candles), dtype=bool)
    keep[bad] = False
    rejected: dict[tuple[int, str], Rejection] = {}
    for i in bad:
        ts, reason = int(candles["ts"][i]), reasons[i] or ""
        rejected.setdefault((ts, reason), Rejection(i, ts, reason))
    return candles[keep], list(rejected.values())


def normalise(candles: np.ndarray) -> tuple[np.ndarray, list[Conflict]]:
    """Sort by open time, collapse exact duplicates, report conflicting duplicates (the last one wins)."""
    if len(candles) == 0:
        return candles, []
    order = np.argsort(candles["ts"], kind="stable")
    ordered = candles[order]
    same_as_next = ordered["ts"][1:] == ordered["ts"][:-1]
    conflicts: list[Conflict] = []
    if same_as_next.any():
        for position in np.flatnonzero(same_as_next):
            a, b = ordered[position], ordered[position + 1]
            if a.tobytes() != b.tobytes():
                conflicts.append(Conflict(int(a["ts"]), int(order[position]), int(order[position + 1])))
        keep_last = np.append(~same_as_next, True)
        ordered = ordered[keep_last]
    return ordered, conflicts

