"""Hot-swapping the model of one symbol: load and verify off the hot path, switch between two candles.

The inference loop asks `check()` whenever a `model.promoted` hint arrives and every
`inference.model_check_interval` seconds (hints can be lost): if the registry pointer names a version
other than the one served, a background thread loads it with every runtime check (sha256, input
schema, parity samples). The loop calls `take_swap()` between candles: a verified model replaces the
current one there, so no candle is ever predicted by half of each. A version that fails verification
is remembered and not retried until the pointer names another one; the current model keeps serving.
"""

from __future__ import annotations

import concurrent.futures as futures
import logging
from collections.abc import Callable
from dataclasses import dataclass

from autoretrain.models.registry import Registry, RegistryError
from autoretrain.models.runtime import ModelRejected, ModelRunner

log = logging.getLogger("autoretrain.inference")


@dataclass(frozen=True)
class SwapResult:
    """What happened to a pending load: a new runner to serve, or the reason it was refused."""

    version: str | None
    runner: ModelRunner | None
    error: str | None = None


class ModelSlot:
    def __init__(self, registry: Registry, symbol: str, timeframe: str, *, threads: int,
                 loader: futures.Executor, load: Callable[..., ModelRunner] = ModelRunner.load) -> None:
        self.registry = registry
        self.symbol = symbol
        self.timeframe = timeframe
        self.threads = threads
        self.loader = loader
        self.load = load
        self.runner: ModelRunner | None = None
        self.pending: tuple[str | None, futures.Future] | None = None
        self.refused: str | None = None  # version that failed verification (not retried)
        self.wanted: str | None = None  # what the pointer named when last read

    @property
    def version(self) -> str | None:
        return self.runner.version if self.runner is not None else None

    @property
    def expects_model(self) -> bool:
        """A model serves, or the pointer names one that is loading: the policy's "has a model", from what
        this process knows (no file read per candle)."""
        return self.version is not None or (self.wanted is not None and self.wanted != self.refused)

    def _target(self) -> str | None:
        try:
            self.wanted = self.registry.promoted(self.symbol, self.timeframe)
        except RegistryError as exc:
            log.error("%s: cannot read the promoted-model pointer: %s", self.symbol, exc)
            return self.version
        return self.wanted

    def _load(self, version: str | None) -> SwapResult:
        if version is None:
            return SwapResult(None, None)
        path = self.registry.version_dir(self.symbol, self.timeframe, version)
        try:
            return SwapResult(version, self.load(path, threads=self.threads))
        except ModelRejected as exc:
            return SwapResult(version, None, exc.reason)
        except Exception as exc:  # noqa: BLE001 - any failure to load keeps the current model
            return SwapResult(version, None, f"{type(exc).__name__}: {exc}")

    def load_now(self) -> SwapResult | None:
        """At start-up: load the promoted version synchronously (before inference reports ready)."""
        target = self._target()
        if target is None:
            return None
        result = self._load(target)
        return self._apply(result)

    def check(self) -> None:
        """Start loading the promoted version in the background if it is not the one being served."""
        target = self._target()
        if target == self.version:
            self.pending = None  # e.g. promoted then rolled back before the load finished: nothing to swap
            return
        if target == self.refused:
            return
        if self.pending is not None and self.pending[0] == target:
            return
        self.pending = (target, self.loader.submit(self._load, target))

    def take_swap(self) -> SwapResult | None:
        """Between candles: apply a finished background load; None when nothing changed."""
        if self.pending is None or not self.pending[1].done():
            return None
        _, future = self.pending
        self.pending = None
        result = future.result()
        if result.version != self._target():
            return None  # the pointer moved on while this loaded: the next check() loads the new target
        return self._apply(result)

    def drop(self) -> str | None:
        """The served model failed at prediction time: stop serving it (until the pointer moves on)."""
        version = self.version
        self.refused, self.runner, self.pending = version, None, None
        return version

    def _apply(self, result: SwapResult) -> SwapResult:
        if result.error is not None:
            self.refused = result.version
            return result
        self.refused = None
        self.runner = result.runner
        return result
