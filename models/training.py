"""Fitting the LSTM (torch): seeded, bounded threads, early stopping on validation accuracy.

Only the trainer imports this module. It reports every epoch through `progress` and the guide's log
line `Epoch 12/50 | Val Accuracy: 54.1%`, checks `should_stop` between batches so the daemon can
abort a job promptly, and returns the weights of the best validation epoch.
"""

from __future__ import annotations

import copy
import io
import logging
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autoretrain.models.errors import DeviceUnavailable, TrainingAborted
from autoretrain.models.evaluation import pct
from autoretrain.models.lstm import DirectionLSTM

log = logging.getLogger("autoretrain.model")
ProgressCallback = Callable[[int, int, float], None]
StopCheck = Callable[[], bool]
_EVAL_CHUNK = 4096


@dataclass(frozen=True)
class NetworkShape:
    """The LSTM's size (the daemon fills it from `model.*`)."""

    hidden_size: int
    num_layers: int = 1
    dropout: float = 0.0


@dataclass(frozen=True)
class FitSettings:
    """How to fit (the daemon fills it from `training.*`)."""

    epochs: int
    patience: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    threads: int
    seed: int
    device: str  # auto | cpu | cuda


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float


@dataclass
class TrainResult:
    network: DirectionLSTM
    best_epoch: int
    best_val_accuracy: float
    epochs_run: int
    stopped_early: bool
    device: str
    history: list[EpochStats] = field(default_factory=list)


def pick_device(setting: str) -> torch.device:
    """`auto` takes CUDA when torch sees a GPU; asking for `cuda` without one is an error, not a fallback."""
    available = torch.cuda.is_available()
    if setting == "cuda" and not available:
        raise DeviceUnavailable("training.device is cuda but torch sees no CUDA device")
    return torch.device("cuda" if setting in ("auto", "cuda") and available else "cpu")


def _evaluate(network: DirectionLSTM, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module) -> tuple[float, float]:
    """(mean loss, accuracy) of the network on a whole split, in chunks."""
    network.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), _EVAL_CHUNK):
            logits = network(x[start:start + _EVAL_CHUNK])
            target = y[start:start + _EVAL_CHUNK]
            total_loss += float(loss_fn(logits, target)) * len(target)
            correct += int(((logits > 0).float() == target).sum())
    return total_loss / len(x), correct / len(x)


WEIGHTS_FILE = "weights.npz"


def save_weights(network: DirectionLSTM, path: Path) -> None:
    """The network's weights as a .npz of its state dict: what a later warm start begins from."""
    with open(path, "wb") as handle:
        np.savez(handle, **{name: value.detach().cpu().numpy() for name, value in network.state_dict().items()})


def load_weights(data: bytes) -> dict[str, np.ndarray]:
    """The state dict `save_weights` wrote; raises ValueError for anything else."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"not a weights file: {exc}") from None


def train_network(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, *,
                  model: NetworkShape, training: FitSettings, progress: ProgressCallback | None = None,
                  should_stop: StopCheck | None = None,
                  start_from: Mapping[str, np.ndarray] | None = None) -> TrainResult:
    """Train from a seeded initialisation, or fine-tune from `start_from` (a warm start: the champion's
    weights); keep the epoch with the best validation accuracy."""
    torch.set_num_threads(training.threads)
    torch.manual_seed(training.seed)
    device = pick_device(training.device)
    network = DirectionLSTM(x_train.shape[2], model.hidden_size, model.num_layers, model.dropout)
    if start_from is not None:
        try:
            network.load_state_dict({name: torch.from_numpy(np.asarray(value)) for name, value in start_from.items()})
        except (RuntimeError, KeyError) as exc:  # another shape: a warm start needs the same network
            raise ValueError(f"the weights do not fit this network: {str(exc).splitlines()[0]}") from None
    network = network.to(device)
    optimiser = torch.optim.Adam(network.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    xt, yt = torch.from_numpy(x_train).to(device), torch.from_numpy(y_train).to(device)
    xv, yv = torch.from_numpy(x_val).to(device), torch.from_numpy(y_val).to(device)
    shuffle = torch.Generator().manual_seed(training.seed)

    best_state = copy.deepcopy(network.state_dict())
    best_accuracy, best_loss, best_epoch, since_best = -1.0, float("inf"), 0, 0
    history: list[EpochStats] = []
    epochs = training.epochs
    for epoch in range(1, epochs + 1):
        network.train()
        order = torch.randperm(len(xt), generator=shuffle).to(device)
        running = 0.0
        for start in range(0, len(order), training.batch_size):
            if should_stop is not None and should_stop():
                raise TrainingAborted(f"training stopped on request at epoch {epoch}/{epochs}")
            batch = order[start:start + training.batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(network(xt[batch]), yt[batch])
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimiser.step()
            running += loss.item() * len(batch)
        val_loss, val_accuracy = _evaluate(network, xv, yv, loss_fn)
        history.append(EpochStats(epoch, running / len(xt), val_loss, val_accuracy))
        log.info("Epoch %d/%d | Val Accuracy: %s", epoch, epochs, pct(val_accuracy))
        if progress is not None:
            progress(epoch, epochs, val_accuracy)
        if val_accuracy > best_accuracy or (val_accuracy == best_accuracy and val_loss < best_loss):
            best_state = copy.deepcopy(network.state_dict())
            best_accuracy, best_loss, best_epoch, since_best = val_accuracy, val_loss, epoch, 0
        else:
            since_best += 1
            if since_best >= training.patience:
                log.info("Early stopping after epoch %d: no better validation accuracy for %d epochs "
                         "(best %s at epoch %d)",
                         epoch, training.patience, pct(best_accuracy), best_epoch)
                break
    network.load_state_dict(best_state)
    network = network.cpu().eval()
    return TrainResult(network, best_epoch, best_accuracy, len(history), len(history) < epochs, device.type, history)

