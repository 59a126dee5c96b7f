"""Hot-swap bookkeeping: load off the hot path, swap between candles, never install a stale or refused load."""

from __future__ import annotations

import concurrent.futures as futures
import threading
from pathlib import Path

from daemon.model_slot import ModelSlot
from models.registry import Registry
from models.runtime import ModelRejected


class FakeRunner:
    def __init__(self, version: str) -> None:
        self.version = version


def make_registry(tmp_path: Path, versions: int) -> Registry:
    registry = Registry(tmp_path / "models")
    for _ in range(versions):
        with registry.stage("BTC/USDT", "1h") as staging:
            (staging.path / "model.onnx").write_bytes(b"x")
            staging.commit({})
    return registry


def test_a_load_that_finishes_after_a_rollback_is_not_installed(tmp_path: Path) -> None:
    registry = make_registry(tmp_path, 2)
    registry.promote("BTC/USDT", "1h", "v0001")
    gate = threading.Event()

    def load(path: Path, threads: int) -> FakeRunner:
        if path.name == "v0002":
            gate.wait(5)  # still loading when the operator rolls back
        return FakeRunner(path.name)

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


def test_a_refused_version_is_not_retried_until_the_pointer_moves(tmp_path: Path) -> None:
    registry = make_registry(tmp_path, 3)
    registry.promote("BTC/USDT", "1h", "v0001")
    attempts: list[str] = []

    def load(path: Path, threads: int) -> FakeRunner:
        attempts.append(path.name)
        if path.name == "v0002":
            raise ModelRejected("sha256 mismatch")
        return FakeRunner(path.name)

    with futures.ThreadPoolExecutor(1) as loader:
        slot = ModelSlot(registry, "BTC/USDT", "1h", threads=1, loader=loader, load=load)
        slot.load_now()
        registry.promote("BTC/USDT", "1h", "v0002")
        slot.check()
        slot.pending[1].result()  # type: ignore[index]
        refused = slot.take_swap()
        assert refused is not None and refused.error == "sha256 mismatch" and slot.version == "v0001"
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
