"""A market clock that runs at a multiple of real time, for the simulated market and CSV replay."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class MarketClock:
    """Market time `origin_ms` at wall time `anchor_wall`, advancing `speed` market seconds per second.

    The daemon persists `anchor_wall`, so after a restart the market has moved on by the downtime times
    the speed, as a real market would have, and ingest backfills the candles it missed.
    """

    origin_ms: int
    speed: float
    anchor_wall: float | None = None
    wall: Callable[[], float] = field(default=time.time, repr=False)

    def __post_init__(self) -> None:
        if self.anchor_wall is None:
            self.anchor_wall = self.wall()

    def now_ms(self) -> int:
        return self.origin_ms + int((self.wall() - float(self.anchor_wall)) * self.speed * 1000)

    def wall_seconds_until(self, market_ms: int) -> float:
        return max(0.0, (market_ms - self.now_ms()) / 1000.0 / self.speed)
