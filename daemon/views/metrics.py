"""The Prometheus metrics, built from the `status` snapshot: what a scrape says is what `status --json` says.

Every family is named here with its help text (README "Metrics" lists them). Base units (seconds, bytes,
ratios), `_total` counters, the `autoretrain_` prefix. A figure names its record in the help text and
the `record` label: `combined` is the signal the daemon emits (the weighted vote), `model` the model's own
probability alone; `window` says over which settled trades: `current_model` (since the serving version
began), `rolling` (the newest `signals.performance_window` signals) or `since_start`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from autoretrain.daemon.foundation.timeframes import parse_iso_ms, timeframe_ms

PROCESSES = ("supervisor", "ingest", "inference", "trainer")


def _seconds(iso_time: str | None) -> float | None:
    return parse_iso_ms(iso_time) / 1000.0 if iso_time else None


def _ratio(percent: float | None) -> float | None:
    return percent / 100.0 if percent is not None else None


def _process_families(snapshot: dict[str, Any]) -> Iterator[Metric]:
    up = GaugeMetricFamily("autoretrain_up", "1 when the process runs and (for a child) reported ready, else 0",
                           labels=["process"])
    restarts = CounterMetricFamily("autoretrain_process_restarts", "Restarts of the child by the supervisor "
                                   "since autoretraind started", labels=["process"])
    rss = GaugeMetricFamily("autoretrain_process_resident_memory_bytes", "Resident memory of the process",
                            labels=["process"])
    cpu = CounterMetricFamily("autoretrain_process_cpu_seconds", "User and system CPU time of the process "
                              "(its current incarnation)", labels=["process"])
    for row in snapshot.get("processes", []):
        name = str(row.get("name"))
        up.add_metric([name], 1.0 if row.get("pid") is not None and row.get("ready", True) else 0.0)
        if name != "supervisor":
            restarts.add_metric([name], float(row.get("restarts") or 0))
        if row.get("rss_mb") is not None:
            rss.add_metric([name], float(row["rss_mb"]) * 2**20)
        if row.get("cpu_seconds") is not None:
            cpu.add_metric([name], float(row["cpu_seconds"]))
    yield from (up, restarts, rss, cpu)
    latency = next((row.get("signal_latency") for row in snapshot.get("processes", [])
                    if row.get("name") == "inference" and row.get("signal_latency")), None)
    if latency:
        histogram = HistogramMetricFamily("autoretrain_signal_latency_seconds", "Wall time from a candle's close "
                                          "(in market time) to its signal being recorded and published, every "
                                          "signal inference made since it started")
        histogram.add_metric([], [(str(le), float(count)) for le, count in latency["buckets"]],
                             sum_value=float(latency["sum_s"]))
        yield histogram


class _SymbolFamilies:
    """The per-symbol families, filled symbol by symbol."""

    def __init__(self) -> None:
        series = ["symbol", "timeframe"]
        self.candle_time = GaugeMetricFamily("autoretrain_last_candle_timestamp_seconds", "Open time (market time, "
                                             "Unix seconds) of the newest closed candle in the store", labels=series)
        self.close = GaugeMetricFamily("autoretrain_last_close", "Close price of the newest closed candle",
                                       labels=series)
        self.candles = GaugeMetricFamily("autoretrain_candles", "Closed candles in the store", labels=series)
        self.signals = CounterMetricFamily("autoretrain_signals", "Signals recorded (one per closed candle), by the "
                                           "combined signal's action", labels=[*series, "action"])
        self.trades = CounterMetricFamily("autoretrain_trades", "Settled trades (BUY or SELL signals whose outcome "
                                          "candle arrived), by action; record=combined: the signal emitted, "
                                          "record=model: the model's probability alone", labels=[*series, "record", "action"])
        self.win_rate = GaugeMetricFamily(
            "autoretrain_win_rate_ratio", "Direction right / settled trades. record=combined: the emitted signal's "
            "trades; record=model: the model's own predictions (every candle it predicted, as offline evaluation "
            "scores it). window=current_model: since the serving version began; rolling: the newest "
            "performance_window signals; since_start: every settled trade", labels=[*series, "record", "window"])
        self.pnl = GaugeMetricFamily(
            "autoretrain_pnl_net_ratio", "Sum of settled trades' returns net of fees (0.01 = 1%), same records and "
            "windows as autoretrain_win_rate_ratio", labels=[*series, "record", "window"])
        self.model = InfoMetricFamily("autoretrain_model", "The promoted version (registry pointer) and the one "
                                      "inference serves now ('none': algorithms only)", labels=series)
        self.needs_retrain = GaugeMetricFamily("autoretrain_needs_retrain", "1 when the retrain policy would queue a "
                                               "retrain now (status's needs_retrain)", labels=series)
        self.training = GaugeMetricFamily("autoretrain_training_in_progress", "1 while the trainer trains this "
                                          "symbol", labels=series)
        self.epoch = GaugeMetricFamily("autoretrain_training_epoch", "Epoch the running retrain reached",
                                       labels=series)
        self.epochs = GaugeMetricFamily("autoretrain_training_epochs", "Epochs the running retrain may run",
                                        labels=series)
        self.retrains = CounterMetricFamily("autoretrain_retrains", "Retrain runs by trigger and result (queued, "
                                            "running, promoted, rejected, failed, aborted) since the store began",
                                            labels=[*series, "trigger", "result"])
        self.promotions = CounterMetricFamily("autoretrain_promotions", "A newer model version went live (by "
                                              "retrain or promote)", labels=series)
        self.rejections = CounterMetricFamily("autoretrain_rejections", "Challengers the promotion rule refused",
                                              labels=series)
        self.rollbacks = CounterMetricFamily("autoretrain_rollbacks", "An older model version went live again "
                                             "(rollback, or promote of an earlier version)", labels=series)
        self.readable = GaugeMetricFamily("autoretrain_symbol_state_readable", "0 when the symbol's state could not "
                                          "be read from the store (status says why)", labels=series)

    def add(self, state: dict[str, Any]) -> None:
        key = [str(state.get("symbol")), str(state.get("timeframe"))]
        self.readable.add_metric(key, 0.0 if state.get("error") else 1.0)
        if state.get("error"):
            return
        if state.get("last_candle"):
            self.candle_time.add_metric(key, float(_seconds(state["last_candle"]) or 0.0))
        if state.get("price") is not None:
            self.close.add_metric(key, float(state["price"]))
        self.candles.add_metric(key, float(state.get("candles") or 0))
        performance = state.get("performance") or {}
        for action, count in (performance.get("actions") or {}).items():
            self.signals.add_metric([*key, action], float(count))
        counts = state.get("counts") or {}
        for record, by_action in (counts.get("trades_by_action") or {}).items():
            for action in ("BUY", "SELL"):
                self.trades.add_metric([*key, record, action], float(by_action.get(action, 0)))
        self._records(key, performance)
        self.model.add_metric(key, {"promoted": str(state.get("promoted_version") or "none"),
                                    "serving": str(state.get("model_version") or "none")})
        self.needs_retrain.add_metric(key, 1.0 if state.get("needs_retrain") else 0.0)
        training = state.get("training") or {}
        self.training.add_metric(key, 1.0 if training.get("in_progress") else 0.0)
        if training.get("in_progress"):
            self.epoch.add_metric(key, float(training.get("epoch") or 0))
            if training.get("epochs"):
                self.epochs.add_metric(key, float(training["epochs"]))
        for row in counts.get("retrains") or []:
            self.retrains.add_metric([*key, str(row["trigger"]), str(row["result"])], float(row["count"]))
        self.promotions.add_metric(key, float(counts.get("promotions") or 0))
        self.rejections.add_metric(key, float(counts.get("rejections") or 0))
        self.rollbacks.add_metric(key, float(counts.get("rollbacks") or 0))

    def _records(self, key: list[str], performance: dict[str, Any]) -> None:
        """Win rate and PnL of the combined signal and of the model's own record, per window."""
        for window, stats in (("current_model", performance.get("current_model")),
                              ("rolling", performance.get("rolling")),
                              ("since_start", performance.get("since_start"))):
            if not stats:
                continue
            if stats.get("win_rate") is not None:
                self.win_rate.add_metric([*key, "combined", window], float(stats["win_rate"]))
            self.pnl.add_metric([*key, "combined", window], float(_ratio(stats.get("pnl_total_pct")) or 0.0))
        own = (performance.get("model") or {}).get("current_model") or {}
        if own.get("direction_accuracy") is not None:
            self.win_rate.add_metric([*key, "model", "current_model"], float(own["direction_accuracy"]))
        if own.get("trade_pnl_total_pct") is not None:
            self.pnl.add_metric([*key, "model", "current_model"], float(_ratio(own["trade_pnl_total_pct"]) or 0.0))

    def families(self) -> list[Metric]:
        return [self.candle_time, self.close, self.candles, self.signals, self.trades, self.win_rate, self.pnl,
                self.model, self.needs_retrain, self.training, self.epoch, self.epochs, self.retrains,
                self.promotions, self.rejections, self.rollbacks, self.readable]


