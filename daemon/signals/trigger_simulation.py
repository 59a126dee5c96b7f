"""Seeded simulation of the retrain triggers on a model's stream of right and wrong calls (numpy only).

One call per candle, right with probability `accuracy`; every trigger sees the same stream. After an
alarm the trigger starts afresh (as if a model of the same quality had been promoted), so false alarms
are counted per 1,000 candles of a stationary model; after a switch to a lower accuracy the detection
delay is the number of candles to the first alarm (capped at the run's end). `docs/triggers.md` quotes
`bench/triggers.py`, which runs this with the accuracies the simulated market gives a model before
and after a regime switch; `tests/signals/test_drift.py` holds the defaults to it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from autoretrain.daemon.signals.confidence import lower_bound
from autoretrain.daemon.signals.drift import ErrorCusum
from autoretrain.daemon.signals.performance import Sample
from autoretrain.daemon.signals.policy import losing_money


class Trigger(Protocol):
    def update(self, right: bool, pnl_pct: float | None = None) -> bool: ...


@dataclass
class WinRateTrigger:
    """The guide's rule (window 0: every call since the last alarm) or a rolling window of the newest calls:
    alarm when the win rate over at least `minimum` calls is below `threshold`."""

    threshold: float = 0.45
    minimum: int = 20
    window: int = 0

    def __post_init__(self) -> None:
        self.calls: deque[bool] = deque(maxlen=self.window or None)
        self.right = 0

    def update(self, right: bool, pnl_pct: float | None = None) -> bool:
        if self.window and len(self.calls) == self.window:
            self.right -= self.calls[0]
        self.calls.append(right)
        self.right += right
        if len(self.calls) >= self.minimum and self.right < self.threshold * len(self.calls):
            self.calls.clear()
            self.right = 0
            return True
        return False


class DriftTrigger:
    """The drift trigger: the CUSUM on errors, its expected error rate from the model's measured accuracy."""

    def __init__(self, accuracy: float, shift: float = 0.10, threshold: float = 5.0, samples: int | None = None) -> None:
        """`samples`: how many the accuracy was measured on; given, the test expects its 95 % lower bound, as
        the daemon does (`loop.watch.drift_reference`)."""
        expected = lower_bound(accuracy, samples) if samples else accuracy
        self.cusum = ErrorCusum(1.0 - expected, shift, threshold)

    def update(self, right: bool, pnl_pct: float | None = None) -> bool:
        if self.cusum.update(not right):
            self.cusum.reset()
            return True
        return False


class MoneyTrigger:
    """The losing-money trigger (`policy.losing_money`) on the model's own trades since the last alarm; a
    candle without a trade (`pnl_pct` None) adds nothing."""

    def __init__(self, minimum: int = 20, t_limit: float = -2.0) -> None:
        self.minimum, self.t_limit = minimum, t_limit
        self.trades = Sample()

    def update(self, right: bool, pnl_pct: float | None = None) -> bool:
        if pnl_pct is None:
            return False
        self.trades = Sample(self.trades.n + 1, self.trades.total + pnl_pct, self.trades.squares + pnl_pct * pnl_pct)
        if losing_money(self.trades, self.minimum, self.t_limit) is not None:
            self.trades = Sample()
            return True
        return False


def false_alarms_per_1000(make: Callable[[], Trigger], accuracy: float, *, candles: int, runs: int,
                          seed: int) -> float:
    rng = np.random.default_rng(seed)
    alarms = 0
    for _ in range(runs):
        trigger = make()
        alarms += sum(trigger.update(bool(right)) for right in rng.random(candles) < accuracy)
    return 1000.0 * alarms / (candles * runs)


def detection_delay(make: Callable[[], Trigger], before: float, after: float, *, warmup: int, horizon: int,
                    runs: int, seed: int) -> float:
    """Mean candles from the switch to the first alarm (an alarm before it restarts the watch; `horizon` if none)."""
    rng = np.random.default_rng(seed)
    delays = []
    for _ in range(runs):
        trigger = make()
        for right in rng.random(warmup) < before:
            if trigger.update(bool(right)):
                trigger = make()
        delay = horizon
        for candle, right in enumerate(rng.random(horizon) < after):
            if trigger.update(bool(right)):
                delay = candle + 1
                break
        delays.append(delay)
    return float(np.mean(delays))
