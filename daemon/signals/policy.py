"""When to retrain, and why: a pure function of (performance, model state, market time, config).

The guide's `needs_retrain`, with its config keys and defaults (`auto_training.*`):

    fewer than min_signals (20) signals             -> no retrain
    win rate < min_win_rate_threshold (0.45)         -> retrain            trigger `performance`
    no model and >= first_model_signals (100)        -> first training     trigger `first_model`
    >= max_days_between_retrain (30) days since the
    last retrain and >= min_trades_before_retrain (50) signals -> retrain  trigger `periodic`
    enabled: false                                   -> never

"Signals" are settled trades (BUY/SELL with an outcome; HOLD is not a trade) of the current model,
i.e. since it started serving, so a promotion (or a rollback) starts the count again. The win rate
is measured over those trades (`win_rate_scope: current_model`) or over the newest `rolling_window`
of them (`rolling`). A cumulative win rate never recovers from a bad stretch; these do. The guide's
own cumulative count and win rate over every settled trade since the start (`cumulative`) stay
available, for comparison (the backtest's `guide` variant).

What makes it safe, checked before the triggers, in this order:
- a retrain already queued or running: no second one;
- fewer than `training.min_candles` candles stored: nothing to train on;
- the newest finished retrain was rejected or failed: no trigger fires for `cooldown_hours` of market
  time after it (the old model stays; the next trigger after the cooldown retries);
- `train_at_start`: with no model, no retrain ever completed and enough candles (history from the
  backfill), the first model is trained right away (trigger `train_at_start`) instead of after 100
  signals. A rejected first training falls back to the guide's `first_model` rule.

Times are market times (candle open times, ms): the caller passes the open time of the newest candle
it processed, so a replay at any speed takes the same decisions as a live run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.formatting import pct
from autoretrain.daemon.foundation.timeframes import DAY_MS, HOUR_MS, iso
from autoretrain.daemon.signals.performance import Performance, Sample

PERFORMANCE = "performance"
DRIFT = "drift"
LOSING_MONEY = "losing_money"
FIRST_MODEL = "first_model"
PERIODIC = "periodic"
TRAIN_AT_START = "train_at_start"
DAY_OF_RETRAINS_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class PolicyInputs:
    """Everything the policy reads, as plain numbers (all counts are settled trades)."""

    has_model: bool
    model_signals: int
    scope_signals: int
    scope_correct: int
    candles: int
    last_retrain_ts: int | None = None
    model_since_ts: int | None = None
    setback_status: str | None = None
    setback_ts: int | None = None
    retrain_in_progress: bool = False
    consecutive_setbacks: int = 0  # rejected or failed retrains since the last promotion
    recent_retrain_ts: tuple[int, ...] = ()  # market times of the newest finished retrains
    drift: str | None = None  # the drift detector's alarm, in words (None: no alarm)
    model_trades: Sample = Sample()  # the model's own trades of the current window, net PnL %
    vote_gain: Sample = Sample()  # what the model added to the vote, per settled signal of the window
    benched: bool = False

    @property
    def win_rate(self) -> float | None:
        return self.scope_correct / self.scope_signals if self.scope_signals else None

    @classmethod
    def from_performance(cls, performance: Performance, *, has_model: bool, scope: str) -> PolicyInputs:
        """The policy's view of a Performance (computed with `current_window` for the rolling scope)."""
        counted = performance.since_start if scope == "cumulative" else performance.current
        measured = performance.current_recent if scope == "rolling" else counted
        return cls(
            has_model=has_model, model_signals=counted.signals, scope_signals=measured.signals,
            scope_correct=measured.correct, candles=performance.candles,
            last_retrain_ts=performance.retrain.last_completed_ts, model_since_ts=performance.current_since_ts,
            setback_status=performance.retrain.setback_status, setback_ts=performance.retrain.setback_ts,
            retrain_in_progress=performance.retrain.in_progress,
            consecutive_setbacks=performance.retrain.consecutive_setbacks,
            recent_retrain_ts=performance.retrain.recent_ts, model_trades=performance.model_current.trades,
            vote_gain=performance.vote_gain, benched=performance.benched,
        )


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    trigger: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"retrain": self.retrain, "trigger": self.trigger, "reason": self.reason}


