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
import torch

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


def export_onnx(network: DirectionLSTM, seq_len: int, n_features: int) -> bytes:
    """The ONNX bytes of `network` followed by a sigmoid, input `x` (batch, seq_len, n_features)."""
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
