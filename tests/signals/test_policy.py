"""The retrain policy: the guide's rules at every boundary, the safety rules, and market time only."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.timeframes import HOUR_MS
from autoretrain.daemon.loop.assess import assess
from autoretrain.daemon.signals.performance import Sample
from autoretrain.daemon.signals.policy import (
    DRIFT,
    FIRST_MODEL,
    LOSING_MONEY,
    PERFORMANCE,
    PERIODIC,
    TRAIN_AT_START,
    PolicyInputs,
    RetrainDecision,
    bench_reason,
    cooldown_hours,
    decide,
    log_line,
)
from autoretrain.daemon.store.retrain_runs import FAILED, PROMOTED, REJECTED
from tests.support.cli import run_ctl
from tests.support.market_script import EX, SYM, TF, Market

HOUR = HOUR_MS
DAY = 24 * HOUR
NOW = 1_750_000_000_000 // HOUR * HOUR
#: the guide's win-rate trigger is one of the triggers to choose now (auto_training.triggers); these tables
#: test the guide's rules, so they choose it
GUIDE_TRIGGERS = ["performance", "drift", "losing_money"]
DEFAULTS = build_config({"auto_training": {"triggers": GUIDE_TRIGGERS}}, env={})
SHIPPED = build_config({}, env={})


def config(**auto_training: Any) -> Config:
    return build_config({"auto_training": {"triggers": GUIDE_TRIGGERS, **auto_training}}, env={}) \
        if auto_training else DEFAULTS


def state(signals: int = 60, correct: int | None = None, **changes: Any) -> PolicyInputs:
    """A healthy series with a model retrained a day ago; `signals` settled trades, 60 % right by default."""
    correct = round(signals * 0.6) if correct is None else correct
    base = PolicyInputs(has_model=True, model_signals=signals, scope_signals=signals, scope_correct=correct,
                        candles=5000, last_retrain_ts=NOW - DAY, model_since_ts=NOW - DAY)
    return replace(base, **changes)


def no_model(signals: int, **changes: Any) -> PolicyInputs:
    """No model; a first training was already tried and rejected, so the guide's 100-signal rule applies."""
    return state(signals, **{"has_model": False, "model_since_ts": None, "last_retrain_ts": NOW - 5 * DAY, **changes})


def days_ago(days: float, signals: int = 60) -> PolicyInputs:
    return state(signals, last_retrain_ts=NOW - int(days * DAY))


# (case, inputs, config, expected trigger or None)
GUIDE = [
    ("19 signals, all wrong: too few to judge", state(19, 0), DEFAULTS, None),
    ("20 signals, all wrong", state(20, 0), DEFAULTS, PERFORMANCE),
    ("20 signals, win rate exactly 0.45", state(20, 9), DEFAULTS, None),
    ("20 signals, win rate 0.40", state(20, 8), DEFAULTS, PERFORMANCE),
    ("100 signals, win rate exactly 0.45", state(100, 45), DEFAULTS, None),
    ("100 signals, win rate 0.44", state(100, 44), DEFAULTS, PERFORMANCE),
    ("29 days since the last retrain", days_ago(29), DEFAULTS, None),
    ("30 days minus a millisecond", state(60, last_retrain_ts=NOW - 30 * DAY + 1), DEFAULTS, None),
    ("30 days since the last retrain", days_ago(30), DEFAULTS, PERIODIC),
    ("30 days, 49 signals", days_ago(30, signals=49), DEFAULTS, None),
    ("30 days, 50 signals", days_ago(30, signals=50), DEFAULTS, PERIODIC),
    ("45 days, 19 signals: under min_signals nothing fires", days_ago(45, signals=19), DEFAULTS, None),
    ("no model, 99 signals", no_model(99), DEFAULTS, None),
    ("no model, 100 signals", no_model(100), DEFAULTS, FIRST_MODEL),
    ("no model, 100 signals, never trained, train_at_start off", state(100, has_model=False, last_retrain_ts=None,
                                                                      model_since_ts=None),
     config(train_at_start=False), FIRST_MODEL),
    ("no model, 100 signals, win rate 0.40: the win rate is checked first", no_model(100, scope_correct=40),
     DEFAULTS, PERFORMANCE),
    ("no model and no periodic rule", no_model(99, last_retrain_ts=NOW - 90 * DAY), DEFAULTS, None),
    ("model of unknown age", state(60, last_retrain_ts=None, model_since_ts=None), DEFAULTS, None),
    ("no retrain recorded: age from when the model started serving", state(60, last_retrain_ts=None,
                                                                           model_since_ts=NOW - 30 * DAY),
     DEFAULTS, PERIODIC),
    ("max_days_between_retrain 7: 7 days", days_ago(7), config(max_days_between_retrain=7), PERIODIC),
    ("min_win_rate_threshold 0.6: win rate 0.55", state(20, 11), config(min_win_rate_threshold=0.6), PERFORMANCE),
    ("min_signals 5: 5 signals all wrong", state(5, 0), config(min_signals=5), PERFORMANCE),
]
SAFETY = [
    ("999 candles: too few to train", state(20, 0, candles=999), DEFAULTS, None),
    ("1000 candles", state(20, 0, candles=1000), DEFAULTS, PERFORMANCE),
    ("a retrain already queued or running", state(20, 0, retrain_in_progress=True), DEFAULTS, None),
    ("train at start: history and no model", state(0, has_model=False, last_retrain_ts=None, model_since_ts=None,
                                                   candles=1000), DEFAULTS, TRAIN_AT_START),
    ("train at start: 999 candles of history", state(0, has_model=False, last_retrain_ts=None, model_since_ts=None,
                                                     candles=999), DEFAULTS, None),
    ("train at start off", state(0, has_model=False, last_retrain_ts=None, model_since_ts=None),
     config(train_at_start=False), None),
    ("train at start after a rejected first model: wait for signals", no_model(0), DEFAULTS, None),
    ("rolling scope: the window decides", state(100, 60, scope_signals=20, scope_correct=8),
     config(win_rate_scope="rolling", rolling_window=20), PERFORMANCE),
]


