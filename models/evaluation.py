"""Scoring models on held-out candles and the promotion rule (numpy only).

Every model (challenger, champion, baseline) is scored on the same samples: the newest candles
neither model trained on. The scores are the guide's accuracy, plus what a trader would ask: the
precision of the signals the daemon would actually emit (confidence at or above the threshold) and
the PnL of trading them, net of the fee on both sides. Whether the challenger's edge over another
model is more than luck is the exact McNemar test on the samples where exactly one of them is right.

The baseline always predicts the majority class of the evaluation window itself. That is hindsight
(no real model knows it), which makes it the strictest naive bar: accuracy at least 50 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Any, Literal

import numpy as np

PromoteMode = Literal["auto", "always", "never"]


def pct(value: float | None) -> str:
    """A fraction as a percentage for the decision's reason ('57.5%')."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """Two-sided exact McNemar test: b = only A right, c = only B right, p = P(Binomial(b+c, 1/2) as extreme)."""
    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    only_a, only_b = int(np.sum(a & ~b_)), int(np.sum(~a & b_))
    n = only_a + only_b
    if n == 0:
        p_value = 1.0
    else:
        tail = sum(comb(n, k) for k in range(min(only_a, only_b) + 1))
        p_value = min(1.0, 2 * tail / 2**n)
    return {"only_challenger_correct": only_a, "only_other_correct": only_b, "p_value": p_value}


@dataclass(frozen=True)
class Scores:
    """One model's scores on the evaluation samples; `correct` (per sample) feeds the McNemar test."""

    accuracy: float | None
    samples: int
    signals: int
    signal_precision: float | None
    pnl_pct: float
    correct: np.ndarray

    def as_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "samples": self.samples, "signals": self.signals,
                "signal_precision": self.signal_precision, "pnl_pct": self.pnl_pct}


def score(probability: np.ndarray, label: np.ndarray, future_return: np.ndarray, *, threshold: float,
          fee_bps: float) -> Scores:
    """Accuracy, signal precision and net PnL (sum of per-trade % returns) of one model's probabilities."""
    probability = np.asarray(probability, dtype=np.float64)
    predicted_up = probability > 0.5
    correct = predicted_up == np.asarray(label).astype(bool)
    signal = np.maximum(probability, 1.0 - probability) >= threshold
    direction = np.where(predicted_up, 1.0, -1.0)
    trade_returns = direction[signal] * np.asarray(future_return)[signal] - 2 * fee_bps / 10_000
    return Scores(
        accuracy=float(correct.mean()) if len(correct) else None,
        samples=int(len(correct)),
        signals=int(signal.sum()),
        signal_precision=float(correct[signal].mean()) if signal.any() else None,
        pnl_pct=float(100 * trade_returns.sum()),
        correct=correct,
    )


def majority_probability(label: np.ndarray) -> np.ndarray:
    """The baseline's 'probability': 1 for every sample if most went up in the window, else 0."""
    return np.full(len(label), 1.0 if len(label) and np.mean(label) > 0.5 else 0.0)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str



def decide(challenger: dict[str, Any], champion: dict[str, Any] | None, baseline: dict[str, Any], *,
           mode: PromoteMode, min_improvement: float, require_significance: bool, significance_level: float) -> Decision:
    """The promotion rule: beat the champion by more than min_improvement (the guide's new > old) and the baseline.

    With no champion the baseline is the bar. `require_significance` adds McNemar p < level against
    the model being replaced (or the baseline). `always` and `never` override the rule, saying so.
    """
    new = challenger["accuracy"]
    problems: list[str] = []
    if new is None:
        problems.append("no evaluation samples")
    else:
        if new <= baseline["accuracy"]:
            problems.append(f"accuracy {pct(new)} does not beat the majority baseline {pct(baseline['accuracy'])}")
        if champion is not None and not new > champion["accuracy"] + min_improvement:
            margin = f" by more than {pct(min_improvement)}" if min_improvement > 0 else ""
            problems.append(f"accuracy {pct(new)} does not beat champion {champion.get('version', '')} "
                            f"{pct(champion['accuracy'])}{margin}".replace("  ", " "))
        if require_significance:
            other = champion if champion is not None else baseline
            if not other["mcnemar_p"] < significance_level:
                problems.append(f"McNemar p = {other['mcnemar_p']:.3g} is not below {significance_level:g}")
    if champion is not None:
        bar = (f"champion {champion.get('version', '')} {pct(champion['accuracy'])} "
               f"and baseline {pct(baseline['accuracy'])}")
    else:
        bar = f"baseline {pct(baseline['accuracy'])} (no champion)"
    verdict = "; ".join(problems) if problems else f"accuracy {pct(new)} beats {bar}"
    if mode == "always":
        return Decision(True, f"promotion forced (--promote always): {verdict}")
    if mode == "never":
        return Decision(False, f"promotion disabled (--promote never): {verdict}")
    return Decision(not problems, verdict)
