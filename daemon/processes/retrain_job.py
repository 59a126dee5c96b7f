"""One retrain job, start to finish: the guide's `scripts/train_model.py`, grown up.

Stored candles (the last `training.days` days up to the newest one, market time) -> features ->
time-ordered train | purge | validation | purge | evaluation split -> LSTM training with early
stopping -> ONNX export and parity check -> challenger, champion and majority baseline scored on the
same newest candles that neither model trained on -> registered version -> promotion by the rule ->
the run recorded in `retrain_runs`. `autoretrainctl train` and the daemon's trainer both call
`run_training`; the trainer niced itself before (this module never touches priorities).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import DataError, UsageError
from autoretrain.daemon.foundation.timeframes import iso
from autoretrain.daemon.processes.retrain_data import TrainingData, base_meta, load_training_data
from autoretrain.daemon.processes.retrain_evaluation import evaluate, log_decision
from autoretrain.daemon.processes.warm_start import FULL, Candidate, champion_weights, fine_tune, fit_settings, network_shape
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
from autoretrain.models.training import WEIGHTS_FILE, ProgressCallback, StopCheck, save_weights, train_network

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

    def fit(self, data: TrainingData, split: ds.Split) -> Candidate:
        first_row = int(split.train[0]) - self.model.seq_len + 1
        normaliser = ds.Normaliser.fit(data.features[first_row:int(split.train[-1]) + 1])
        scaled = normaliser.apply(data.features)
        seq, horizon = self.model.seq_len, self.model.horizon
        log.info("Training model (%d epochs)", self.training.epochs)
        result = train_network(
            ds.windows(scaled, split.train, seq), ds.labels(data.close, split.train, horizon),
            ds.windows(scaled, split.validation, seq), ds.labels(data.close, split.validation, horizon),
            model=network_shape(self.config), training=fit_settings(self.config, epochs=self.training.epochs),
            progress=self.progress, should_stop=self.should_stop,
        )
        return Candidate(FULL, normaliser, scaled, result, split)

    def warm_start(self, data: TrainingData, split: ds.Split, champion: _Champion | None) -> Candidate | None:
        """The champion fine-tuned on the newest candles, when `training.warm_start` and the champion allow it."""
        if not self.training.warm_start or champion is None:
            return None
        weights, why_not = champion_weights(self.config, champion.runner)
        if weights is None:
            log.info("No warm start: %s", why_not)
            return None
        return fine_tune(self.config, data, split, champion.runner, weights, progress=self.progress,
                         should_stop=self.should_stop)

    def export(self, staging: Staging, candidate: Candidate,
               samples_from: np.ndarray) -> tuple[ParityReport, dict[str, Any]]:
        """model.onnx, parity.npz and weights.npz into the staging folder; returns the check and the meta.json
        parts about them."""
        network = candidate.result.network
        onnx_bytes = export_onnx(network, self.model.seq_len, N_FEATURES)
        (staging.path / MODEL_FILE).write_bytes(onnx_bytes)
        save_weights(network, staging.path / WEIGHTS_FILE)
        picks = samples_from[np.linspace(0, len(samples_from) - 1, min(PARITY_SAMPLES, len(samples_from))).astype(int)]
        parity = check_parity(network, onnx_bytes, ds.windows(candidate.scaled, picks, self.model.seq_len),
                              self.config.promotion.parity_tolerance, save_to=staging.path)
        log.info("%s", parity.describe())
        return parity, {
            "onnx": {"file": MODEL_FILE, "sha256": sha256_bytes(onnx_bytes), "bytes": len(onnx_bytes),
                     "input": {"name": "x", "shape": ["batch", self.model.seq_len, N_FEATURES], "type": "float32"},
                     "output": {"name": "probability", "shape": ["batch"]},
                     "exporter": "torch.onnx.export(dynamo=True), its graph reused per shape"},
            "parity": {**parity.as_dict(), "file": PARITY_FILE},
            "weights": {"file": WEIGHTS_FILE, "sha256": sha256_bytes((staging.path / WEIGHTS_FILE).read_bytes()),
                        "format": "numpy .npz of the torch state dict (for warm starts)"},
        }


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

    candidates = [job.fit(data, split)]
    warm = job.warm_start(data, split, champion)
    if warm is not None:
        candidates.append(warm)
    lap("train")
    outcome.training = candidates[0].summary(job.training.epochs)
    train_labels = ds.labels(data.close, split.train, job.model.horizon)
    with contextlib.ExitStack() as stack:
        staged: dict[str, tuple[Staging, Candidate, dict[str, Any], ModelRunner]] = {}
        problems: list[str] = []
        for candidate in candidates:
            label = f"{candidate.kind.replace('_', ' ')} candidate: " if len(candidates) > 1 else ""
            staging = stack.enter_context(job.registry.stage(symbol, job.timeframe))
            meta = base_meta(symbol=symbol, timeframe=job.timeframe, exchange=config.store_exchange, model=job.model,
                             training=job.training, purge=job.purge, data=data, split=candidate.split,
                             normaliser=candidate.normaliser, result=candidate.result,
                             summary=candidate.summary(job.training.epochs if candidate.kind == FULL
                                                       else job.training.warm_start_epochs))
            parity, exported = job.export(staging, candidate, np.concatenate([split.validation, eval_ends]))
            meta.update(exported)
            if not parity.ok:
                problems.append(f"{label}{parity.describe()}")
                continue
            staging.write_meta({**meta, "version": "candidate"})
            try:
                staged[candidate.kind] = (staging, candidate, meta, ModelRunner.load(staging.path))
            except ModelRejected as exc:
                problems.append(f"{label}exported model refused at load: {exc.reason}")
        lap("export")
        if not staged:
            return _rejected(outcome, job, "; ".join(problems))
        metrics, correct = evaluate(config, data, eval_ends,
                                    {kind: (runner, candidate.scaled) for kind, (_, candidate, _, runner) in staged.items()},
                                    champion.runner if champion is not None else None, train_labels)
        staging, _, meta, _ = staged[metrics["chosen"]]
        if problems:
            metrics["refused_candidates"] = problems
        outcome.training = {key: value for key, value in meta["training"].items() if key != "history"}
        attempt = 1 + (runs.tries_against(config.store_exchange, symbol, job.timeframe, champion.runner.version)
                       if champion is not None else 0)
        decision = ev.decide(
            {**metrics["challenger"], "correct": correct["challenger"]},
            {**metrics["champion"], "correct": correct["champion"]} if champion is not None else None,
            {name: {**baseline, "correct": correct[name]} for name, baseline in metrics["baselines"].items()},
            mode=job.promote_mode,  # type: ignore[arg-type]
            rule=config.promotion.rule, min_improvement=config.promotion.min_improvement,
            require_significance=config.promotion.require_significance,
            significance_level=config.promotion.significance_level, attempt=attempt, candidates=len(staged))
        pointer_now = job.registry.promoted(symbol, job.timeframe) if decision.promote else None
        if decision.promote and pointer_now != job.pointer_at_start:
            decision = _champion_moved(decision, job, pointer_now)
        meta["evaluation"] = metrics
        meta["decision"] = {"mode": job.promote_mode, "candidates": sorted(staged), **decision.as_dict()}
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
    log_decision(symbol, metrics, decision.promote, decision.reason, version)
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