@pytest.mark.parametrize("inputs, settings, trigger", [c[1:] for c in GUIDE + SAFETY], ids=[c[0] for c in GUIDE + SAFETY])
def test_boundaries(inputs: PolicyInputs, settings: Config, trigger: str | None) -> None:
    decision = decide(inputs, NOW, settings)
    assert (decision.retrain, decision.trigger) == (trigger is not None, trigger)
    assert decision.reason and "\n" not in decision.reason


FIRING = [c for c in GUIDE + SAFETY if c[3] is not None]


@pytest.mark.parametrize("inputs, settings", [c[1:3] for c in FIRING], ids=[c[0] for c in FIRING])
def test_disabled_never_fires(inputs: PolicyInputs, settings: Config) -> None:
    off = settings.model_copy(update={"auto_training": settings.auto_training.model_copy(update={"enabled": False})})
    assert decide(inputs, NOW, off) == RetrainDecision(False, None, "auto_training.enabled is false")


@pytest.mark.parametrize("status", [REJECTED, FAILED])
@pytest.mark.parametrize("after, fires", [(0, False), (12 * HOUR - 1, False), (12 * HOUR, True), (40 * HOUR, True)])
def test_no_refire_before_the_cooldown(status: str, after: int, fires: bool) -> None:
    setback = NOW - after
    inputs = state(30, 0, setback_status=status, setback_ts=setback)
    decision = decide(inputs, NOW, DEFAULTS)
    assert (decision.retrain, decision.trigger) == (fires, PERFORMANCE if fires else None)
    if not fires:
        assert f"cooldown after the {status} retrain" in decision.reason


def test_cooldown_also_holds_back_train_at_start_and_is_configurable() -> None:
    failed_first = state(0, has_model=False, last_retrain_ts=None, model_since_ts=None, setback_status=FAILED,
                         setback_ts=NOW - 2 * HOUR)
    assert not decide(failed_first, NOW, DEFAULTS).retrain
    assert decide(failed_first, NOW + 10 * HOUR, DEFAULTS).trigger == TRAIN_AT_START
    assert decide(failed_first, NOW, config(cooldown_hours=2)).trigger == TRAIN_AT_START
    assert decide(failed_first, NOW, config(cooldown_hours=0.5)).trigger == TRAIN_AT_START


@pytest.mark.parametrize("trigger, expected", [
    (PERFORMANCE, "Performance degraded for BTC/USDT, scheduling retrain (trigger performance: why)"),
    (FIRST_MODEL, "No model yet for BTC/USDT, scheduling retrain (trigger first_model: why)"),
    (PERIODIC, "Periodic retrain due for BTC/USDT, scheduling retrain (trigger periodic: why)"),
    (TRAIN_AT_START, "History available and no model for BTC/USDT, scheduling retrain (trigger train_at_start: why)"),
])
def test_log_line_per_trigger(trigger: str, expected: str) -> None:
    assert log_line(RetrainDecision(True, trigger, "why"), "BTC/USDT") == expected
    assert log_line(RetrainDecision(False, None, "why"), "BTC/USDT") is None


def test_the_guides_line_where_the_win_rate_fires() -> None:
    decision = decide(state(20, 0), NOW, DEFAULTS)
    line = log_line(decision, "BTC/USDT")
    assert line.startswith("Performance degraded for BTC/USDT, scheduling retrain")
    assert "win rate 0.0%" in line and "below 45.0%" in line


