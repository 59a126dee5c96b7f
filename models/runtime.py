"""The inference side of a model version: onnxruntime only, never torch.

`ModelRunner.load` refuses a version folder unless everything checks out: meta.json readable and made
for this feature set, the ONNX bytes matching the sha256 recorded at registration, the graph's input
and output what the features produce, finite weights, the stored parity samples reproducing the
probabilities torch computed when the model was exported, and finite outputs. Anything else raises
`ModelRejected` with a one-line reason, so the caller keeps the model it has.

The session runs on 1 intra-op thread by default and does not spin: inference shares the machine
with the trainer and the store, and waits between candles rather than burning a core.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from autoretrain.models.dataset import Normaliser, windows
from autoretrain.models.errors import ModelRejected
from autoretrain.models.features import FEATURE_NAMES, FEATURE_SET_VERSION, N_FEATURES, WARMUP_CANDLES, compute_features

MODEL_FILE = "model.onnx"
META_FILE = "meta.json"
PARITY_FILE = "parity.npz"
INPUT_NAME = "x"
OUTPUT_NAME = "probability"
_BATCH = 1024


class NotEnoughHistory(ValueError):
    """`predict` got too few, non-contiguous or non-finite candles to form the model's input window."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_session(model: bytes | str | Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session with `threads` intra-op threads and no spin-waiting.

    The CPU memory arena and memory-pattern planning are off: for this small model they cost about
    1.6 MB per session (one session per symbol) and made batch-1 runs slower, not faster.
    """
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


def parity_gap(actual: np.ndarray, expected: np.ndarray) -> tuple[float, bool]:
    """(max |actual - expected|, whether every up/down decision is the same)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape or not np.isfinite(actual).all():
        return float("inf"), False
    return float(np.max(np.abs(actual - expected), initial=0.0)), bool(np.array_equal(actual > 0.5, expected > 0.5))


def parity_ok(gap: float, same_decisions: bool, tolerance: float) -> bool:
    """The parity rule, at export and at every load: close enough, and not one decision different."""
    return same_decisions and gap <= tolerance


def parity_verdict(samples: int, gap: float, same_decisions: bool, tolerance: float) -> str:
    """The one-line result of a parity check, as logged at export and given as the reason of a refusal."""
    ok = parity_ok(gap, same_decisions, tolerance)
    return (f"parity check {'passed' if ok else 'failed'} on {samples} samples: max |onnxruntime - torch| = "
            f"{gap:.2e} (tolerance {tolerance:.0e}), decisions {'identical' if same_decisions else 'differ'}")