def _no(reason: str) -> RetrainDecision:
    return RetrainDecision(False, None, reason)



def scope_text(config: Config, kind: str = "") -> str:
    """Which signals the win rate covers (auto_training.win_rate_scope), in words: `kind` is e.g. "settled "."""
    settings = config.auto_training
    if settings.win_rate_scope == "rolling":
        return f"the current model's last {settings.rolling_window} {kind}signals"
    if settings.win_rate_scope == "cumulative":
        return f"every {kind}signal since the start"
    return f"the current model's {kind}signals"


def decide(inputs: PolicyInputs, market_now_ms: int, config: Config) -> RetrainDecision:
    """Whether to retrain now, which trigger fired and why (or why not). Pure: no clock, no I/O."""
    settings = config.auto_training
    if not settings.enabled:
        return _no("auto_training.enabled is false")
    if inputs.retrain_in_progress:
        return _no("a retrain is already queued or running")
    if inputs.candles < config.training.min_candles:
        return _no(f"only {inputs.candles} candles stored; training needs {config.training.min_candles} "
                   "(training.min_candles)")
    if inputs.setback_ts is not None:
        hours = cooldown_hours(inputs.consecutive_setbacks, settings.cooldown_hours, settings.cooldown_max_factor)
        until = inputs.setback_ts + int(hours * HOUR_MS)
        if market_now_ms < until:
            escalated = (f" ({inputs.consecutive_setbacks} setbacks in a row: {hours:g} h)"
                         if inputs.consecutive_setbacks > 1 else "")
            return _no(f"cooldown after the {inputs.setback_status} retrain at {iso(inputs.setback_ts)}: "
                       f"no retrain before {iso(until)}{escalated} (auto_training.cooldown_hours)")
    today = [ts for ts in inputs.recent_retrain_ts if market_now_ms - ts < DAY_OF_RETRAINS_MS]
    if len(today) >= settings.max_retrains_per_day:
        return _no(f"{len(today)} retrains in the last 24 market hours: at most {settings.max_retrains_per_day} "
                   "(auto_training.max_retrains_per_day)")
    if settings.train_at_start and not inputs.has_model and inputs.last_retrain_ts is None:
        return RetrainDecision(True, TRAIN_AT_START, f"no model yet and {inputs.candles} candles of history: "
                                                     "training a first model now (auto_training.train_at_start)")
    if settings.train_at_start and not inputs.has_model and inputs.setback_ts is not None:
        # the first model was refused (or failed): try again once its cooldown is over, signals or not
        # (with the algorithms' weights at 0 there are none without a model)
        return RetrainDecision(True, FIRST_MODEL, f"no model yet: the {inputs.setback_status} try at "
                                                  f"{iso(inputs.setback_ts)} is past its cooldown, trying again "
                                                  "(auto_training.train_at_start)")
    if inputs.model_signals < settings.min_signals:
        return _no(f"only {inputs.model_signals} settled signals of the current model; "
                   f"need {settings.min_signals} (auto_training.min_signals)")
    win_rate = inputs.win_rate
    if PERFORMANCE in settings.triggers and win_rate is not None and inputs.scope_signals >= settings.min_signals \
            and win_rate < settings.min_win_rate_threshold:
        return RetrainDecision(True, PERFORMANCE, f"win rate {pct(win_rate)} over {scope_text(config)} "
                                                  f"({inputs.scope_correct}/{inputs.scope_signals}) is below "
                                                  f"{pct(settings.min_win_rate_threshold)}")
    if DRIFT in settings.triggers and inputs.has_model and inputs.drift is not None:
        return RetrainDecision(True, DRIFT, inputs.drift)
    losing = losing_money(inputs.model_trades, settings.min_signals, settings.money_t)
    if LOSING_MONEY in settings.triggers and inputs.has_model and losing is not None:
        return RetrainDecision(True, LOSING_MONEY, losing)
    if not inputs.has_model:
        if inputs.model_signals >= settings.first_model_signals:
            return RetrainDecision(True, FIRST_MODEL, f"no model yet and {inputs.model_signals} settled signals "
                                                      f"(>= {settings.first_model_signals})")
        return _no(f"no model yet; {inputs.model_signals} of {settings.first_model_signals} settled signals "
                   "for a first training")
    since = inputs.last_retrain_ts if inputs.last_retrain_ts is not None else inputs.model_since_ts
    health = f"win rate {pct(win_rate)} over {scope_text(config)}" if win_rate is not None else "no win rate yet"
    if since is None:
        return _no(f"{health}; the current model's age is unknown (no retrain recorded)")
    days = (market_now_ms - since) / DAY_MS
    if days >= settings.max_days_between_retrain:
        if inputs.model_signals >= settings.min_trades_before_retrain:
            return RetrainDecision(True, PERIODIC, f"{days:.1f} days since the last retrain "
                                                   f"(>= {settings.max_days_between_retrain:g}) and "
                                                   f"{inputs.model_signals} settled signals")
        return _no(f"{health}; {days:.1f} days since the last retrain but only {inputs.model_signals} settled "
                   f"signals (auto_training.min_trades_before_retrain: {settings.min_trades_before_retrain})")
    return _no(f"{health}; {days:.1f} of {settings.max_days_between_retrain:g} days since the last retrain")


