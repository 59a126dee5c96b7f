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


def majority_probability(label: np.ndarray, count: int | None = None) -> np.ndarray:
    """`count` (default len(label)) 'probabilities' of 1 if most of `label` went up, else 0. Given the TRAINING
    labels this is the majority baseline a model could really use: the evaluation window's own majority
    would be hindsight (about 52 % on fair-coin labels of 468 samples, 55 % on 68: a bar no model faces)."""
    up = len(label) > 0 and float(np.mean(label)) > 0.5
    return np.full(len(label) if count is None else count, 1.0 if up else 0.0)


def persistence_probability(close: np.ndarray, ends: np.ndarray, horizon: int) -> np.ndarray:
    """The persistence baseline: the next move repeats the last one (up if close[t] > close[t - horizon])."""
    ends = np.asarray(ends, dtype=np.int64)
    before = np.maximum(ends - horizon, 0)
    return (close[ends] > close[before]).astype(np.float64)


def mcnemar_one_sided(correct_new: np.ndarray, correct_other: np.ndarray) -> tuple[int, int, float]:
    """(b, c, p): b samples only the new model got right, c only the other; p = P(Binomial(b + c, 1/2) >= b),
    the exact paired test that the new model is better."""
    a, o = np.asarray(correct_new, dtype=bool), np.asarray(correct_other, dtype=bool)
    b, c = int(np.sum(a & ~o)), int(np.sum(~a & o))
    n = b + c
    return b, c, (1.0 if n == 0 else sum(comb(n, k) for k in range(b, n + 1)) / 2**n)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    rule: str = "guide"
    alpha: float | None = None  # the level the paired test was held to (tested rule)
    p_value: float | None = None  # one-sided exact paired p against the bar
    attempt: int = 1  # the how-manieth challenger of this champion

    def as_dict(self) -> dict[str, Any]:
        return {"promoted": self.promote, "reason": self.reason, "rule": self.rule, "alpha": self.alpha,
                "p_value": self.p_value, "attempt": self.attempt}


def attempt_level(level: float, attempt: int, candidates: int = 1) -> float:
    """The paired test's level for the `attempt`-th challenger of one champion: level, level/2, level/4, ...
    (alpha spending: over any number of tries the chance of ever promoting an equally good challenger
    stays below 2 * level), shared among `candidates` challengers scored at once (Bonferroni)."""
    return level / 2 ** (max(1, attempt) - 1) / max(1, candidates)


def _forced(mode: PromoteMode, verdict: str, decision: Decision) -> Decision:
    if mode == "always":
        return Decision(True, f"promotion forced (--promote always): {verdict}", decision.rule, decision.alpha,
                        decision.p_value, decision.attempt)
    if mode == "never":
        return Decision(False, f"promotion disabled (--promote never): {verdict}", decision.rule, decision.alpha,
                        decision.p_value, decision.attempt)
    return decision


def decide(challenger: dict[str, Any], champion: dict[str, Any] | None, baselines: dict[str, dict[str, Any]], *,
           mode: PromoteMode, rule: str = "tested", min_improvement: float = 0.0, require_significance: bool = False,
           significance_level: float = 0.05, attempt: int = 1, candidates: int = 1) -> Decision:
    """The promotion rule. Every model's dict carries its `accuracy` and, beside the challenger's, the
    correct-per-sample flags as `correct` (for the paired tests).

    `tested` (the default): the challenger's accuracy must beat the champion's and every baseline's by more
    than `min_improvement`, and a one-sided exact paired test (McNemar) against the champion (without one,
    the stronger baseline) must reject "no better" at `attempt_level(significance_level, attempt,
    candidates)`. `guide`: the guide's bare rule, new > old (and > the baselines), with the optional
    two-sided McNemar of `require_significance`. `always` and `never` override either, saying so."""
    new = challenger["accuracy"]
    if new is None:
        return _forced(mode, "no evaluation samples", Decision(False, "no evaluation samples", rule))
    problems: list[str] = []
    for name, baseline in baselines.items():
        if not new > baseline["accuracy"] + min_improvement:
            problems.append(f"accuracy {pct(new)} does not beat the {name.replace('_', ' ')} baseline "
                            f"{pct(baseline['accuracy'])}{_margin(min_improvement)}")
    if champion is not None and not new > champion["accuracy"] + min_improvement:
        problems.append(f"accuracy {pct(new)} does not beat champion {champion.get('version', '')} "
                        f"{pct(champion['accuracy'])}{_margin(min_improvement)}".replace("  ", " "))
    bar_name, bar = (f"champion {champion.get('version', '')}".strip(), champion) if champion is not None else \
        max(((f"{name.replace('_', ' ')} baseline", b) for name, b in baselines.items()), key=lambda nb: nb[1]["accuracy"])
    alpha, p_value = None, None
    if rule == "tested":
        alpha = attempt_level(significance_level, attempt, candidates)
        _, _, p_value = mcnemar_one_sided(challenger["correct"], bar["correct"])
        if not p_value < alpha:
            problems.append(f"paired exact test against {bar_name}: p = {p_value:.3g} is not below {alpha:.3g} "
                            f"(try {max(1, attempt)} against this champion: level {significance_level:g}"
                            f"{f' / 2^{attempt - 1}' if attempt > 1 else ''}"
                            f"{f', split between {candidates} candidates' if candidates > 1 else ''})")
    elif require_significance and not bar["mcnemar_p"] < significance_level:
        problems.append(f"McNemar p = {bar['mcnemar_p']:.3g} is not below {significance_level:g}")
    beaten = (f"champion {champion.get('version', '')} {pct(champion['accuracy'])} and " if champion is not None else "")
    beaten += " and ".join(f"{name.replace('_', ' ')} {pct(b['accuracy'])}" for name, b in baselines.items())
    notes = [note for note in ("no champion" if champion is None else "",
                               f"paired p = {p_value:.3g} < {alpha:.3g}" if alpha is not None and p_value is not None
                               else "") if note]
    verdict = "; ".join(problems) if problems else (
        f"accuracy {pct(new)} beats {beaten}" + (f" ({'; '.join(notes)})" if notes else ""))
    return _forced(mode, verdict, Decision(not problems, verdict, rule, alpha, p_value, attempt))


def _margin(value: float) -> str:
    return f" by more than {pct(value)}" if value > 0 else ""
