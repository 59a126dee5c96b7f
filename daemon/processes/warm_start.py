"""The candidates of one retrain: a full retrain, and the champion fine-tuned on the newest candles.

A full retrain starts from a seeded initialisation and learns the whole `training.days` window; a warm
start begins from the champion's saved weights (`weights.npz` beside its model.onnx) and its own
feature scaling, and fine-tunes for at most `training.warm_start_epochs` on the newest
`training.warm_start_candles` training samples, stopping early on the same validation samples. After
a regime change the warm start can adapt faster; in a stable market it keeps what the champion knew.
Both are scored on the same evaluation window (`retrain_evaluation`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.processes.retrain_data import TrainingData
from autoretrain.models import dataset as ds
from autoretrain.models.runtime import ModelRunner
from autoretrain.models.training import (
    WEIGHTS_FILE,
    FitSettings,
    NetworkShape,
    ProgressCallback,
    StopCheck,
    TrainResult,
    load_weights,
    train_network,
)

log = logging.getLogger("autoretrain.model")
FULL, WARM = "full", "warm_start"


@dataclass
class Candidate:
    """A trained network and what it learnt from, before export."""

    kind: str  # full | warm_start
    normaliser: ds.Normaliser
    scaled: np.ndarray  # the features scaled by `normaliser`
    result: TrainResult
    split: ds.Split  # the samples it trained and stopped early on
    warm_from: str | None = None  # the champion version it was fine-tuned from

    def summary(self, training_epochs: int) -> dict[str, Any]:
        result = self.result
        return {"kind": self.kind, "warm_start_from": self.warm_from, "epochs": training_epochs,
                "epochs_run": result.epochs_run, "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
                "validation_accuracy": result.best_val_accuracy, "device": result.device,
                "train_samples": int(len(self.split.train)), "validation_samples": int(len(self.split.validation))}


def fit_settings(config: Config, **update: Any) -> FitSettings:
    fields = config.training.model_dump(include=set(FitSettings.__dataclass_fields__))
    return FitSettings(**{**fields, **update})


def network_shape(config: Config) -> NetworkShape:
    return NetworkShape(config.model.hidden_size, config.model.num_layers, config.model.dropout)


def champion_weights(config: Config, champion: ModelRunner) -> tuple[dict[str, np.ndarray] | None, str]:
    """(the champion's weights, "") when it can be fine-tuned into this configuration's network, else (None, why not)."""
    version, meta = champion.version, champion.meta
    entry = meta.get("weights")
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        return None, f"champion {version} has no saved weights (made before warm starts)"
    shape = {key: (meta.get("hyperparameters") or {}).get(key) for key in ("hidden_size", "num_layers")}
    wanted = {"hidden_size": config.model.hidden_size, "num_layers": config.model.num_layers}
    if shape != wanted or champion.seq_len != config.model.seq_len:
        return None, (f"champion {version} has another network ({shape}, seq_len {champion.seq_len}) than the "
                      f"configuration ({wanted}, seq_len {config.model.seq_len})")
    try:
        data = (champion.version_dir / WEIGHTS_FILE).read_bytes()
    except OSError as exc:
        return None, f"cannot read champion {version}'s {WEIGHTS_FILE}: {exc.strerror or exc}"
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        return None, f"champion {version}'s {WEIGHTS_FILE} does not match its meta.json (corrupt?)"
    try:
        return load_weights(data), ""
    except ValueError as exc:
        return None, f"champion {version}'s {WEIGHTS_FILE}: {exc}"


def fine_tune(config: Config, data: TrainingData, split: ds.Split, champion: ModelRunner,
              weights: dict[str, np.ndarray], *, progress: ProgressCallback | None,
              should_stop: StopCheck | None) -> Candidate:
    """The champion, trained further on the newest training samples with its own feature scaling."""
    training, seq, horizon = config.training, config.model.seq_len, config.model.horizon
    recent = ds.Split(split.train[-training.warm_start_candles:], split.validation, split.purge)
    scaled = champion.normaliser.apply(data.features)
    epochs = training.warm_start_epochs
    log.info("Fine-tuning champion %s on the newest %d training samples (%d epochs)", champion.version,
             len(recent.train), epochs)
    result = train_network(
        ds.windows(scaled, recent.train, seq), ds.labels(data.close, recent.train, horizon),
        ds.windows(scaled, recent.validation, seq), ds.labels(data.close, recent.validation, horizon),
        model=network_shape(config), training=fit_settings(config, epochs=epochs, patience=min(training.patience, epochs)),
        progress=progress, should_stop=should_stop, start_from=weights)
    return Candidate(WARM, champion.normaliser, scaled, result, recent, warm_from=champion.version)
