"""The backtest's answer: one JSON document (every figure, its definition, its uncertainty) and a table.

Every variant is compared with `static` (one model trained at the start) on the same candles: the
difference in compounded return, with a 95 % interval from a paired moving-block bootstrap over candles.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from autoretrain.daemon.backtest.metrics import bootstrap_difference, candle_returns, summarise
from autoretrain.daemon.backtest.replay import VariantRun
from autoretrain.daemon.foundation.formatting import pct, signed_pct

DEFINITIONS = {
    "signals": "candles signalled (BUY, SELL or HOLD)",
    "trades": "settled BUY and SELL signals of the combined vote (HOLD is no trade)",
    "direction_accuracy": "trades whose direction happened / trades; ci95: Wilson score interval",
    "win_rate_net": "trades with a positive PnL after the fee on both sides / trades",
    "pnl_sum_pct": "sum of per-trade PnL % net of fees (every trade the same size)",
    "pnl_compounded_pct": "compounded return of the account, each trade sized 1/horizon, net of fees",
    "max_drawdown_pct": "largest fall of compounded equity from a previous peak",
    "sharpe": "annualised mean / standard deviation of per-candle returns (risk-free rate 0)",
    "exposure": "share of candles in a position",
    "vs_static": "PnL (sum of per-candle returns, %) minus static's on the same candles; ci95: paired "
                 "moving-block bootstrap over candles",
}


def returns_of(run: VariantRun, horizon: int) -> np.ndarray:
    return candle_returns(run.trades, run.candle_ts, horizon)


def variant_report(run: VariantRun, returns: np.ndarray, *, step_ms: int, horizon: int) -> dict[str, Any]:
    figures = summarise(run.trades, returns, signals=run.signals, step_ms=step_ms, horizon=horizon)
    if not run.variant.replays:  # buy and hold: always in the market, no trades to add up
        figures.update(exposure=1.0, pnl_sum_pct=None)
    statuses = Counter(row.status for row in run.retrains)
    outside = max(1e-9, run.seconds - run.training_seconds)
    return {
        "description": run.variant.description, **figures,
        "retrains": {"fired_by_trigger": dict(Counter(row.trigger for row in run.retrains)),
                     "promoted": statuses.get("promoted", 0), "rejected": statuses.get("rejected", 0),
                     "failed": statuses.get("failed", 0), "skipped_over_budget": run.skipped_retrains,
                     "model_failures": run.model_failures},
        "retrain_runs": [row.as_dict() for row in run.retrains],
        "timing": {"seconds": round(run.seconds, 2), "training_seconds": round(run.training_seconds, 2),
                   "candles_per_s_outside_training": round(len(run.candle_ts) / outside, 1)},
    }


def build_report(runs: list[VariantRun], returns: dict[str, np.ndarray], *, data: dict[str, Any],
                 settings: dict[str, Any], step_ms: int, horizon: int, block: int, resamples: int,
                 seed: int) -> dict[str, Any]:
    variants = {run.variant.name: variant_report(run, returns[run.variant.name], step_ms=step_ms, horizon=horizon)
                for run in runs}
    for name, report in variants.items():
        estimate, low, high = bootstrap_difference(returns[name], returns["static"], block=block,
                                                   resamples=resamples, seed=seed)
        report["vs_static"] = {"pnl_difference_pct": 100 * estimate, "ci95_pct": [100 * low, 100 * high]}
    return {"data": data, "settings": {**settings, "block_length_candles": block, "bootstrap_resamples": resamples,
                                       "seed": seed},
            "definitions": DEFINITIONS, "variants": variants}


def table(report: dict[str, Any]) -> str:
    """The stdout table: one row per variant."""
    header = (f"{'variant':<17}{'trades':>7} {'accuracy [95% CI]':<22}{'win net':>8}{'PnL sum':>10}{'compound':>10}"
              f"{'max DD':>8}{'Sharpe':>7}{'expo':>6}{'retrains':>9}{'promo':>6}  {'vs static [95% CI]'}")
    lines = [header]
    for name, v in report["variants"].items():
        ci = v["direction_accuracy_ci95"]
        accuracy = f"{pct(v['direction_accuracy'])} [{pct(ci[0])}, {pct(ci[1])}]" if ci else "-"
        diff = v["vs_static"]
        versus = "-" if name == "static" else (f"{signed_pct(diff['pnl_difference_pct'], 1)} "
                                              f"[{signed_pct(diff['ci95_pct'][0], 1)}, {signed_pct(diff['ci95_pct'][1], 1)}]")
        retrains = sum(v["retrains"]["fired_by_trigger"].values())
        sharpe = "-" if v["sharpe"] is None else f"{v['sharpe']:.2f}"
        lines.append(f"{name:<17}{v['trades']:>7} {accuracy:<22}{pct(v['win_rate_net']):>8}"
                     f"{signed_pct(v['pnl_sum_pct'], 1):>10}{signed_pct(v['pnl_compounded_pct'], 1):>10}"
                     f"{v['max_drawdown_pct']:>7.1f}%{sharpe:>7}{v['exposure']:>6.2f}{retrains:>9}"
                     f"{v['retrains']['promoted']:>6}  {versus}")
    data, settings = report["data"], report["settings"]
    lines.append(f"{data['symbol']} {data['timeframe']}, {data['candles']} candles from {data['from']} to {data['to']}; "
                 f"fees {settings['fee_bps']:g} bps a side; a model serves {settings['train_latency_candles']} candle(s) "
                 f"after the one its data ends at; bootstrap blocks of {settings['block_length_candles']} candles")
    return "\n".join(lines)
