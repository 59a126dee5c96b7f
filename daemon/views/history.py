"""What the dashboard's charts and `autoretrainctl report` draw for one symbol, read from the store.

One builder for both, so the page in the browser and the PNG show the same series: the closes with every
BUY and SELL, the rolling win rate of the combined signal's settled trades beside the retrain threshold,
the cumulative PnL net of fees of the combined signal and of the model's own trades, and the model
timeline (which version served from which candle, every retrain with its trigger and result, every
promotion, rejection with its reason, rollback and benching). Everything is read up to the newest closed
candle (`until_ms`); nothing is computed from a label the daemon could not have known at the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.timeframes import iso, timeframe_ms
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.store.retrain_runs import FAILED, PROMOTED, REJECTED, RetrainRun
from autoretrain.daemon.store.signals import Activation, SignalRecord
from autoretrain.models.registry import version_number

#: the rolling win rate is drawn from this many settled trades on, while its window fills
MIN_ROLLING_TRADES = 5
#: at most this many retrain runs on the timeline (the newest)
TIMELINE_RUNS = 500


@dataclass(frozen=True)
class Window:
    """The span of market time a chart covers: candles opening in [start_ms, end_ms]."""

    start_ms: int
    end_ms: int


def chart_window(db: Database, config: Config, symbol: str, *, until_ms: int | None, since_ms: int | None = None,
                 candles: int | None = None) -> Window | None:
    """From `since_ms` (else the newest `candles`, default `dashboard.history_candles`) to the newest closed
    candle; None when the store has no candle of the symbol yet."""
    exchange, timeframe = config.store_exchange, config.market.timeframe
    newest = db.candles.latest(exchange, symbol, timeframe, 1, end_ms=until_ms)
    if len(newest) == 0:
        return None
    end = int(newest["ts"][-1])
    if since_ms is not None:
        return Window(min(since_ms, end), end)
    count = candles or config.dashboard.history_candles
    return Window(end - (count - 1) * timeframe_ms(timeframe), end)


def _rolling(values: list[bool], window: int) -> list[float | None]:
    """Share of True in the newest `window` values at each point (None until MIN_ROLLING_TRADES are in)."""
    out: list[float | None] = []
    right = 0
    for index, value in enumerate(values):
        right += value
        if index >= window:
            right -= values[index - window]
        seen = min(index + 1, window)
        out.append(right / seen if seen >= min(MIN_ROLLING_TRADES, window) else None)
    return out


def _cumulative(values: list[float]) -> list[float]:
    total, out = 0.0, []
    for value in values:
        total += value
        out.append(round(total, 6))
    return out


def trade_series(records: list[SignalRecord], window: int, until_ms: int | None = None) -> dict[str, Any]:
    """Settled trades at the time their result was known (the exit candle), up to `until_ms`: the combined
    signal's rolling win rate (direction right / trades over the newest `window`) and cumulative PnL % net of
    fees (a sum of trade returns); the same for the model's own trades (its probability alone, in the vote or
    not: direction right / its trades)."""
    def known(record: SignalRecord) -> bool:
        return record.outcome is not None and (until_ms is None or record.outcome.exit_ts <= until_ms)

    combined = [r.outcome for r in records if known(r) and r.outcome and r.outcome.pnl_pct is not None]
    model = [r.outcome for r in records if known(r) and r.outcome and r.outcome.model_pnl_pct is not None]
    return {
        "combined": {"ts": [o.exit_ts for o in combined],
                     "win_rate": _rolling([bool(o.correct) for o in combined], window),
                     "pnl_pct": _cumulative([float(o.pnl_pct or 0.0) for o in combined])},
        "model": {"ts": [o.exit_ts for o in model],
                  "win_rate": _rolling([bool(o.model_correct) for o in model], window),
                  "pnl_pct": _cumulative([float(o.model_pnl_pct or 0.0) for o in model])},
    }


def _older(version: str | None, than: str | None) -> bool:
    if version is None or than is None:
        return False
    return version_number(version) < version_number(than)


def activation_events(activations: list[Activation]) -> list[dict[str, Any]]:
    """Every change of the serving model: a newer version going live is a promotion, an older one a rollback
    (by `rollback`, or `promote` of an earlier version), none a fall-back to the algorithms, and the same
    version leaving or re-entering the vote a benching (or, neither benched, the same version again)."""
    events: list[dict[str, Any]] = []
    previous: Activation | None = None
    for activation in activations:
        before = previous.version if previous is not None else None
        if previous is not None and activation.version == before:
            kind = "benched" if activation.benched else "unbenched" if previous.benched else "reactivated"
        elif activation.version is None:
            kind = "algorithms_only"
        elif _older(activation.version, before):
            kind = "rollback"
        else:
            kind = "promotion"
        events.append({"kind": kind, "ts": activation.market_ts, "time": iso(activation.market_ts),
                       "version": activation.version, "previous": before, "reason": activation.reason})
        previous = activation
    return events


def _run_reason(run: RetrainRun) -> str:
    """What the run's result says: the promotion rule's verdict, or the failure."""
    return str(run.detail.get("reason") or run.detail.get("error") or "")


def run_events(runs: list[RetrainRun]) -> list[dict[str, Any]]:
    """Every retrain run at its market time: trigger, why it was asked for, its result and the verdict."""
    return [{"kind": "retrain", "ts": run.market_ts, "time": iso(run.market_ts), "run_id": run.id,
             "trigger": run.trigger, "reason": run.reason, "status": run.status, "version": run.version,
             "result": _run_reason(run)} for run in runs if run.market_ts is not None]


def version_segments(activations: list[Activation], end_ms: int) -> list[dict[str, Any]]:
    """Which version served from which candle to which (None: the algorithms alone), benched or not."""
    segments = []
    for index, activation in enumerate(activations):
        until = activations[index + 1].market_ts if index + 1 < len(activations) else end_ms
        segments.append({"version": activation.version, "from_ts": activation.market_ts, "to_ts": until,
                         "benched": activation.benched})
    return segments


def tallies(db: Database, config: Config, symbol: str) -> dict[str, Any]:
    """Counts since the store began (the Prometheus counters): settled trades per action, retrains per trigger
    and result, promotions, rollbacks (both from the serving model's changes) and rejected challengers."""
    exchange, timeframe = config.store_exchange, config.market.timeframe
    runs = db.runs.counts(exchange, symbol, timeframe)
    changes = activation_events(db.signals.activations(exchange, symbol, timeframe))
    return {
        "trades_by_action": db.signals.settled_trades_by_action(exchange, symbol, timeframe),
        "retrains": [{"trigger": trigger, "result": status, "count": count}
                     for (trigger, status), count in sorted(runs.items())],
        "promotions": sum(1 for event in changes if event["kind"] == "promotion"),
        "rollbacks": sum(1 for event in changes if event["kind"] == "rollback"),
        "rejections": sum(count for (_, status), count in runs.items() if status == REJECTED),
        "failures": sum(count for (_, status), count in runs.items() if status == FAILED),
        "promoted_by_retrain": sum(count for (_, status), count in runs.items() if status == PROMOTED),
    }


def symbol_history(db: Database, config: Config, symbol: str, *, until_ms: int | None, since_ms: int | None = None,
                   candles: int | None = None) -> dict[str, Any]:
    """The chart data of one symbol (JSON values only): see the module's docstring."""
    exchange, timeframe = config.store_exchange, config.market.timeframe
    window = chart_window(db, config, symbol, until_ms=until_ms, since_ms=since_ms, candles=candles)
    threshold = config.auto_training.min_win_rate_threshold
    rolling = config.auto_training.rolling_window
    base: dict[str, Any] = {"symbol": symbol, "timeframe": timeframe, "threshold": threshold,
                            "rolling_window": rolling, "fee_bps": config.signals.fee_bps}
    if window is None:
        return {**base, "from": None, "to": None, "candles": {"ts": [], "close": []}, "markers": [],
                "trades": trade_series([], rolling), "events": [], "versions": []}
    rows = db.candles.window(exchange, symbol, timeframe, start_ms=window.start_ms, end_ms=window.end_ms)
    records = db.signals.between(exchange, symbol, timeframe, window.start_ms, window.end_ms)
    activations = db.signals.activations(exchange, symbol, timeframe)
    runs = [run for run in reversed(db.runs.recent(exchange, symbol, timeframe, limit=TIMELINE_RUNS))
            if run.market_ts is not None and run.market_ts <= window.end_ms]
    in_window = [a for a in activations if a.market_ts <= window.end_ms]
    events = [e for e in activation_events(in_window) + run_events(runs) if e["ts"] >= window.start_ms]
    events.sort(key=lambda event: (event["ts"], event["kind"] != "retrain"))
    return {
        **base, "from": iso(window.start_ms), "to": iso(window.end_ms),
        "candles": {"ts": [int(ts) for ts in rows["ts"]], "close": [float(close) for close in rows["close"]]},
        "markers": [{"ts": r.signal.candle_ts, "action": r.signal.action, "price": r.signal.price,
                     "model_version": r.signal.model_version} for r in records if r.signal.action != "HOLD"],
        "trades": trade_series(records, rolling, until_ms),
        "events": events,
        "versions": [segment for segment in version_segments(in_window, window.end_ms)
                     if segment["to_ts"] >= window.start_ms],
    }