def cooldown_hours(setbacks: int, base: float, max_factor: float) -> float:
    """The cooldown after `setbacks` rejected or failed retrains in a row: base, 2 x base, 4 x base, ...,
    at most max_factor x base (a promotion starts again from base)."""
    return base * min(max_factor, 2.0 ** max(0, setbacks - 1))


def losing_money(trades: Sample, minimum: int, t_limit: float) -> str | None:
    """Why the model's own trades lose money net of fees, with the sample size to say so (None: they do not,
    or too few to tell): a mean below 0 at least `-t_limit` standard errors away from 0."""
    if trades.n < minimum or trades.t is None or trades.mean is None or not trades.t <= t_limit:
        return None
    return (f"the model's own trades lose money net of fees: mean {trades.mean:+.3f}% over {trades.n} trades "
            f"(t = {trades.t:.2f} <= {t_limit:g}) while its direction may still look right")


def bench_reason(inputs: PolicyInputs, config: Config) -> str | None:
    """Why the serving model should leave the vote (signals fall back to the algorithms) until a challenger
    earns its place: the combined vote does significantly worse, net of fees, than the algorithms alone on
    the same candles. None: it stays (or is already benched, or too few signals to say)."""
    settings = config.auto_training
    gain = inputs.vote_gain
    if inputs.benched or not inputs.has_model or gain.n < settings.min_signals or gain.t is None or gain.mean is None:
        return None
    if not gain.t <= settings.bench_t:
        return None
    return (f"with the model the vote made {gain.mean:+.3f}% a signal less than the algorithms alone over "
            f"{gain.n} signals (t = {gain.t:.2f} <= {settings.bench_t:g}): out of the vote until a challenger "
            "is promoted")


def log_line(decision: RetrainDecision, symbol: str) -> str | None:
    """The line to log when the decision fires (the guide's line for `performance`), else None."""
    if not decision.retrain:
        return None
    head = {
        PERFORMANCE: f"Performance degraded for {symbol}, scheduling retrain",
        DRIFT: f"Performance degraded for {symbol}, scheduling retrain",
        LOSING_MONEY: f"Performance degraded for {symbol}, scheduling retrain",
        FIRST_MODEL: f"No model yet for {symbol}, scheduling retrain",
        PERIODIC: f"Periodic retrain due for {symbol}, scheduling retrain",
        TRAIN_AT_START: f"History available and no model for {symbol}, scheduling retrain",
    }.get(decision.trigger or "", f"Retrain needed for {symbol}, scheduling retrain")
    return f"{head} (trigger {decision.trigger}: {decision.reason})"
