"""Timeframes and market timestamps: everything is integer milliseconds since the epoch, UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_TIMEFRAME_RE = re.compile(r"^([1-9][0-9]*)([smhdw])$")
# 1970-01-01 was a Thursday; exchanges start weekly candles on Monday 1970-01-05.
_WEEK_OFFSET_MS = 4 * 86_400_000
#: what `iso` says for a time outside the calendar (years 1 to 9999)
OUT_OF_RANGE = "out-of-range time"


def timeframe_ms(timeframe: str) -> int:
    """Length of one candle, e.g. '1h' -> 3_600_000. Raises ValueError for anything else."""
    match = _TIMEFRAME_RE.match(timeframe or "")
    if not match:
        raise ValueError(
            f"invalid timeframe {timeframe!r}: expected a number and a unit s, m, h, d or w (e.g. 5m, 1h, 1d)"
        )
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def alignment_offset_ms(timeframe: str) -> int:
    """Offset from the epoch at which candles of this timeframe open (Monday for weeks)."""
    return _WEEK_OFFSET_MS if timeframe.endswith("w") else 0


def floor_to_timeframe(ts_ms: int, timeframe: str) -> int:
    """Open time of the candle that contains `ts_ms`."""
    step = timeframe_ms(timeframe)
    offset = alignment_offset_ms(timeframe)
    return (ts_ms - offset) // step * step + offset


def last_closed_open_ms(now_ms: int, timeframe: str) -> int:
    """Open time of the newest candle that has fully closed at `now_ms`."""
    return floor_to_timeframe(now_ms, timeframe) - timeframe_ms(timeframe)


def _shown(value: object, limit: int = 24) -> str:
    """A number as text for a message, cut short (str() of a many-thousand-digit int even raises)."""
    try:
        text = str(value)
    except ValueError:
        return "a number too long to show"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def iso(ts_ms: float | None) -> str | None:
    """ISO-8601 UTC string for logs and reports ('2024-01-01T00:00:00Z').

    Total, because it formats whatever a store or an exchange holds: a time no calendar date can show
    (after the year 9999, before the year 1, NaN) comes back as `out-of-range time (N ms)`, never an
    exception that would take a heartbeat or a report down with it."""
    if ts_ms is None:
        return None
    try:
        moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError, TypeError):
        return f"{OUT_OF_RANGE} ({_shown(ts_ms)} ms)"
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%SZ}"


def parse_iso_ms(text: str) -> int:
    """Milliseconds for an ISO date or date-time; naive values are taken as UTC."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        shown = repr(text) if len(text) <= 40 else f"{text[:40]!r}... ({len(text)} characters)"
        raise ValueError(f"invalid date {shown}: expected ISO-8601 such as 2024-01-31 or 2024-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
