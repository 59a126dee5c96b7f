"""A market clock that runs at a multiple of real time, for the simulated market and CSV replay.

Its anchor (the wall time the market started) is kept in the state directory with the boot's id and the
monotonic time that matched it: every process of the same boot (a child restarted after the wall clock
jumped included) measures the market with the monotonic clock, which no `date -s` or NTP step moves;
only after a reboot, when the monotonic clock has restarted, is the wall clock read once, for the
downtime.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str | None:
    """This boot's id (CLOCK_MONOTONIC means the same thing to every process that reads the same one)."""
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class ClockAnchor:
    """When the market started: wall time, and the monotonic time that was on this boot (None: unknown)."""

    wall: float
    monotonic: float | None = None


@dataclass
class MarketClock:
    """Market time `origin_ms` at wall time `anchor_wall`, advancing `speed` market seconds per second.

    The daemon persists `anchor_wall`, so after a restart the market has moved on by the downtime times
    the speed, as a real market would have, and ingest backfills the candles it missed. The wall clock is
    read once, when the clock is made (that is what measures the downtime); from then on the market moves
    with `ticker` (the monotonic clock), so the wall clock jumping back or forward (NTP, an operator's
    `date -s`) does not move the market. With `anchor_monotonic` (the anchor on the ticker's scale, known
    on this boot) the wall clock is not read at all. A test that fakes `wall` alone advances it with `wall`.
    """

    origin_ms: int
    speed: float
    anchor_wall: float | None = None
    wall: Callable[[], float] = field(default=time.time, repr=False)
    ticker: Callable[[], float] | None = field(default=None, repr=False)
    anchor_monotonic: float | None = None

    def __post_init__(self) -> None:
        if self.ticker is None:
            self.ticker = time.monotonic if self.wall is time.time else self.wall
        self._tick_at_start = self.ticker()
        if self.anchor_wall is not None and self.anchor_monotonic is not None:
            self.anchor: float = self.anchor_wall
            self._elapsed_at_start = self._tick_at_start - self.anchor_monotonic
            return
        started = self.wall()
        self.anchor = started if self.anchor_wall is None else self.anchor_wall
        self._elapsed_at_start = started - self.anchor
        if self.anchor_monotonic is None:
            self.anchor_monotonic = self._tick_at_start - self._elapsed_at_start

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


def saved_anchor(saved: dict[str, Any]) -> ClockAnchor:
    """The anchor a saved clock holds; its monotonic time only when it was taken on this boot."""
    monotonic = saved.get("anchor_monotonic")
    same_boot = saved.get("boot_id") is not None and saved.get("boot_id") == boot_id()
    return ClockAnchor(float(saved["anchor_wall"]),
                       float(monotonic) if same_boot and isinstance(monotonic, (int, float)) else None)


def load_or_create_anchor(path: Path, identity: dict[str, Any], wall: Callable[[], float] = time.time,
                          ticker: Callable[[], float] = time.monotonic) -> ClockAnchor:
    """When this market's clock started, kept across restarts in `path`, with its monotonic time on this boot
    (written here the first time a process of this boot reads it: the one read of the wall clock per boot).

    `identity` describes the market (source, seed, start, speed...): if the configuration changes,
    the old anchor no longer applies and a new market clock starts now.
    """
    saved = saved_clock(path, identity)
    if saved is not None:
        anchor = saved_anchor(saved)
        if anchor.monotonic is not None:
            return anchor
        anchor = ClockAnchor(anchor.wall, ticker() - (wall() - anchor.wall))
        content = dict(saved)
    else:
        now = wall()
        anchor = ClockAnchor(now, ticker())
        content = {"identity": identity, "anchor_wall": now}
    _write(path, {**content, "boot_id": boot_id(), "anchor_monotonic": anchor.monotonic})
    return anchor


def record_clock(path: Path, identity: dict[str, Any], clock: MarketClock) -> None:
    """Keep the clock's origin beside its anchor, so that inference and the supervisor know the market's time
    (a CSV replay's origin comes from its files, which only ingest reads)."""
    saved = saved_clock(path, identity)
    if saved is None or saved.get("origin_ms") != clock.origin_ms or saved.get("anchor_wall") != clock.anchor \
            or saved.get("anchor_monotonic") != clock.anchor_monotonic:
        _write(path, {"identity": identity, "anchor_wall": clock.anchor, "origin_ms": clock.origin_ms,
                      "boot_id": boot_id(), "anchor_monotonic": clock.anchor_monotonic})


EXCHANGE_CLOCK_FILE = "exchange-clock.json"


def write_exchange_clock(path: Path, exchange: str, exchange_ms: float, monotonic: float) -> None:
    """Ingest's latest reading of a real exchange's clock, and the monotonic time it was taken (runtime
    directory): the other processes of this boot follow the exchange's time from it, not the wall clock."""
    _write(path, {"exchange": exchange, "exchange_ms": exchange_ms, "monotonic": monotonic, "boot_id": boot_id()})


def read_exchange_clock(path: Path, exchange: str) -> tuple[float, float] | None:
    """(exchange time in ms, monotonic time of that reading) written on this boot for `exchange`, or None."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("exchange") != exchange or saved.get("boot_id") != boot_id():
        return None
    exchange_ms, monotonic = saved.get("exchange_ms"), saved.get("monotonic")
    if not isinstance(exchange_ms, (int, float)) or not isinstance(monotonic, (int, float)):
        return None
    return float(exchange_ms), float(monotonic)