def metric_families(snapshot: dict[str, Any]) -> Iterator[Metric]:
    """Every family from one `status` snapshot."""
    daemon = snapshot.get("daemon") or {}
    status_ok = GaugeMetricFamily("autoretrain_status_ok", "1 when the supervisor answered the status request "
                                  "behind this scrape and its store reads worked, else 0")
    status_ok.add_metric([], 0.0 if (snapshot.get("store") or {}).get("error") else 1.0)
    yield status_ok
    ready = GaugeMetricFamily("autoretrain_ready", "1 once every child reported ready (systemd READY=1)")
    ready.add_metric([], 1.0 if daemon.get("ready") else 0.0)
    yield ready
    if daemon.get("timeframe"):
        frame = GaugeMetricFamily("autoretrain_timeframe_seconds", "Length of the daemon's candles",
                                  labels=["timeframe"])
        frame.add_metric([str(daemon["timeframe"])], timeframe_ms(str(daemon["timeframe"])) / 1000.0)
        yield frame
    if daemon.get("market_time_ms") is not None:
        market = GaugeMetricFamily("autoretrain_market_time_seconds", "The market's time now (Unix seconds): the "
                                   "exchange's own clock as ingest last read it, the accelerated clock for the simulated market")
        market.add_metric([], float(daemon["market_time_ms"]) / 1000.0)
        yield market
    yield from _process_families(snapshot)
    symbols = _SymbolFamilies()
    for state in snapshot.get("symbols", []):
        symbols.add(state)
    yield from symbols.families()


def unavailable_families() -> Iterator[Metric]:
    """What a scrape says when the supervisor's loop did not answer the status request (its log says why)."""
    status_ok = GaugeMetricFamily("autoretrain_status_ok", "1 when the supervisor answered the status request "
                                  "behind this scrape and its store reads worked, else 0")
    status_ok.add_metric([], 0.0)
    yield status_ok
