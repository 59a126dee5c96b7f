"""The drift trigger's error rates, by seeded simulation, against the guide's rule (docs/triggers.md).

A model right 64 % of the time (what one reaches inside a regime of the simulated market) that stays so,
and one that falls to 36 % after a regime switch: false alarms per 1,000 candles, and candles to detect.
"""

from __future__ import annotations

from autoretrain.daemon.foundation.config_schema import AutoTrainingConfig
from autoretrain.daemon.signals.drift import ErrorCusum
from autoretrain.daemon.signals.trigger_simulation import DriftTrigger, WinRateTrigger, detection_delay, false_alarms_per_1000

BEFORE, AFTER = 0.64, 0.36
DEFAULTS = AutoTrainingConfig()


def test_the_cusum_adds_evidence_for_errors_and_forgives_right_calls() -> None:
    cusum = ErrorCusum(p0=0.4, shift=0.1, threshold=5.0)
    assert not cusum.update(True) and cusum.score > 0
    for _ in range(50):
        cusum.update(False)
    assert cusum.score == 0.0  # right calls bring it back to the floor, never below
    assert any(cusum.update(True) for _ in range(40))  # a run of errors raises the alarm
    assert "has risen above the 40.0%" in cusum.describe()


def guide() -> WinRateTrigger:
    return WinRateTrigger(0.45, 20)  # the guide: win rate since the last retrain, at least 20 calls


def drift(accuracy: float):  # type: ignore[no-untyped-def]
    return lambda: DriftTrigger(accuracy, DEFAULTS.drift_shift, DEFAULTS.drift_threshold)  # the shipped settings


def test_the_default_trigger_has_fewer_false_alarms_than_the_guides_at_no_longer_delay() -> None:
    for accuracy in (0.64, 0.55, 0.52):  # strong, middling and weak models that do not change
        ours = false_alarms_per_1000(drift(accuracy), accuracy, candles=5000, runs=40, seed=1)
        theirs = false_alarms_per_1000(guide, accuracy, candles=5000, runs=40, seed=1)
        assert ours <= theirs and ours <= 0.02, (accuracy, ours, theirs)
    for before, after in ((0.64, 0.36), (0.55, 0.45)):  # a regime switch, then a milder decline
        ours = detection_delay(drift(before), before, after, warmup=500, horizon=3000, runs=60, seed=2)
        theirs = detection_delay(guide, before, after, warmup=500, horizon=3000, runs=60, seed=2)
        assert ours <= theirs / 5, (before, after, ours, theirs)
    assert detection_delay(drift(BEFORE), BEFORE, AFTER, warmup=500, horizon=3000, runs=60, seed=2) <= 100


def test_a_weak_model_near_the_threshold_makes_the_guides_rule_fire_on_noise() -> None:
    """A model right 50 % of the time is below 45 % at 20 trades about a quarter of the time (the issue's
    example): the rule fires again and again on a model that has not changed; the drift trigger does not."""
    theirs = false_alarms_per_1000(guide, 0.50, candles=5000, runs=40, seed=3)
    ours = false_alarms_per_1000(drift(0.50), 0.50, candles=5000, runs=40, seed=3)
    assert theirs >= 0.2 and ours <= theirs / 10, (theirs, ours)
