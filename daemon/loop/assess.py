"""The policy's view of a series, read from the store: what inference decides on and what status reports.

`policy_inputs` is the per-candle read (indexed reads only: cheap for every candle of every symbol);
`assess` reads the full performance too (status, heartbeat, `autoretrainctl performance`). Both feed
the same pure `signals.policy.decide`, so the daemon and the operator's view never disagree.
"""

from __future__ import annotations

from dataclasses import replace

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.timeframes import DAY_MS
from autoretrain.daemon.loop.watch import ModelWatch, build_watch
from autoretrain.daemon.signals.performance import Performance, Sample
from autoretrain.daemon.signals.policy import PolicyInputs, RetrainDecision, decide
from autoretrain.daemon.store.database import Database


def candles_for_training(db: Database, config: Config, exchange: str, symbol: str, timeframe: str,
                         until_ms: int | None = None) -> int:
    """Candles in the newest `training.days` window up to `until_ms` (the newest closed candle: one from the
    future in the store moves no window), counted up to `training.min_candles` (all the policy needs)."""
    return db.candles.count_recent(exchange, symbol, timeframe, span_ms=int(config.training.days * DAY_MS),
                                   limit=config.training.min_candles, until_ms=until_ms)


def policy_inputs(db: Database, config: Config, exchange: str, symbol: str, timeframe: str, *,
                  has_model: bool, watch: ModelWatch | None = None, until_ms: int | None = None) -> PolicyInputs:
    """What `decide` reads, with indexed reads only; `watch` holds the model's own record (the loop keeps it
    outcome by outcome; without it, it is rebuilt from the store); candles are counted up to `until_ms`."""
    settings = config.auto_training
    activation = db.signals.current_activation(exchange, symbol, timeframe)
    since = activation.market_ts if activation else None
    counted_since = None if settings.win_rate_scope == "cumulative" else since
    current = db.performance.newest_trades(exchange, symbol, timeframe, since_ts=counted_since)
    measured = db.performance.newest_trades(exchange, symbol, timeframe, since_ts=since,
                                            limit=settings.rolling_window) \
        if settings.win_rate_scope == "rolling" else current
    retrain = db.runs.summary(exchange, symbol, timeframe)
    if watch is None:
        watch = build_watch(db, config, exchange, symbol, timeframe, accuracy=None)
    return PolicyInputs(
        has_model=has_model, model_signals=current.signals, scope_signals=measured.signals,
        scope_correct=measured.correct, candles=candles_for_training(db, config, exchange, symbol, timeframe, until_ms),
        last_retrain_ts=retrain.last_completed_ts, model_since_ts=since, setback_status=retrain.setback_status,
        setback_ts=retrain.setback_ts, retrain_in_progress=retrain.in_progress,
        consecutive_setbacks=retrain.consecutive_setbacks, recent_retrain_ts=retrain.recent_ts,
        drift=watch.alarm if has_model else None, model_trades=watch.trades.sample() if has_model else Sample(),
        vote_gain=watch.gain.sample() if has_model else Sample(),
        benched=activation.benched if activation is not None else False,
    )


def assess(db: Database, config: Config, exchange: str, symbol: str, timeframe: str, *,
           has_model: bool, market_now_ms: int | None = None,
           accuracy: float | None = None, until_ms: int | None = None) -> tuple[Performance, RetrainDecision]:
    """Performance from the store and the policy's decision on it, with the drift detector rebuilt from the
    store as inference keeps it (`accuracy`: what the serving model's evaluation measured).

    `market_now_ms` defaults to the open time of the newest stored candle of the series (opening by `until_ms`,
    when given: the newest closed one).
    """
    performance = db.read_performance(exchange, symbol, timeframe, window=config.signals.performance_window,
                                      current_window=config.auto_training.rolling_window, until_ts=until_ms)
    if market_now_ms is None:
        market_now_ms = performance.last_candle_ts if performance.last_candle_ts is not None else 0
    watch = build_watch(db, config, exchange, symbol, timeframe, accuracy=accuracy) if has_model else None
    inputs = replace(  # the performance already read holds everything but the training window and the detector
        PolicyInputs.from_performance(performance, has_model=has_model, scope=config.auto_training.win_rate_scope),
        candles=candles_for_training(db, config, exchange, symbol, timeframe, until_ms),
        drift=watch.alarm if watch is not None else None)
    return performance, decide(inputs, market_now_ms, config)
