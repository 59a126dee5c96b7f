"""A market clock that runs at a multiple of real time, for the simulated market and CSV replay."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class MarketClock:
    """Market time `origin_ms` at wall time `anchor_wall`, advancing `speed` market seconds per second.

    The daemon persists `anchor_wall`, so after a restart the market has moved on by the downtime times
    the speed, as a real market would have, and ingest backfills the candles it missed. The wall clock is
    read once, when the clock is made (that is what measures the downtime); from then on the market moves
    with `ticker` (the monotonic clock), so the wall clock jumping back or forward (NTP, an operator's
    `date -s`) does not move the market. A test that fakes `wall` alone advances it with `wall`.
    """

    origin_ms: int
    speed: float
    anchor_wall: float | None = None
    wall: Callable[[], float] = field(default=time.time, repr=False)
    ticker: Callable[[], float] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        started = self.wall()
        self.anchor: float = started if self.anchor_wall is None else self.anchor_wall
        if self.ticker is None:
            self.ticker = time.monotonic if self.wall is time.time else self.wall
        self._elapsed_at_start = started - self.anchor
        self._tick_at_start = self.ticker()

    def now_ms(self) -> int:
        assert self.ticker is not None
        elapsed = self._elapsed_at_start + (self.ticker() - self._tick_at_start)
        return self.origin_ms + int(elapsed * self.speed * 1000)

    def wall_seconds_until(self, market_ms: int) -> float:
        return max(0.0, (market_ms - self.now_ms()) / 1000.0 / self.speed)


def saved_clock(path: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """What `path` holds for this market (`anchor_wall`, and `origin_ms` once ingest recorded it), or None when
    it holds nothing for it (no file yet, another market's, unreadable). Read-only: for the processes that
    follow the market's time without owning its clock."""
    try:
        saved = json.loads(path.read_text())
        if isinstance(saved, dict) and saved.get("identity") == identity \
                and isinstance(saved.get("anchor_wall"), (int, float)):
            return saved
    except (OSError, ValueError):
        pass
    return None


def _write(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(content))
    os.replace(temporary, path)


def load_or_create_anchor(path: Path, identity: dict[str, Any], wall: Callable[[], float] = time.time) -> float:
    """The wall time at which this market's clock started, kept across restarts in `path`.

    `identity` describes the market (source, seed, start, speed...): if the configuration changes,
    the old anchor no longer applies and a new market clock starts now.
    """
    saved = saved_clock(path, identity)
    if saved is not None:
        return float(saved["anchor_wall"])
    anchor = wall()
    _write(path, {"identity": identity, "anchor_wall": anchor})
    return anchor


def record_clock(path: Path, identity: dict[str, Any], clock: MarketClock) -> None:
    """Keep the clock's origin beside its anchor, so that inference and the supervisor know the market's time
    (a CSV replay's origin comes from its files, which only ingest reads)."""
    saved = saved_clock(path, identity)
    if saved is None or saved.get("origin_ms") != clock.origin_ms or saved.get("anchor_wall") != clock.anchor:
        _write(path, {"identity": identity, "anchor_wall": clock.anchor, "origin_ms": clock.origin_ms})