def _read_meta(version_dir: Path) -> dict[str, Any]:
    try:
        meta = json.loads((version_dir / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelRejected(f"{version_dir}: no {META_FILE}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelRejected(f"{version_dir / META_FILE}: unreadable: {exc}") from None
    if not isinstance(meta, dict):
        raise ModelRejected(f"{version_dir / META_FILE}: not a JSON object")
    return meta


def _check_weights(model_bytes: bytes) -> None:
    """Refuse non-finite weights by name: onnxruntime's LSTM clamps NaN gates, so outputs may still look finite."""
    try:
        graph = onnx.load_from_string(model_bytes).graph
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError types
        raise ModelRejected(f"{MODEL_FILE} is not a readable ONNX model: {exc}") from None
    for tensor in graph.initializer:
        values = numpy_helper.to_array(tensor)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise ModelRejected(f"weight {tensor.name} {list(values.shape)} holds non-finite values (NaN weights?)")


def _check_schema(session: ort.InferenceSession, seq_len: int) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelRejected(f"expected 1 input and 1 output, the graph has {len(inputs)} and {len(outputs)}")
    spec = inputs[0]
    dims = list(spec.shape)
    if spec.type != "tensor(float)" or len(dims) != 3 or dims[1:] != [seq_len, N_FEATURES] or isinstance(dims[0], int):
        raise ModelRejected(f"input {spec.name} is {spec.type} {dims}; "
                            f"expected tensor(float) [batch, {seq_len}, {N_FEATURES}]")


class ModelRunner:
    """A verified model version, ready to turn recent candles into P(close[t+horizon] > close[t])."""

    def __init__(self, version_dir: Path, meta: dict[str, Any], session: ort.InferenceSession,
                 normaliser: Normaliser) -> None:
        self.version_dir = version_dir
        self.meta = meta
        self.session = session
        self.normaliser = normaliser
        self.version: str = str(meta.get("version") or version_dir.name)
        self.seq_len: int = int(meta["seq_len"])
        self.horizon: int = int(meta["horizon"])
        self.step_ms: int | None = int(meta["step_ms"]) if meta.get("step_ms") else None
        self.required_candles: int = self.seq_len + WARMUP_CANDLES
        self.input_name: str = session.get_inputs()[0].name
        data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
        trained_until = data.get("trained_until_ts") if isinstance(data, dict) else None
        #: the last candle whose label its training or early stopping saw: it never predicts up to there
        self.trained_until_ts: int | None = int(trained_until) if isinstance(trained_until, int) else None

    @classmethod
    def load(cls, version_dir: str | Path, threads: int = 1) -> ModelRunner:
        """Verify and open a version folder; raises ModelRejected(reason) on any problem."""
        version_dir = Path(version_dir)
        meta = _read_meta(version_dir)
        try:
            names = tuple(meta.get("feature_names", ()))
            if meta.get("feature_set_version") != FEATURE_SET_VERSION or names != FEATURE_NAMES:
                raise ModelRejected(f"made for feature set {meta.get('feature_set_version')!r}, this code computes "
                                    f"{FEATURE_SET_VERSION!r}")
            seq_len = int(meta["seq_len"])
            int(meta["horizon"])
            normaliser = Normaliser.from_dict(meta["normaliser"], N_FEATURES)
            expected_sha = str(meta["onnx"]["sha256"])
            tolerance = float(meta["parity"]["tolerance"])
        except ModelRejected:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelRejected(f"{version_dir / META_FILE}: incomplete or invalid ({type(exc).__name__}: {exc})") from None
        try:
            model_bytes = (version_dir / MODEL_FILE).read_bytes()
        except OSError as exc:
            raise ModelRejected(f"cannot read {version_dir / MODEL_FILE}: {exc.strerror or exc}") from None
        actual_sha = sha256_bytes(model_bytes)
        if actual_sha != expected_sha:
            raise ModelRejected(f"{MODEL_FILE} sha256 {actual_sha[:12]}… does not match meta.json {expected_sha[:12]}…"
                                " (corrupt or truncated file)")
        _check_weights(model_bytes)
        try:
            session = make_session(model_bytes, threads)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types for a bad graph
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelRejected(f"onnxruntime cannot load {MODEL_FILE}: {detail}") from None
        _check_schema(session, seq_len)
        runner = cls(version_dir, meta, session, normaliser)
        runner._check_parity(tolerance)
        runner.predict_windows(np.zeros((1, seq_len, N_FEATURES), dtype=np.float32))  # warm-up
        return runner

    def _check_parity(self, tolerance: float) -> None:
        try:
            with np.load(self.version_dir / PARITY_FILE, allow_pickle=False) as stored:
                inputs, expected = stored["x"], stored["probability"]
        except (OSError, KeyError, ValueError) as exc:
            raise ModelRejected(f"parity samples unreadable: {exc}") from None
        if inputs.ndim != 3 or inputs.shape[1:] != (self.seq_len, N_FEATURES) or not 0 < len(inputs) == len(expected):
            raise ModelRejected(f"parity samples have shape {inputs.shape}, expected (n, {self.seq_len}, {N_FEATURES})")
        try:
            actual = self._run(inputs.astype(np.float32))
        except Exception as exc:  # noqa: BLE001 - a graph that loads but cannot run is refused, whatever the error
            raise ModelRejected(f"model fails on its parity samples: {str(exc).splitlines()[0]}") from None
        if not np.isfinite(actual).all():
            raise ModelRejected("model outputs non-finite probabilities (NaN weights?)")
        gap, same_decisions = parity_gap(actual, expected)
        if not parity_ok(gap, same_decisions, tolerance):
            raise ModelRejected(parity_verdict(len(inputs), gap, same_decisions, tolerance))

    def _run(self, x: np.ndarray) -> np.ndarray:
        outputs = [self.session.run(None, {self.input_name: x[i:i + _BATCH]})[0] for i in range(0, len(x), _BATCH)]
        return np.concatenate(outputs).reshape(-1).astype(np.float64)

    def predict_windows(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for already-scaled windows (batch, seq_len, 28); used by evaluation and benchmarks."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.seq_len, N_FEATURES):
            raise ValueError(f"windows must be (batch, {self.seq_len}, {N_FEATURES}), got {x.shape}")
        out = self._run(x)
        if not np.isfinite(out).all():
            raise ValueError("model produced non-finite probabilities")
        return out

    def scaled_features(self, candles: np.ndarray) -> np.ndarray:
        """The model's input rows for every candle: features, then this model's own normalisation."""
        return self.normaliser.apply(compute_features(candles))

    def probabilities(self, candles: np.ndarray, ends: np.ndarray, scaled: np.ndarray | None = None) -> np.ndarray:
        """P(up) for the windows ending at each index in `ends` (the caller checks history and gaps)."""
        scaled = self.scaled_features(candles) if scaled is None else scaled
        return self.predict_windows(windows(scaled, ends, self.seq_len))

    def recent(self, candles: np.ndarray) -> np.ndarray:
        """The last `required_candles` candles, checked for length and gaps (raises NotEnoughHistory)."""
        if len(candles) < self.required_candles:
            raise NotEnoughHistory(f"model {self.version} needs {self.required_candles} candles, got {len(candles)}")
        recent = candles[-self.required_candles:]
        if self.step_ms is not None and np.any(np.diff(recent["ts"]) != self.step_ms):
            raise NotEnoughHistory(f"gap in the last {self.required_candles} candles: features would span it")
        return recent

    def predict_features(self, recent: np.ndarray, features: np.ndarray) -> float:
        """`predict` when `features = compute_features(recent)` was already computed (inference batches it)."""
        scaled = self.normaliser.apply(features)
        if not np.isfinite(scaled[-self.seq_len:]).all():
            raise NotEnoughHistory("non-finite features in the input window")
        return float(self.probabilities(recent, np.array([len(recent) - 1]), scaled)[0])

    def predict(self, candles: np.ndarray) -> float:
        """P(close[t+horizon] > close[t]) for the LAST candle; needs `required_candles` contiguous candles."""
        recent = self.recent(candles)
        return self.predict_features(recent, compute_features(recent))
