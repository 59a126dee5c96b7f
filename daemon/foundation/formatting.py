"""Numbers as operators read them in logs, status and reports: percentages with one decimal, signed PnL."""

from __future__ import annotations


def pct(value: float | None, missing: str = "n/a") -> str:
    """A fraction as a percentage with one decimal for logs and reports ('57.5%'); `missing` for None."""
    return missing if value is None else f"{100 * value:.1f}%"


def signed_pct(value: float | None, digits: int = 2, missing: str = "-") -> str:
    """A value already in percent (a PnL, a price move) with its sign ('+1.25%'); `missing` for None."""
    return missing if value is None else f"{value:+.{digits}f}%"
