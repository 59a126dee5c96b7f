"""The onnxruntime runner: what it predicts, how it runs, and every kind of bad model file it refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from autoretrain.daemon.foundation.errors import exit_code
from autoretrain.models.dataset import windows
from autoretrain.models.features import WARMUP_CANDLES, compute_features
from autoretrain.models.runtime import ModelRejected, ModelRunner, NotEnoughHistory, sha256_bytes
from tests.support.data import ROOT
from tests.support.models import copy_version, regime_series, trained_version


@pytest.fixture
def version(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of a real trained version folder."""
    return copy_version(trained_version(tmp_path_factory), tmp_path / "v0001")


def _rewrite_meta(folder: Path, **changes: object) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    meta.update(changes)
    (folder / "meta.json").write_text(json.dumps(meta))


def _set_sha(folder: Path) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    meta["onnx"]["sha256"] = sha256_bytes((folder / "model.onnx").read_bytes())
    (folder / "meta.json").write_text(json.dumps(meta))


def test_loads_and_predicts_the_last_candle(version: Path) -> None:
    runner = ModelRunner.load(version)
    meta = json.loads((version / "meta.json").read_text())
    assert runner.version == meta["version"] and runner.seq_len == meta["seq_len"]
    assert runner.required_candles == meta["seq_len"] + WARMUP_CANDLES
    candles = regime_series(("momentum", 3000)).candles(2000, 2699)  # after the training data
    probability = runner.predict(candles)
    assert 0.0 < probability < 1.0
    # the same thing by hand: features of the recent candles, the model's normaliser, one window
    recent = candles[-runner.required_candles:]
    scaled = runner.normaliser.apply(compute_features(recent))
    by_hand = runner.predict_windows(windows(scaled, np.array([len(recent) - 1]), runner.seq_len))[0]
    assert probability == pytest.approx(by_hand, abs=1e-7)
    # more history than needed changes nothing; a different last candle changes the answer
    assert runner.predict(candles[-(runner.required_candles + 300):]) == pytest.approx(probability, abs=1e-6)
    assert runner.predict(candles[:-1]) != probability


def test_the_model_predicts_a_momentum_market_it_has_not_seen(version: Path) -> None:
    runner = ModelRunner.load(version)
    candles = regime_series(("momentum", 3000)).candles(2000, 2999)
    ends = np.arange(runner.required_candles, len(candles) - 1)
    up = candles["close"][ends + 1] > candles["close"][ends]
    accuracy = np.mean((runner.probabilities(candles, ends) > 0.5) == up)
    assert accuracy >= 0.6


def test_batch_and_single_windows_agree(version: Path) -> None:
    runner = ModelRunner.load(version)
    x = np.random.default_rng(0).normal(size=(64, runner.seq_len, 28)).astype(np.float32)
    batch = runner.predict_windows(x)
    singles = np.array([runner.predict_windows(x[i:i + 1])[0] for i in range(64)])
    assert batch.shape == (64,)
    np.testing.assert_allclose(batch, singles, atol=1e-6)
    with pytest.raises(ValueError, match="windows must be"):
        runner.predict_windows(x[:, :-1])


def test_session_uses_one_thread_without_spinning(version: Path) -> None:
    runner = ModelRunner.load(version)
    options = runner.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert ModelRunner.load(version, threads=2).session.get_session_options().intra_op_num_threads == 2


def test_too_little_or_broken_history_is_refused_per_call(version: Path) -> None:
    runner = ModelRunner.load(version)
    candles = regime_series(("momentum", 3000)).candles(2000, 2499)
    with pytest.raises(NotEnoughHistory, match="needs"):
        runner.predict(candles[-(runner.required_candles - 1):])
    gapped = candles.copy()
    gapped["ts"][-5:] += 3_600_000
    with pytest.raises(NotEnoughHistory, match="gap"):
        runner.predict(gapped)


def _assert_rejected(folder: Path, match: str) -> None:
    with pytest.raises(ModelRejected, match=match) as info:
        ModelRunner.load(folder)
    assert "\n" not in info.value.reason and exit_code(info.value) == 65


def test_corrupt_onnx_bytes_are_refused(version: Path) -> None:
    data = bytearray((version / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (version / "model.onnx").write_bytes(bytes(data))
    _assert_rejected(version, "sha256 .* does not match")


def test_truncated_onnx_file_is_refused_even_with_a_matching_checksum(version: Path) -> None:
    (version / "model.onnx").write_bytes((version / "model.onnx").read_bytes()[:1000])
    _assert_rejected(version, "sha256")
    _set_sha(version)  # someone "fixed" the checksum: the file itself must still be refused
    _assert_rejected(version, "not a readable ONNX model")


def _poison_largest_weight(folder: Path, count: int | None) -> None:
    """Set the first `count` values (all when None) of the biggest weight tensor to NaN; fix the checksum."""
    model = onnx.load(str(folder / "model.onnx"))
    weight = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    poisoned = numpy_helper.to_array(weight).copy()
    poisoned.flat[:count] = np.nan
    weight.CopyFrom(numpy_helper.from_array(poisoned, weight.name))
    onnx.save(model, str(folder / "model.onnx"))
    _set_sha(folder)


def test_nan_weights_are_refused(version: Path) -> None:
    _poison_largest_weight(version, None)  # what a diverged training run leaves
    _assert_rejected(version, "non-finite")


def test_a_single_nan_weight_is_refused(version: Path) -> None:
    _poison_largest_weight(version, 1)  # onnxruntime's LSTM clamps it: the outputs alone would look finite
    _assert_rejected(version, "non-finite")


def test_wrong_input_shape_is_refused(version: Path) -> None:
    meta = json.loads((version / "meta.json").read_text())
    _rewrite_meta(version, seq_len=meta["seq_len"] + 8)  # the graph takes seq_len windows, meta says otherwise
    _assert_rejected(version, r"expected tensor\(float\) \[batch")
    _rewrite_meta(version, seq_len=meta["seq_len"])
    model = onnx.load(str(version / "model.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 27
    onnx.save(model, str(version / "model.onnx"))
    _set_sha(version)
    _assert_rejected(version, "27|onnxruntime cannot load")


def test_parity_samples_that_do_not_reproduce_are_refused(version: Path) -> None:
    with np.load(version / "parity.npz") as stored:
        x, probability = stored["x"], stored["probability"]
    np.savez(version / "parity.npz", x=x, probability=probability + 0.01)
    _assert_rejected(version, "parity check failed")
    (version / "parity.npz").write_bytes(b"garbage")
    _assert_rejected(version, "parity samples unreadable")


def test_missing_or_foreign_meta_is_refused(version: Path) -> None:
    _rewrite_meta(version, feature_set_version="f99-other")
    _assert_rejected(version, "feature set")
    (version / "meta.json").write_text("{")
    _assert_rejected(version, "unreadable")
    (version / "meta.json").unlink()
    _assert_rejected(version, "no meta.json")


def test_runtime_never_imports_torch(version: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import autoretrain.models.runtime, autoretrain.models.registry, autoretrain.models.features
        import autoretrain.models.dataset, autoretrain.models.evaluation
        from autoretrain.daemon.market.simulated import Regime, SimulatedSeries
        runner = autoretrain.models.runtime.ModelRunner.load({str(version)!r})
        series = SimulatedSeries(7, "SIM/USDT", "1h", 1_704_067_200_000, 100.0, [Regime("momentum", 3000, 0.5, 0.01)])
        p = runner.predict(series.candles(0, 599))
        assert 0 < p < 1
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        print("torch modules:", loaded)
        sys.exit(1 if loaded else 0)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