# -- with the real store ---------------------------------------------------------------------------------


def small(**auto_training: Any) -> Config:
    """Thresholds small enough for short scripted markets; 1h candles."""
    return build_config({"training": {"min_candles": 30},
                         "auto_training": {"triggers": GUIDE_TRIGGERS, **auto_training}}, env={})


def test_a_rejected_retrain_does_not_refire_before_the_cooldown(tmp_path: Path) -> None:
    settings = small(cooldown_hours=6)
    market = Market(tmp_path / "c.db")
    market.history(30)
    market.activate("v0001")
    market.play("L" * 20, "v0001")
    _, decision = assess(market.db, settings, EX, SYM, TF, has_model=True, market_now_ms=market.now_ms)
    assert decision.trigger == PERFORMANCE
    runs = market.db.runs
    run_id = runs.start(EX, SYM, TF, trigger=decision.trigger, requested_market_ts=market.now_ms)
    runs.finish(run_id, REJECTED, data_end_ts=market.now_ms)
    rejected_at = market.now_ms
    fired_at = []
    for _ in range(10):
        market.play("L", "v0001")
        _, decision = assess(market.db, settings, EX, SYM, TF, has_model=True, market_now_ms=market.now_ms)
        if decision.retrain:
            fired_at.append(market.now_ms)
    assert fired_at and fired_at[0] == rejected_at + 6 * HOUR  # not a candle earlier


def test_a_promoted_model_resets_the_current_model_window(tmp_path: Path) -> None:
    settings = small()
    market = Market(tmp_path / "w.db")
    market.history(30)
    market.activate("v0001")
    market.play("L" * 25, "v0001")

    def decision() -> RetrainDecision:
        return assess(market.db, settings, EX, SYM, TF, has_model=True, market_now_ms=market.now_ms)[1]

    assert decision().trigger == PERFORMANCE
    runs = market.db.runs
    runs.finish(runs.start(EX, SYM, TF, trigger=PERFORMANCE, requested_market_ts=market.now_ms), PROMOTED,
                version="v0002")
    market.activate("v0002")  # inference swaps to the new champion
    assert not decision().retrain and "only 0 settled signals" in decision().reason
    market.play("L" * 19, "v0002")
    assert not decision().retrain  # 19 of the new model's signals: v0001's 25 losses do not count
    market.play("L", "v0002")
    assert decision().trigger == PERFORMANCE
    market.activate("v0001")  # a rollback starts a fresh window too, not v0001's old one
    assert "only 0 settled signals" in decision().reason


