"""Hot-swap bookkeeping: load off the hot path, swap between candles, never install a stale or refused load.

The versions are real trained models (copies of one) loaded by onnxruntime; a wrapper around
ModelRunner.load only holds a load back or counts attempts, to set up the races.
"""

from __future__ import annotations

import concurrent.futures as futures
import threading
from pathlib import Path

import pytest

from autoretrain.daemon.processes.model_slot import ModelSlot
from autoretrain.models.registry import Registry
from autoretrain.models.runtime import ModelRunner
from tests.support.models import register_copy, trained_version


def make_registry(tmp_path: Path, source: Path, versions: int, truncated: tuple[str, ...] = ()) -> Registry:
    """`versions` copies of the trained model for BTC/USDT 1h; those named in `truncated` have half a model file."""
    registry = Registry(tmp_path / "models")
    for number in range(1, versions + 1):
        register_copy(registry, "BTC/USDT", "1h", source, truncated=f"v{number:04d}" in truncated)
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
