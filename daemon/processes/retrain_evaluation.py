"""Scoring a retrain's candidates, the champion and the baselines on the same evaluation samples.

A retrain can produce more than one candidate (a full retrain and a fine-tuned champion); the better of
them on the evaluation window is the challenger, and the promotion test shares its level among all of
them (`candidates=` in `evaluation.decide`), so picking the best of two does not double the chance of
promoting a model that is no better.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.formatting import pct
from autoretrain.daemon.foundation.timeframes import iso
from autoretrain.daemon.processes.retrain_data import TrainingData
from autoretrain.models import dataset as ds
from autoretrain.models import evaluation as ev
from autoretrain.models.runtime import ModelRunner

log = logging.getLogger("autoretrain.model")
Scored = tuple[dict[str, Any], dict[str, np.ndarray]]


def evaluate(config: Config, data: TrainingData, ends: np.ndarray, candidates: dict[str, tuple[ModelRunner, np.ndarray]],
             champion: ModelRunner | None, train_labels: np.ndarray) -> Scored:
    """(metrics for meta.json, each model's correct-per-sample flags for the paired tests).

    `candidates` maps a name to (the exported model, the features scaled by its normaliser), best first
    on ties; `metrics["chosen"]` names the one with the highest accuracy, which is `metrics["challenger"]`."""
    seq_len, horizon = config.model.seq_len, config.model.horizon
    label = ds.labels(data.close, ends, horizon)
    future = ds.future_returns(data.close, ends, horizon)
    signals = config.signals

    def run(probability: np.ndarray) -> ev.Scores:
        return ev.score(probability, label, future, threshold=signals.confidence_threshold, fee_bps=signals.fee_bps)

    scored = {name: run(runner.probabilities(data.candles, ends, scaled)) for name, (runner, scaled) in candidates.items()}
    chosen = max(scored, key=lambda name: scored[name].accuracy or 0.0)  # max keeps the first of equals
    new = scored[chosen]
    correct = {"challenger": new.correct}
    majority = ev.majority_probability(train_labels, len(ends))
    persistence = ev.persistence_probability(data.close, ends, horizon)
    baselines: dict[str, Any] = {}
    for name, probability, how in (
            ("majority_of_training", majority, f"the training labels' majority: always {'up' if majority[:1].sum() else 'down'}"),
            ("persistence", persistence, "the next move repeats the last one")):
        scores = run(probability)
        correct[name] = scores.correct
        baselines[name] = {**scores.as_dict(), "predicts": how,
                           "mcnemar_p": ev.mcnemar_exact(new.correct, scores.correct)["p_value"]}
    metrics: dict[str, Any] = {"baselines": baselines, "champion": None,
                               "baseline": max(baselines.values(), key=lambda b: b["accuracy"] or 0.0)}
    reference = metrics["baseline"]["mcnemar_p"]
    if champion is not None:
        # same feature set (ModelRunner.load refuses any other): only the champion's own scaling differs
        old = run(champion.probabilities(data.candles, ends, champion.normaliser.apply(data.features)))
        correct["champion"] = old.correct
        vs_old = ev.mcnemar_exact(new.correct, old.correct)
        metrics["champion"] = {**old.as_dict(), "version": champion.version, "mcnemar_p": vs_old["p_value"],
                               "mcnemar": vs_old}
        reference = vs_old["p_value"]
    metrics["challenger"] = {**new.as_dict(), "mcnemar_p": reference, "kind": chosen}
    metrics["chosen"] = chosen
    metrics["candidates"] = {name: s.as_dict() for name, s in scored.items()}
    if len(scored) > 1:
        log.info("Candidates: %s; the challenger is the %s model", ", ".join(
            f"{name.replace('_', ' ')} {pct(s.accuracy)}" for name, s in scored.items()), chosen.replace("_", " "))
    first, last = data.ts(int(ends[0]) - seq_len + 1), data.ts(int(ends[-1]) + horizon)
    metrics["evaluation"] = {"samples": int(len(ends)), "first_ts": first, "last_ts": last, "first": iso(first),
                             "last": iso(last), "baselines": "majority of the training labels; persistence"}
    return metrics, correct


def log_decision(symbol: str, metrics: dict[str, Any], promoted: bool, reason: str, version: str | None) -> None:
    """The guide's log lines about a decision, then ours."""
    log.info("New model accuracy: %s", pct(metrics["challenger"]["accuracy"]))
    if metrics.get("champion"):
        log.info("Old model accuracy: %s", pct(metrics["champion"]["accuracy"]))
    log.info("Baseline accuracy: %s", pct(metrics["baseline"]["accuracy"]))
    log.info("Decision for %s %s: %s", symbol, version, reason)
    if promoted:
        log.info("New model saved for %s (accuracy: %s)", symbol, pct(metrics["challenger"]["accuracy"]))
    elif metrics.get("champion"):
        log.info("Keeping existing model for %s", symbol)
    else:
        log.info("No model promoted for %s (candidate %s kept unpromoted)", symbol, version)
