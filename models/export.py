"""Exporting a trained network to ONNX and proving that onnxruntime computes what torch computes.

The torch.export-based exporter (`dynamo=True`) turns each `nn.LSTM` layer into one native ONNX
`LSTM` node and keeps the batch dimension symbolic, so inference can score one window or a thousand
with the same file. The parity check runs the exported bytes in onnxruntime on real input windows and
compares them with torch: max abs difference within the tolerance and identical up/down decisions,
or the candidate is rejected. The windows and torch's probabilities are stored beside the model so
every later load repeats the check (`models.runtime`).
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from autoretrain.models.lstm import DirectionLSTM, ProbabilityModel
from autoretrain.models.runtime import (
    INPUT_NAME,
    OUTPUT_NAME,
    PARITY_FILE,
    make_session,
    parity_gap,
    parity_ok,
    parity_verdict,
)

_NOISY_LOGGERS = ("torch.onnx", "torch._dynamo", "torch.export", "torch.fx", "onnxscript", "onnx_ir")


@dataclass(frozen=True)
class ParityReport:
    samples: int
    max_abs_diff: float
    decisions_match: bool
    tolerance: float

    @property
    def ok(self) -> bool:
        return parity_ok(self.max_abs_diff, self.decisions_match, self.tolerance)

    def describe(self) -> str:
        return parity_verdict(self.samples, self.max_abs_diff, self.decisions_match, self.tolerance)

    def as_dict(self) -> dict[str, object]:
        return {"samples": self.samples, "max_abs_diff": self.max_abs_diff, "decisions_match": self.decisions_match,
                "tolerance": self.tolerance, "ok": self.ok}


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter warns about things that do not concern us (torchvision ops, deprecated internals)."""
    levels = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    try:
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _export_graph(network: DirectionLSTM, seq_len: int, n_features: int) -> bytes:
    """The torch.export-based exporter on `network` (seconds: it traces the LSTM step by step)."""
    model = ProbabilityModel(network.cpu()).eval()
    example = torch.zeros(2, seq_len, n_features)
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            model, (example,), None, dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, verbose=False,
        )
        assert program is not None  # dynamo=True always returns the program
        buffer = io.BytesIO()
        program.save(buffer)  # type: ignore[arg-type]  # torch's stub says path; a file object works and is tested
    return buffer.getvalue()


def _onnx_gates(weights: np.ndarray) -> np.ndarray:
    """torch's LSTM gate blocks (input, forget, cell, output) in ONNX's order (input, output, forget, cell)."""
    i, f, g, o = np.split(weights, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def _with_weights(template: bytes, network: DirectionLSTM) -> bytes:
    """`template` (a graph exported for a network of the same shape) holding `network`'s weights instead.

    The graph of a model depends only on its shape; its weights are the LSTM nodes' W, R and B inputs (one
    node per layer, ONNX gate order) and the head's. The parity check that follows every export compares
    the result with torch on real windows, so a wrong mapping can never reach the registry."""
    model = onnx.load_from_string(template)
    state = {name: value.detach().cpu().numpy().astype(np.float32) for name, value in network.state_dict().items()}
    values: dict[str, np.ndarray] = {"network.head.weight": state["head.weight"], "network.head.bias": state["head.bias"]}
    lstm_nodes = [node for node in model.graph.node if node.op_type == "LSTM"]
    if len(lstm_nodes) != network.lstm.num_layers:
        raise ValueError(f"template has {len(lstm_nodes)} LSTM nodes for {network.lstm.num_layers} layers")
    for layer, node in enumerate(lstm_nodes):
        values[node.input[1]] = _onnx_gates(state[f"lstm.weight_ih_l{layer}"])[None]
        values[node.input[2]] = _onnx_gates(state[f"lstm.weight_hh_l{layer}"])[None]
        values[node.input[3]] = np.concatenate([_onnx_gates(state[f"lstm.bias_ih_l{layer}"]),
                                                _onnx_gates(state[f"lstm.bias_hh_l{layer}"])])[None]
    replaced = 0
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name in values:
            if tuple(tensor.dims) != values[tensor.name].shape:
                raise ValueError(f"{tensor.name}: template {tuple(tensor.dims)}, weights {values[tensor.name].shape}")
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(values[tensor.name], tensor.name))
            replaced += 1
    if replaced != len(values):
        raise ValueError(f"replaced {replaced} of {len(values)} weight tensors in the template")
    return model.SerializeToString()


_TEMPLATES: dict[tuple[int, int, int, int], bytes] = {}


def export_onnx(network: DirectionLSTM, seq_len: int, n_features: int) -> bytes:
    """The ONNX bytes of `network` followed by a sigmoid, input `x` (batch, seq_len, n_features).

    The first network of each shape goes through the exporter; later ones reuse its graph with their own
    weights (milliseconds instead of seconds: what every retrain after the first in a process pays)."""
    key = (seq_len, n_features, network.lstm.hidden_size, network.lstm.num_layers)
    template = _TEMPLATES.get(key)
    if template is None:
        template = _TEMPLATES[key] = _export_graph(network, seq_len, n_features)
        return template
    return _with_weights(template, network)


def torch_probabilities(network: DirectionLSTM, x: np.ndarray) -> np.ndarray:
    """What the exported graph should compute, from torch itself."""
    model = ProbabilityModel(network.cpu()).eval()
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy().astype(np.float32)


def check_parity(network: DirectionLSTM, onnx_bytes: bytes, samples: np.ndarray, tolerance: float,
                 save_to: Path | None = None) -> ParityReport:
    """Compare onnxruntime with torch on `samples`; store the samples in `save_to` for later loads."""
    expected = torch_probabilities(network, samples)
    session = make_session(onnx_bytes, threads=1)
    actual = session.run(None, {INPUT_NAME: np.ascontiguousarray(samples, dtype=np.float32)})[0].reshape(-1)
    gap, same = parity_gap(actual, expected)
    if save_to is not None:
        with open(save_to / PARITY_FILE, "wb") as handle:
            np.savez(handle, x=samples.astype(np.float32), probability=expected)
    return ParityReport(len(samples), gap, same, tolerance)
