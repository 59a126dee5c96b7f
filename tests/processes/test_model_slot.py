"""Hot-swap bookkeeping: load off the hot path, swap between candles, never install a stale or refused load.

The versions are real trained models (copies of one) loaded by onnxruntime; a wrapper around
ModelRunner.load only holds a load back or counts attempts, to set up the races.
"""

from __future__ import annotations

import concurrent.futures as futures
import json
import shutil
import threading
from pathlib import Path

import pytest

from autoretrain.daemon.processes.model_slot import ModelSlot
from autoretrain.models.registry import Registry
from autoretrain.models.runtime import ModelRunner
from tests.support.models import trained_version


def make_registry(tmp_path: Path, source: Path, versions: int, truncated: tuple[str, ...] = ()) -> Registry:
    """`versions` copies of the trained model for BTC/USDT 1h; those named in `truncated` have half a model file."""
    registry = Registry(tmp_path / "models")
    for _ in range(versions):
        with registry.stage("BTC/USDT", "1h") as staging:
            for item in source.iterdir():
                shutil.copy(item, staging.path / item.name)
            if f"v{len(registry.versions('BTC/USDT', '1h')) + 1:04d}" in truncated:
                model = staging.path / "model.onnx"
                model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
            staging.commit(json.loads((source / "meta.json").read_text()))
    return registry


def test_a_load_that_finishes_after_a_rollback_is_not_installed(tmp_path: Path,
                                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    registry = make_registry(tmp_path, trained_version(tmp_path_factory), 2)
    registry.promote("BTC/USDT", "1h", "v0001")
    gate = threading.Event()

    def load(path: Path, threads: int) -> ModelRunner:
        if path.name == "v0002":
            gate.wait(5)  # still loading when the operator rolls back
        return ModelRunner.load(path, threads=threads)

    with futures.ThreadPoolExecutor(1) as loader:
        slot = ModelSlot(registry, "BTC/USDT", "1h", threads=1, loader=loader, load=load)
        assert slot.load_now().version == "v0001" and slot.version == "v0001"
        registry.promote("BTC/USDT", "1h", "v0002")
        slot.check()
        registry.rollback("BTC/USDT", "1h")
        slot.check()  # back at the served version: the pending load is dropped
        assert slot.pending is None
        gate.set()
        assert slot.take_swap() is None and slot.version == "v0001"
        # a load that completes after the pointer moved elsewhere is discarded too
        registry.promote("BTC/USDT", "1h", "v0002")
        slot.check()
        slot.pending[1].result()  # type: ignore[index]
        registry.rollback("BTC/USDT", "1h")
        assert slot.take_swap() is None and slot.version == "v0001"


def test_a_refused_version_is_not_retried_until_the_pointer_moves(tmp_path: Path,
                                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    registry = make_registry(tmp_path, trained_version(tmp_path_factory), 3, truncated=("v0002",))
    registry.promote("BTC/USDT", "1h", "v0001")
    attempts: list[str] = []

    def load(path: Path, threads: int) -> ModelRunner:
        attempts.append(path.name)
        return ModelRunner.load(path, threads=threads)

    with futures.ThreadPoolExecutor(1) as loader:
        slot = ModelSlot(registry, "BTC/USDT", "1h", threads=1, loader=loader, load=load)
        slot.load_now()
        registry.promote("BTC/USDT", "1h", "v0002")
        slot.check()
        slot.pending[1].result()  # type: ignore[index]
        refused = slot.take_swap()
        assert refused is not None and refused.error is not None and "sha256" in refused.error
        assert slot.version == "v0001"
        slot.check()
        assert slot.pending is None and attempts.count("v0002") == 1
        registry.promote("BTC/USDT", "1h", "v0003")
        slot.check()
        slot.pending[1].result()  # type: ignore[index]
        swapped = slot.take_swap()
        assert swapped is not None and swapped.version == "v0003" and slot.version == "v0003"
        assert slot.drop() == "v0003" and slot.runner is None
        slot.check()
        assert slot.pending is None  # a model that failed in service is not reloaded until the pointer moves
