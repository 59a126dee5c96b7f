"""Moving the promoted pointer by hand, verified first: `promote` and `rollback` from the CLI or the daemon.

A version is loaded with every runtime check (checksum, schema, parity samples) before the pointer
moves to it, so an operator can never point a running daemon at a model it would refuse. Both the
command line (no daemon) and the supervisor's control commands call these.
"""

from __future__ import annotations

from typing import Any

from autoretrain.models.errors import ModelRejected
from autoretrain.models.registry import Registry, parse_version


def verify(registry: Registry, symbol: str, timeframe: str, version: str) -> None:
    """Refuse a version that would not load (ModelRejected naming it); a missing one is the registry's to say."""
    # onnxruntime loads only when a version is verified: the supervisor stays light until an operator promotes
    from autoretrain.models.runtime import ModelRunner

    path = registry.version_dir(symbol, timeframe, version)
    if path.is_dir():
        try:
            ModelRunner.load(path)
        except ModelRejected as exc:
            raise ModelRejected(f"{symbol} {timeframe} {version} refused: {exc.reason}") from None


def promote_verified(registry: Registry, symbol: str, timeframe: str, version_text: str) -> dict[str, Any]:
    """Verify a version (checksum, schema, parity), then move the pointer to it."""
    version = parse_version(version_text)
    verify(registry, symbol, timeframe, version)
    previous = registry.promote(symbol, timeframe, version)
    return {"symbol": symbol, "timeframe": timeframe, "promoted": version, "previous": previous}


def rollback_verified(registry: Registry, symbol: str, timeframe: str) -> dict[str, Any]:
    """Verify the previous champion, then move the pointer back to it."""
    current = registry.promoted(symbol, timeframe)
    target = registry.rollback_target(symbol, timeframe)
    if target is not None:
        verify(registry, symbol, timeframe, target)
    restored = registry.rollback(symbol, timeframe)
    return {"symbol": symbol, "timeframe": timeframe, "promoted": restored, "previous": current}
