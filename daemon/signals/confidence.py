"""Confidence bounds for a proportion (numpy-free): the backtest's intervals and the drift test's reference."""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # two-sided 95 %
Z95_ONE_SIDED = 1.6448536269514722


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion (95 % two-sided by default; None without trials)."""
    if trials <= 0:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def lower_bound(proportion: float, trials: int) -> float:
    """The one-sided 95 % Wilson lower bound of a proportion measured on `trials` samples."""
    interval = wilson_interval(round(proportion * trials), trials, Z95_ONE_SIDED)
    return proportion if interval is None else interval[0]
