"""One signal per closed candle: the weighted vote of the algorithms and, once promoted, the model.

The vote (documented in docs/signals.md):

    score         = sum(weight_i * vote_i) / sum(weight_i)       over the votes that are not None
    probability_up = (1 + score) / 2                              in [0, 1]

Algorithm votes are in [-1, 1] (`daemon.algorithms`) with weights `signals.algorithms.*`; the model's
vote is `2 * p - 1` for its probability p that the close `model.horizon` candles ahead is higher,
with weight `signals.model_weight`. The signal is BUY when probability_up > 0.5 and reaches
`signals.confidence_threshold`, SELL when 1 - probability_up does, otherwise HOLD; its confidence is
max(probability_up, 1 - probability_up). HOLD is recorded like any signal but is not a trade.

Beside the combined signal, the algorithms' vote alone (`algo_action`, `algo_probability`) is kept on
every signal, so performance can compare a model with the rules it joined.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autoretrain.daemon.foundation.config_schema import SignalsConfig
from autoretrain.daemon.foundation.timeframes import iso
from autoretrain.daemon.signals import algorithms

BUY, SELL, HOLD = "BUY", "SELL", "HOLD"
MODEL = "model"


@dataclass(frozen=True)
class Signal:
    """What was decided at a candle's close; `components` holds every vote (None: abstained)."""

    candle_ts: int
    price: float
    action: str
    confidence: float
    probability_up: float
    model_version: str | None = None
    model_probability: float | None = None
    components: dict[str, float | None] = field(default_factory=dict)
    algo_action: str = HOLD
    algo_probability: float = 0.5
    model_action: str | None = None  # the model's own call from its probability alone (None: no model)
    model_in_vote: bool = True  # False: the model is benched, the combined signal is the algorithms'
    horizon: int = 1  # candles after which the signal is settled (the serving model's horizon)

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": iso(self.candle_ts), "candle_ts": self.candle_ts, "price": self.price, "action": self.action,
            "confidence": self.confidence, "probability_up": self.probability_up,
            "model_version": self.model_version, "model_probability": self.model_probability,
            "model_action": self.model_action, "model_in_vote": self.model_in_vote,
            "components": dict(self.components), "algo_action": self.algo_action,
            "algo_probability": self.algo_probability, "horizon": self.horizon,
        }


def probability_up(votes: Mapping[str, float | None], weights: Mapping[str, float]) -> float:
    """The weighted mean of the votes that are present, mapped from [-1, 1] to [0, 1]; 0.5 if none is."""
    total = weighted = 0.0
    for name, vote in votes.items():
        weight = weights.get(name, 0.0)
        if vote is None or weight <= 0:
            continue
        total += weight
        weighted += weight * vote
    return 0.5 if total == 0 else 0.5 * (1.0 + weighted / total)


def classify(probability: float, threshold: float) -> tuple[str, float]:
    """(action, confidence): BUY or SELL when the leaning side reaches the threshold, else HOLD."""
    confidence = max(probability, 1.0 - probability)
    if probability > 0.5 and probability >= threshold:
        return BUY, confidence
    if probability < 0.5 and 1.0 - probability >= threshold:
        return SELL, confidence
    return HOLD, confidence


def _check_model_probability(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"model probability must be within [0, 1], got {value!r}")
    return value


def _combine(newest: np.void, votes: dict[str, float | None], model_probability: float | None,
             model_version: str | None, config: SignalsConfig, *, horizon: int = 1, in_vote: bool = True) -> Signal:
    """One signal from the algorithms' votes on a candle and the model's probability (if any); a benched
    model (`in_vote` False) keeps its own record but takes no part in the vote."""
    model_probability = _check_model_probability(model_probability)
    weights = config.algorithms.model_dump()
    algo_probability = probability_up(votes, weights)
    algo_action, _ = classify(algo_probability, config.confidence_threshold)
    model_action = None
    if model_probability is not None:
        model_action, _ = classify(model_probability, config.confidence_threshold)
        if in_vote:
            votes[MODEL] = 2.0 * model_probability - 1.0
            weights[MODEL] = config.model_weight
    combined = probability_up(votes, weights)
    action, confidence = classify(combined, config.confidence_threshold)
    return Signal(
        candle_ts=int(newest["ts"]), price=float(newest["close"]), action=action, confidence=confidence,
        probability_up=combined, model_version=model_version if model_probability is not None else None,
        model_probability=model_probability, components=votes, algo_action=algo_action,
        algo_probability=algo_probability, model_action=model_action,
        model_in_vote=in_vote and model_probability is not None, horizon=horizon,
    )


def compute_signal(candles: np.ndarray, *, model_probability: float | None, model_version: str | None,
                   config: SignalsConfig, horizon: int = 1, in_vote: bool = True) -> Signal:
    """The signal for the newest candle of `candles` (CANDLE_DTYPE, oldest first, ending at the closed candle).

    `model_probability` is None while no model is promoted; the algorithms alone then decide.
    """
    if len(candles) == 0:
        raise ValueError("no candles: a signal needs at least the candle that just closed")
    return _combine(candles[-1], dict(algorithms.votes(candles)), model_probability, model_version, config,
                    horizon=horizon, in_vote=in_vote)


def compute_signals(windows: np.ndarray, *, model_probabilities: Sequence[float | None],
                    model_versions: Sequence[str | None], config: SignalsConfig,
                    horizons: Sequence[int] | None = None, in_vote: Sequence[bool] | None = None) -> list[Signal]:
    """`compute_signal` for several symbols at once: `windows` is 2-D (one equally long window per row)."""
    if windows.ndim != 2 or windows.shape[1] == 0:
        raise ValueError("windows must be 2-D with at least one candle per row")
    return [_combine(windows[row, -1], votes, model_probabilities[row], model_versions[row], config,
                     horizon=horizons[row] if horizons is not None else 1,
                     in_vote=in_vote[row] if in_vote is not None else True)
            for row, votes in enumerate(algorithms.votes_batch(windows))]
