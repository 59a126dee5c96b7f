"""Scores, the exact McNemar test and the promotion rule."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from autoretrain.models import evaluation as ev


def _pairs(only_a: int, only_b: int, both: int = 5, neither: int = 3) -> tuple[np.ndarray, np.ndarray]:
    a = [True] * only_a + [False] * only_b + [True] * both + [False] * neither
    b = [False] * only_a + [True] * only_b + [True] * both + [False] * neither
    return np.array(a), np.array(b)


def test_mcnemar_exact_known_value() -> None:
    result = ev.mcnemar_exact(*_pairs(10, 2))
    assert result["only_challenger_correct"] == 10 and result["only_other_correct"] == 2
    assert result["p_value"] == pytest.approx(2 * (1 + 12 + 66) / 4096)  # 0.0386


@pytest.mark.parametrize("only_a,only_b", [(0, 0), (4, 4), (0, 7), (30, 18), (200, 160)])
def test_mcnemar_exact_matches_the_binomial_tail(only_a: int, only_b: int) -> None:
    n = only_a + only_b
    expected = 1.0 if n == 0 else min(1.0, 2 * sum(comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n)
    assert ev.mcnemar_exact(*_pairs(only_a, only_b))["p_value"] == pytest.approx(expected)
    assert ev.mcnemar_exact(*_pairs(only_b, only_a))["p_value"] == pytest.approx(expected)  # symmetric


def test_score_counts_only_confident_signals_and_charges_fees_on_both_sides() -> None:
    probability = np.array([0.9, 0.2, 0.52, 0.6, 0.47])
    label = np.array([1, 0, 1, 0, 1])
    future = np.array([0.02, -0.01, 0.03, -0.01, 0.04])
    scores = ev.score(probability, label, future, threshold=0.55, fee_bps=10)
    assert scores.accuracy == pytest.approx(3 / 5)
    assert scores.samples == 5 and scores.signals == 3  # confidence 0.52 and 0.53 are below 0.55: no trade
    assert scores.signal_precision == pytest.approx(2 / 3)
    # long +2 %, short a -1 % move +1 %, long a -1 % move -1 %; 10 bps on entry and on exit of each trade
    assert scores.pnl_pct == pytest.approx(100 * (0.02 + 0.01 - 0.01 - 3 * 0.002))
    assert set(scores.as_dict()) == {"accuracy", "samples", "signals", "signal_precision", "pnl_pct"}


def test_no_signal_has_no_precision() -> None:
    scores = ev.score(np.full(4, 0.5), np.array([1, 0, 1, 0]), np.zeros(4), threshold=0.55, fee_bps=10)
    assert scores.signals == 0 and scores.signal_precision is None and scores.pnl_pct == 0.0


def test_majority_baseline_predicts_the_commoner_move() -> None:
    assert (ev.majority_probability(np.array([1, 1, 0])) == 1.0).all()
    assert (ev.majority_probability(np.array([1, 0, 0, 1])) == 0.0).all()
    assert list(ev.majority_probability(np.array([1, 1, 0]), 5)) == [1.0] * 5  # training labels, evaluation length


def test_persistence_repeats_the_last_move() -> None:
    close = np.array([1.0, 2.0, 1.5, 1.5, 3.0, 2.0])
    assert list(ev.persistence_probability(close, np.array([1, 2, 3, 4, 5]), 1)) == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert list(ev.persistence_probability(close, np.array([2, 3]), 2)) == [1.0, 0.0]  # close[t] vs close[t - 2]


def _m(accuracy: float, p: float = 0.5, version: str = "") -> dict[str, object]:
    return {"accuracy": accuracy, "mcnemar_p": p, "version": version}


RULE = {"rule": "guide", "min_improvement": 0.0, "require_significance": False, "significance_level": 0.05}


def _b(accuracy: float, p: float = 0.5) -> dict[str, dict[str, object]]:
    return {"majority_of_training": _m(accuracy, p)}


@pytest.mark.parametrize("new,old,base,rule,promote", [
    (0.58, 0.55, 0.51, {}, True),                               # the guide: new > old
    (0.55, 0.55, 0.51, {}, False),                              # a tie keeps the champion
    (0.58, None, 0.51, {}, True),                               # no champion: the baseline is the bar
    (0.50, None, 0.51, {}, False),
    (0.60, 0.40, 0.62, {}, False),                              # must also beat the baseline
    (0.58, 0.55, 0.51, {"min_improvement": 0.05}, False),       # by MORE than the margin
    (0.61, 0.55, 0.51, {"min_improvement": 0.05}, True),
    (0.58, 0.55, 0.51, {"require_significance": True}, False),  # p = 0.5
])
def test_promotion_rule(new: float, old: float | None, base: float, rule: dict[str, object], promote: bool) -> None:
    champion = _m(old, version="v0003") if old is not None else None
    decision = ev.decide(_m(new), champion, _b(base), mode="auto", **{**RULE, **rule})  # type: ignore[arg-type]
    assert decision.promote is promote
    assert decision.reason


def test_significance_is_checked_against_the_model_being_replaced() -> None:
    decision = ev.decide(_m(0.6), _m(0.5, p=0.01, version="v0001"), _b(0.5, p=0.9), mode="auto",
                         **{**RULE, "require_significance": True})  # type: ignore[arg-type]
    assert decision.promote
    decision = ev.decide(_m(0.6), None, _b(0.5, p=0.2), mode="auto",
                         **{**RULE, "require_significance": True})  # type: ignore[arg-type]
    assert not decision.promote and "McNemar" in decision.reason


def test_always_and_never_override_the_rule_and_say_so() -> None:
    worse = ev.decide(_m(0.4), _m(0.6, version="v0001"), _b(0.5), mode="always", **RULE)  # type: ignore[arg-type]
    assert worse.promote and "forced" in worse.reason and "does not beat" in worse.reason
    better = ev.decide(_m(0.7), _m(0.6, version="v0001"), _b(0.5), mode="never", **RULE)  # type: ignore[arg-type]
    assert not better.promote and "disabled" in better.reason