def _replay(path: Path, seconds_per_candle: float, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """A scripted run through the real store and policy while the wall clock runs at the given speed."""
    clock = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    settings = small(min_signals=5, first_model_signals=15, min_trades_before_retrain=10, max_days_between_retrain=2,
                     cooldown_hours=6)
    rng = random.Random(7)
    results = iter([FAILED, REJECTED, PROMOTED, REJECTED, PROMOTED] * 20)
    market = Market(path)
    runs = market.db.runs
    market.history(30)
    version = None
    log = []
    for _ in range(400):
        good = version is not None and int(version[1:]) % 2 == 0  # even versions trade well
        market.play(rng.choices("WLH", [0.7, 0.2, 0.1] if good else [0.35, 0.5, 0.15])[0], version)
        clock[0] += seconds_per_candle
        _, decision = assess(market.db, settings, EX, SYM, TF, has_model=version is not None,
                             market_now_ms=market.now_ms)
        log.append((market.now_ms, decision.trigger or decision.reason))
        if decision.retrain:
            run_id = runs.start(EX, SYM, TF, trigger=decision.trigger, reason=decision.reason,
                                requested_market_ts=market.now_ms)
            clock[0] += 30 * seconds_per_candle  # training takes wall time; the market time is the request's
            result = next(results)
            if result == PROMOTED:
                version = f"v{int(version[1:]) + 1 if version else 1:04d}"
                market.activate(version)
            runs.finish(run_id, result, version=version if result == PROMOTED else None,
                        data_end_ts=market.now_ms)
    monkeypatch.undo()
    return log


def test_the_same_decisions_replayed_at_any_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = _replay(tmp_path / "live.db", 3600.0, monkeypatch)            # 1h candles in real time
    fast = _replay(tmp_path / "fast.db", 1.0, monkeypatch)               # the simulated market's 3600x
    faster = _replay(tmp_path / "faster.db", 0.001, monkeypatch)
    assert live == fast == faster
    triggers = {entry for _, entry in live if entry in (PERFORMANCE, FIRST_MODEL, PERIODIC, TRAIN_AT_START)}
    assert triggers == {PERFORMANCE, FIRST_MODEL, PERIODIC, TRAIN_AT_START}  # the run exercised every rule
    assert any(entry.startswith("cooldown after the rejected") for _, entry in live)
    assert any(entry.startswith("cooldown after the failed") for _, entry in live)


def test_a_rolling_window_too_small_to_judge_is_a_config_error(write_config: Callable[..., Path]) -> None:
    path = write_config({"auto_training": {"win_rate_scope": "rolling", "rolling_window": 19}})
    result = run_ctl("performance", "BTC/USDT", "--config", str(path))
    assert result.returncode == 78
    assert result.stderr.strip().endswith("auto_training: rolling_window (19) must be at least min_signals (20): "
                                          "a smaller window never holds enough signals to judge")
    assert build_config({"auto_training": {"rolling_window": 20}}, env={}).auto_training.rolling_window == 20


# -- the triggers beside the guide's, and the bounds on retrying ----------------------------------------------


def test_the_shipped_triggers_do_not_act_on_a_low_win_rate_alone() -> None:
    assert SHIPPED.auto_training.triggers == ["drift", "losing_money"]
    assert not decide(state(20, 0), NOW, SHIPPED).retrain  # the guide's rule fires here; it is not on by default
    assert decide(state(20, 0), NOW, DEFAULTS).trigger == PERFORMANCE


def test_drift_fires_on_the_detectors_alarm_with_its_reason() -> None:
    decision = decide(state(60, drift="the model's direction error rate has risen"), NOW, SHIPPED)
    assert (decision.trigger, decision.reason) == (DRIFT, "the model's direction error rate has risen")
    assert not decide(state(60, drift="alarm", has_model=False, last_retrain_ts=NOW - 5 * DAY), NOW, SHIPPED).retrain


@pytest.mark.parametrize("trades, fires", [
    (Sample(40, -8.0, 40 * 0.04 + 8.0**2 / 40), True),   # mean -0.2 % a trade, std 0.2: t = -6.3
    (Sample(40, -8.0, 40 * 4.0 + 8.0**2 / 40), False),   # the same mean, std 2.0: t = -0.6, noise
    (Sample(19, -19.0, 19 * 0.01 + 19.0**2 / 19), False),  # clearly losing, but 19 trades: too few to judge
    (Sample(40, 8.0, 40 * 0.04 + 8.0**2 / 40), False),   # making money
])
def test_losing_money_needs_the_sample_size_to_say_so(trades: Sample, fires: bool) -> None:
    decision = decide(state(60, 40, model_trades=trades), NOW, SHIPPED)  # 67 % right: the win rate looks fine
    assert (decision.trigger == LOSING_MONEY) is fires
    if fires:
        assert "lose money net of fees" in decision.reason and "40 trades" in decision.reason


@pytest.mark.parametrize("setbacks, hours", [(1, 12), (2, 24), (3, 48), (4, 96), (5, 96), (9, 96)])
def test_cooldowns_escalate_after_setbacks_in_a_row(setbacks: int, hours: float) -> None:
    assert cooldown_hours(setbacks, 12, 8) == hours
    drifting = state(60, drift="alarm", setback_status=REJECTED, setback_ts=NOW, consecutive_setbacks=setbacks)
    assert not decide(drifting, NOW + int(hours * HOUR) - 1, SHIPPED).retrain
    assert decide(drifting, NOW + int(hours * HOUR), SHIPPED).trigger == DRIFT


def test_retries_are_bounded_per_market_day() -> None:
    four = tuple(NOW - i * 5 * HOUR for i in range(4))  # four retrains in the last 20 market hours
    assert "4 retrains in the last 24 market hours" in decide(state(60, drift="alarm", recent_retrain_ts=four),
                                                              NOW, SHIPPED).reason
    assert decide(state(60, drift="alarm", recent_retrain_ts=four), NOW + 10 * HOUR, SHIPPED).trigger == DRIFT


def test_a_model_that_makes_the_vote_worse_than_the_algorithms_alone_is_benched() -> None:
    worse = Sample(100, -10.0, 100 * 0.0025 + 10.0**2 / 100)  # -0.1 % a signal, std 0.05: t = -20
    reason = bench_reason(state(60, vote_gain=worse), SHIPPED)
    assert reason is not None and "less than the algorithms alone over 100 signals" in reason
    assert bench_reason(state(60, vote_gain=worse, benched=True), SHIPPED) is None  # already out
    assert bench_reason(state(60, vote_gain=Sample(10, -1.0, 0.11)), SHIPPED) is None  # too few signals
    assert bench_reason(state(60, vote_gain=Sample(100, -1.0, 100.0)), SHIPPED) is None  # noise
