"""One retrain job, start to finish: the guide's `scripts/train_model.py`, grown up.

Stored candles (the last `training.days` days up to the newest one, market time) -> features ->
time-ordered train | purge | validation | purge | evaluation split -> LSTM training with early
stopping -> ONNX export and parity check -> challenger, champion and majority baseline scored on the
same newest candles that neither model trained on -> registered version -> promotion by the rule ->
the run recorded in `retrain_runs`. `autoretrainctl train` and the daemon's trainer both call
`run_training`; the trainer niced itself before (this module never touches priorities).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import DataError, UsageError
from autoretrain.daemon.foundation.formatting import pct
from autoretrain.daemon.foundation.timeframes import iso
from autoretrain.daemon.processes.retrain_data import TrainingData, base_meta, load_training_data
from autoretrain.daemon.store.candles import CandleTable
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.store.retrain_runs import ABORTED, FAILED, PROMOTED, REJECTED, RetrainRuns
from autoretrain.models import dataset as ds
from autoretrain.models import evaluation as ev
from autoretrain.models.errors import ChampionChanged, ModelRejected, TrainingAborted
from autoretrain.models.export import ParityReport, check_parity, export_onnx
from autoretrain.models.features import N_FEATURES
from autoretrain.models.registry import Registry, Staging
from autoretrain.models.runtime import MODEL_FILE, PARITY_FILE, ModelRunner, sha256_bytes
from autoretrain.models.training import (
    FitSettings,
    NetworkShape,
    ProgressCallback,
    StopCheck,
    TrainResult,
    train_network,
)

log = logging.getLogger("autoretrain.model")
PARITY_SAMPLES = 64
MIN_TRAIN_SAMPLES = 100
MIN_VALIDATION_SAMPLES = 20
PROMOTE_MODES = ("auto", "always", "never")
STEPS = ("data", "train", "export", "evaluate")  # the durations every outcome reports (0.0: skipped)


@dataclass
class TrainOutcome:
    """What a retrain job produced; `as_dict` is the JSON of `autoretrainctl train --json`."""

    run_id: int
    symbol: str
    timeframe: str
    status: str  # promoted | rejected (the run's final status in retrain_runs)
    version: str | None
    promoted: bool
    reason: str
    metrics: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(("challenger", "champion", "baseline")))
    durations: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STEPS, 0.0))
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Champion:
    runner: ModelRunner
    trained_until_ts: int
    selected_until_ts: int | None  # the last candle of the evaluation that promoted it (None: not recorded)


class _Job:
    """The steps of one run; each fills in `durations` so a failure still reports where time went."""

    def __init__(self, config: Config, symbol: str, timeframe: str, *, epochs: int | None, days: float | None,
                 promote: str, progress: ProgressCallback | None, should_stop: StopCheck | None,
                 until_ms: int | None = None) -> None:
        self.config, self.symbol, self.timeframe, self.promote_mode = config, symbol, timeframe, promote
        update: dict[str, Any] = {"epochs": epochs} if epochs else {}
        self.training = config.training.model_copy(update=update)
        self.days = float(days or config.training.days)
        self.model = config.model
        self.purge = config.model.seq_len + config.model.horizon
        self.progress, self.should_stop = progress, should_stop
        self.registry = Registry(config.models_dir)
        self.durations: dict[str, float] = dict.fromkeys(STEPS, 0.0)
        self.data_end_ts: int | None = None
        self.pointer_at_start: str | None = None  # the champion this job compares itself with
        self.until_ms = until_ms  # learn from candles up to this market time only (None: the newest)

    # -- data ----------------------------------------------------------------------------------------

    def load(self, candles: CandleTable) -> TrainingData:
        data = load_training_data(candles, self.config.store_exchange, self.symbol, self.timeframe, days=self.days,
                                  min_candles=self.training.min_candles, until_ms=self.until_ms)
        self.data_end_ts = data.info["last_ts"]
        return data

    def champion(self) -> _Champion | None:
        """The promoted model, if it loads and predicts the same thing (horizon) as this job's model."""
        version = self.pointer_at_start = self.registry.promoted(self.symbol, self.timeframe)
        if version is None:
            return None
        try:
            runner = ModelRunner.load(self.registry.version_dir(self.symbol, self.timeframe, version))
        except ModelRejected as exc:
            log.warning("Champion %s of %s is unusable (%s); the baseline is the bar", version, self.symbol, exc.reason)
            return None
        if runner.horizon != self.model.horizon:
            log.warning("Champion %s predicts %d candles ahead, the new model %d: compared with the baseline only",
                        version, runner.horizon, self.model.horizon)
            return None
        try:
            trained_until = int(runner.meta["data"]["trained_until_ts"])
        except (KeyError, TypeError, ValueError):
            log.warning("Champion %s does not record where its training data ends: compared with the baseline only",
                        version)
            return None
        selected = ((runner.meta.get("evaluation") or {}).get("evaluation") or {}).get("last_ts")
        return _Champion(runner, trained_until, int(selected) if isinstance(selected, int) else None)

    def eval_start(self, data: TrainingData, champion: _Champion | None) -> int:
        """Index of the first candle of the evaluation hold-out: the newest `eval_candles`, unseen by the champion
        and past the window that selected it (a challenger is never judged on the candles that chose the
        model it would replace)."""
        start = max(data.window_start, len(data.candles) - self.config.promotion.eval_candles)
        if champion is not None:
            purge = max(self.purge, champion.runner.seq_len + champion.runner.horizon)
            seen_until = max(champion.trained_until_ts, champion.selected_until_ts or champion.trained_until_ts)
            unseen_from = seen_until + (purge + 1) * data.step_ms
            start = max(start, int(np.searchsorted(data.candles["ts"], unseen_from)))
        return start

    def eval_ends(self, data: TrainingData, start: int, champion: _Champion | None) -> np.ndarray:
        seq_len = max(self.model.seq_len, champion.runner.seq_len if champion else 0)
        ends = ds.valid_ends(data.features, data.candles["ts"], data.step_ms, seq_len, self.model.horizon)
        return ends[ends - seq_len + 1 >= start]

    # -- training and export ---------------------------------------------------------------------------

    def split(self, data: TrainingData, eval_start: int) -> ds.Split:
        ends = ds.valid_ends(data.features, data.candles["ts"], data.step_ms, self.model.seq_len, self.model.horizon)
        ends = ends[ends - self.model.seq_len + 1 >= data.window_start]
        split = ds.split_samples(ends, seq_len=self.model.seq_len, horizon=self.model.horizon, before=eval_start,
                                 validation_fraction=self.training.validation_fraction, purge=self.purge)
        if len(split.train) < MIN_TRAIN_SAMPLES or len(split.validation) < MIN_VALIDATION_SAMPLES:
            raise DataError(f"only {len(split.train)} training and {len(split.validation)} validation samples left after "
                            f"warm-up, gaps, purge gaps and the {self.config.promotion.eval_candles}-candle evaluation "
                            f"hold-out; need {MIN_TRAIN_SAMPLES} and {MIN_VALIDATION_SAMPLES} (more training.days?)")
        return split

    def fit(self, data: TrainingData, split: ds.Split) -> tuple[ds.Normaliser, np.ndarray, TrainResult]:
        first_row = int(split.train[0]) - self.model.seq_len + 1
        normaliser = ds.Normaliser.fit(data.features[first_row:int(split.train[-1]) + 1])
        scaled = normaliser.apply(data.features)
        seq, horizon = self.model.seq_len, self.model.horizon
        log.info("Training model (%d epochs)", self.training.epochs)
        result = train_network(
            ds.windows(scaled, split.train, seq), ds.labels(data.close, split.train, horizon),
            ds.windows(scaled, split.validation, seq), ds.labels(data.close, split.validation, horizon),
            model=NetworkShape(self.model.hidden_size, self.model.num_layers, self.model.dropout),
            training=FitSettings(**self.training.model_dump(include=set(FitSettings.__dataclass_fields__))),
            progress=self.progress, should_stop=self.should_stop,
        )
        return normaliser, scaled, result

    def export(self, staging: Staging, result: TrainResult, scaled: np.ndarray,
               samples_from: np.ndarray) -> tuple[ParityReport, dict[str, Any]]:
        """model.onnx + parity.npz into the staging folder; returns the check and the meta.json parts about them."""
        onnx_bytes = export_onnx(result.network, self.model.seq_len, N_FEATURES)
        (staging.path / MODEL_FILE).write_bytes(onnx_bytes)
        picks = samples_from[np.linspace(0, len(samples_from) - 1, min(PARITY_SAMPLES, len(samples_from))).astype(int)]
        parity = check_parity(result.network, onnx_bytes, ds.windows(scaled, picks, self.model.seq_len),
                              self.config.promotion.parity_tolerance, save_to=staging.path)
        log.info("%s", parity.describe())
        return parity, {
            "onnx": {"file": MODEL_FILE, "sha256": sha256_bytes(onnx_bytes), "bytes": len(onnx_bytes),
                     "input": {"name": "x", "shape": ["batch", self.model.seq_len, N_FEATURES], "type": "float32"},
                     "output": {"name": "probability", "shape": ["batch"]},
                     "exporter": "torch.onnx.export(dynamo=True), its graph reused per shape"},
            "parity": {**parity.as_dict(), "file": PARITY_FILE},
        }

    # -- evaluation ------------------------------------------------------------------------------------

    def evaluate(self, data: TrainingData, ends: np.ndarray, challenger: ModelRunner, scaled: np.ndarray,
                 champion: _Champion | None, train_labels: np.ndarray) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(metrics for meta.json, each model's correct-per-sample flags for the paired tests): challenger,
        champion and the two baselines a model could really use, all on the same evaluation samples."""
        label = ds.labels(data.close, ends, self.model.horizon)
        future = ds.future_returns(data.close, ends, self.model.horizon)
        signals = self.config.signals

        def run(probability: np.ndarray) -> ev.Scores:
            return ev.score(probability, label, future, threshold=signals.confidence_threshold, fee_bps=signals.fee_bps)

        new = run(challenger.probabilities(data.candles, ends, scaled))
        correct = {"challenger": new.correct}
        majority = ev.majority_probability(train_labels, len(ends))
        persistence = ev.persistence_probability(data.close, ends, self.model.horizon)
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
            scaled_for_champion = champion.runner.normaliser.apply(data.features)
            old = run(champion.runner.probabilities(data.candles, ends, scaled_for_champion))
            correct["champion"] = old.correct
            vs_old = ev.mcnemar_exact(new.correct, old.correct)
            metrics["champion"] = {**old.as_dict(), "version": champion.runner.version, "mcnemar_p": vs_old["p_value"],
                                   "mcnemar": vs_old}
            reference = vs_old["p_value"]
        metrics["challenger"] = {**new.as_dict(), "mcnemar_p": reference}
        first, last = data.ts(int(ends[0]) - self.model.seq_len + 1), data.ts(int(ends[-1]) + self.model.horizon)
        metrics["evaluation"] = {"samples": int(len(ends)), "first_ts": first, "last_ts": last, "first": iso(first),
                                 "last": iso(last), "baselines": "majority of the training labels; persistence"}
        return metrics, correct


def _log_decision(symbol: str, metrics: dict[str, Any], promoted: bool, reason: str, version: str | None) -> None:
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


def run_training(config: Config, symbol: str, timeframe: str | None = None, *, epochs: int | None = None,
                 days: float | None = None, promote: str = "auto", trigger: str = "cli", reason: str = "",
                 requested_market_ts: int | None = None, progress: ProgressCallback | None = None,
                 should_stop: StopCheck | None = None, run_id: int | None = None,
                 until_ms: int | None = None) -> TrainOutcome:
    """Train, export, check, evaluate, register and (per `promote`: auto|always|never) promote a model.

    Raises DataError when the data cannot make a model (too few candles: nothing is registered) and
    TrainingAborted when `should_stop()` turned true. Every exception is recorded in `retrain_runs` as
    a failed run and re-raised without being logged here: the caller reports it once (the CLI as its
    one-line error, the daemon's trainer in its log). `run_id` names a `retrain_runs` row the caller
    already created (the daemon's queue claims one); without it the job starts its own row. `until_ms`
    trains on what was stored up to that market time (a backtest replaying the market).
    """
    timeframe = timeframe or config.market.timeframe
    if promote not in PROMOTE_MODES:
        raise UsageError(f"promote must be one of {', '.join(PROMOTE_MODES)}, not {promote!r}")
    if not config.db_path.exists():
        raise DataError(f"no candles stored yet ({config.db_path} does not exist): run `autoretrainctl download "
                        f"{symbol}` or `autoretrainctl import-csv` first")
    job = _Job(config, symbol, timeframe, epochs=epochs, days=days, promote=promote, progress=progress,
               should_stop=should_stop, until_ms=until_ms)
    with Database(config.db_path) as db:
        runs = db.runs
        if run_id is None:
            run_id = runs.start(config.store_exchange, symbol, timeframe, trigger=trigger, reason=reason,
                                requested_market_ts=requested_market_ts)
        try:
            outcome = _run(job, db.candles, runs, run_id)
        except BaseException as exc:
            message = str(exc) or type(exc).__name__
            # stopped on purpose (shutdown, Ctrl-C) is not a failed retrain: no cooldown follows it
            status = ABORTED if isinstance(exc, (TrainingAborted, KeyboardInterrupt)) else FAILED
            runs.finish(run_id, status, data_end_ts=job.data_end_ts, detail={"error": message, "durations": job.durations})
            raise
        runs.finish(run_id, outcome.status, version=outcome.version, data_end_ts=job.data_end_ts,
                    detail={"promoted": outcome.promoted, "reason": outcome.reason, "metrics": outcome.metrics,
                            "durations": outcome.durations, "training": outcome.training})
    return outcome


def _run(job: _Job, store: CandleTable, runs: RetrainRuns, run_id: int) -> TrainOutcome:
    clock = time.perf_counter()
    config, symbol = job.config, job.symbol

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        job.durations[name] = round(job.durations[name] + now - clock, 3)
        clock = now

    data = job.load(store)
    champion = job.champion()
    eval_start = job.eval_start(data, champion)
    eval_ends = job.eval_ends(data, eval_start, champion)
    minimum = config.promotion.min_eval_samples
    outcome = TrainOutcome(run_id, symbol, job.timeframe, REJECTED, None, False, "", data=data.info)
    if champion is not None and len(eval_ends) < minimum:
        chosen = f", it was chosen on candles up to {iso(champion.selected_until_ts)}" if champion.selected_until_ts else ""
        why = (f"only {len(eval_ends)} evaluation samples on candles unseen by champion {champion.runner.version} "
               f"(its training data ends {iso(champion.trained_until_ts)}{chosen}); need {minimum} "
               "(promotion.min_eval_samples)")
        if job.promote_mode == "auto":
            lap("data")
            outcome.reason, outcome.durations = why, job.durations
            log.info("Keeping existing model for %s: %s", symbol, why)
            return outcome
        log.warning("%s: compared with the baseline only", why)
        champion = None
        eval_start = job.eval_start(data, None)
        eval_ends = job.eval_ends(data, eval_start, None)
    if len(eval_ends) < minimum:
        raise DataError(f"only {len(eval_ends)} evaluation samples in the newest {config.promotion.eval_candles} candles "
                        f"(gaps?); need {minimum} (promotion.min_eval_samples)")
    split = job.split(data, eval_start)
    lap("data")

    normaliser, scaled, result = job.fit(data, split)
    lap("train")
    outcome.training = {
        "epochs": job.training.epochs, "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early, "validation_accuracy": result.best_val_accuracy, "device": result.device,
        "train_samples": int(len(split.train)), "validation_samples": int(len(split.validation)),
    }
    meta = base_meta(symbol=symbol, timeframe=job.timeframe, exchange=config.store_exchange, model=job.model,
                     training=job.training, purge=job.purge, data=data, split=split, normaliser=normaliser,
                     result=result, summary=outcome.training)

    with job.registry.stage(symbol, job.timeframe) as staging:
        parity, exported = job.export(staging, result, scaled, np.concatenate([split.validation, eval_ends]))
        meta.update(exported)
        lap("export")
        if not parity.ok:
            return _rejected(outcome, job, parity.describe())
        staging.write_meta({**meta, "version": "candidate"})
        try:
            challenger = ModelRunner.load(staging.path)
        except ModelRejected as exc:
            return _rejected(outcome, job, f"exported model refused at load: {exc.reason}")
        metrics, correct = job.evaluate(data, eval_ends, challenger, scaled, champion,
                                        ds.labels(data.close, split.train, job.model.horizon))
        attempt = 1 + (runs.tries_against(config.store_exchange, symbol, job.timeframe, champion.runner.version)
                       if champion is not None else 0)
        decision = ev.decide(
            {**metrics["challenger"], "correct": correct["challenger"]},
            {**metrics["champion"], "correct": correct["champion"]} if champion is not None else None,
            {name: {**baseline, "correct": correct[name]} for name, baseline in metrics["baselines"].items()},
            mode=job.promote_mode,  # type: ignore[arg-type]
            rule=config.promotion.rule, min_improvement=config.promotion.min_improvement,
            require_significance=config.promotion.require_significance,
            significance_level=config.promotion.significance_level, attempt=attempt)
        pointer_now = job.registry.promoted(symbol, job.timeframe) if decision.promote else None
        if decision.promote and pointer_now != job.pointer_at_start:
            decision = _champion_moved(decision, job, pointer_now)
        meta["evaluation"] = metrics
        meta["decision"] = {"mode": job.promote_mode, **decision.as_dict()}
        version = staging.commit(meta)
    if decision.promote:
        try:
            job.registry.promote(symbol, job.timeframe, version, expected=job.pointer_at_start)
        except ChampionChanged as exc:
            decision = _champion_moved(decision, job, exc.current)
    removed = job.registry.prune(symbol, job.timeframe, config.promotion.keep_candidates)
    if removed:
        log.info("Retention removed %s of %s %s", ", ".join(removed), symbol, job.timeframe)
    lap("evaluate")
    _log_decision(symbol, metrics, decision.promote, decision.reason, version)
    outcome.status = PROMOTED if decision.promote else REJECTED
    outcome.version, outcome.promoted, outcome.reason = version, decision.promote, decision.reason
    outcome.metrics, outcome.durations = metrics, job.durations
    return outcome


def _champion_moved(decision: ev.Decision, job: _Job, current: str | None) -> ev.Decision:
    """A promotion or rollback happened while this job trained: it was compared with another champion."""
    reason = (f"not promoted: the promoted model changed from {job.pointer_at_start or 'none'} to "
              f"{current or 'none'} during training, so this comparison no longer holds ({decision.reason})")
    log.warning("%s %s: %s", job.symbol, job.timeframe, reason)
    return dataclasses.replace(decision, promote=False, reason=reason)


def _rejected(outcome: TrainOutcome, job: _Job, reason: str) -> TrainOutcome:
    log.warning("Candidate for %s rejected: %s", job.symbol, reason)
    outcome.reason, outcome.durations = reason, job.durations
    return outcome
