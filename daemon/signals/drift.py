"""The drift trigger: a sequential test on the model's own direction errors (Page's CUSUM, Bernoulli).

While a model serves, every candle it predicted is, once settled, an error (its direction did not
happen) or not. Promotion measured its accuracy on unseen candles, so its expected error rate is
p0 = 1 - that accuracy; the loop takes the accuracy's one-sided 95 % lower bound
(`loop.watch.drift_reference`), because the measured figure is noisy and, for the chosen of several
candidates, biased up. The log-likelihood-ratio CUSUM of "the error rate rose to p1 = p0 + shift"
against "it is still p0" adds log(p1/p0) for an error and log((1-p1)/(1-p0)) for a right call, never
falls below 0, and alarms when it reaches the threshold h. Its error rates are known and tested
(docs/triggers.md, tests/signals/test_drift.py, bench/triggers.py): with shift 0.10 and h 8, under 0.01
false alarm per 1,000 predictions of a model as good as expected, and an alarm some 80 predictions after
its accuracy drops from 64 % to 36 %, where the guide's win rate since the last retrain takes about 1,100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class ErrorCusum:
    """CUSUM state for one model; `update` says whether this error (or right call) raised the alarm."""

    p0: float
    shift: float
    threshold: float
    score: float = 0.0
    seen: int = 0
    errors: int = 0

    def __post_init__(self) -> None:
        self.p0 = min(max(self.p0, 0.01), 0.98)
        self.p1 = min(self.p0 + self.shift, 0.99)
        self._up = math.log(self.p1 / self.p0)
        self._down = math.log((1 - self.p1) / (1 - self.p0))

    def update(self, error: bool) -> bool:
        self.seen += 1
        self.errors += int(error)
        self.score = max(0.0, self.score + (self._up if error else self._down))
        return self.score >= self.threshold

    def reset(self) -> None:
        """After an alarm has been acted on: watch again from here."""
        self.score = 0.0

    def describe(self) -> str:
        rate = self.errors / self.seen if self.seen else 0.0
        return (f"the model's direction error rate ({100 * rate:.1f}% over its {self.seen} settled predictions) "
                f"has risen above the {100 * self.p0:.1f}% its evaluation allows: CUSUM {self.score:.1f} >= "
                f"{self.threshold:g} (shift {self.shift:g})")
