"""`autoretrainctl report` as one PNG (matplotlib, headless): the dashboard's charts of one symbol.

Drawn from `views.history.symbol_history`, the data the dashboard draws, so the two show the same series.
Panels, top to bottom, on one market-time axis: the closes with every BUY (green triangle up) and SELL (red
triangle down); the rolling win rate of the combined signal's settled trades beside the retrain threshold,
and the model's own rolling accuracy (lighter); the cumulative PnL net of fees of both; the model timeline
(which version served when, grey and hatched while benched or with no model, the algorithms alone) with
every retrain (colour: its trigger, shape: its result) and every change of the serving model. A thin
vertical line marks each promotion (green) and rollback (orange) on every panel.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autoretrain.daemon.foundation.timeframes import timeframe_ms

PANELS = ("price", "win rate", "PnL", "model timeline")
#: inches and dots per inch: a 1430 x 1320 pixel PNG
FIGSIZE = (13.0, 12.0)
DPI = 110
#: a retrain's result -> its marker on the timeline
RUN_MARKERS = {"promoted": "^", "rejected": "x", "failed": "o", "aborted": "s", "queued": ".", "running": "."}
#: a change of the serving model -> (marker, colour) on the timeline
CHANGE_MARKERS = {"promotion": ("D", "tab:green"), "rollback": ("<", "tab:orange"), "benched": ("v", "dimgrey"),
                  "unbenched": ("^", "dimgrey"), "algorithms_only": ("X", "black")}
#: rows of the timeline panel
VERSION_ROW, RUN_ROW, CHANGE_ROW = 0.0, 1.0, 2.0
#: characters of a version's label (7 points) across the whole width of a panel
LABEL_CHARS = 170
TRIGGER_COLOURS = ("tab:blue", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:red", "tab:grey")


@dataclass(frozen=True)
class Rendered:
    """The PNG, its size, and where each panel's axes lie in it (pixels, from the top left: x0, y0, x1, y1)."""

    png: bytes
    width: int
    height: int
    panels: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)


def _times(ts: list[int]) -> np.ndarray:
    return np.asarray(ts, dtype="datetime64[ms]")


def _percent(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if value is None else 100.0 * value for value in values], dtype=float)


def _clipped(segment: dict[str, Any], start: int, end: int) -> tuple[int, int]:
    return max(int(segment["from_ts"]), start), min(int(segment["to_ts"]), end)


def _price(ax: Any, history: dict[str, Any]) -> None:
    candles = history["candles"]
    ax.plot(_times(candles["ts"]), candles["close"], color="black", linewidth=0.9, label="close")
    for action, marker, colour in (("BUY", "^", "tab:green"), ("SELL", "v", "tab:red")):
        points = [m for m in history["markers"] if m["action"] == action]
        if points:
            ax.scatter(_times([m["ts"] for m in points]), [m["price"] for m in points], marker=marker, s=18,
                       color=colour, zorder=3, linewidths=0, label=f"{action} ({len(points)})")
    ax.set_ylabel("price (close)")
    ax.legend(loc="upper left", fontsize=8, ncol=3)


def _win_rate(ax: Any, history: dict[str, Any]) -> None:
    trades, window = history["trades"], history["rolling_window"]
    combined, model = trades["combined"], trades["model"]
    if combined["ts"]:
        ax.plot(_times(combined["ts"]), _percent(combined["win_rate"]), color="tab:blue", linewidth=1.1,
                label=f"combined signal ({len(combined['ts'])} trades)")
    if model["ts"]:
        ax.plot(_times(model["ts"]), _percent(model["win_rate"]), color="tab:orange", alpha=0.55, linewidth=0.9,
                label=f"model's own ({len(model['ts'])} trades)")
    threshold = 100 * history["threshold"]
    ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=0.9, label=f"retrain threshold {threshold:.0f}%")
    ax.axhline(50, color="grey", linestyle=":", linewidth=0.8)
    ax.set_ylim(0, 100)
    ax.set_ylabel(f"win rate %\n(last {window} trades)")
    _legend_or_note(ax, combined["ts"] or model["ts"], ncol=3)


def _pnl(ax: Any, history: dict[str, Any]) -> None:
    combined, model = history["trades"]["combined"], history["trades"]["model"]
    if combined["ts"]:
        ax.plot(_times(combined["ts"]), combined["pnl_pct"], color="tab:blue", linewidth=1.1, label="combined signal")
    if model["ts"]:
        ax.plot(_times(model["ts"]), model["pnl_pct"], color="tab:orange", linewidth=0.9, label="model's own trades")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_ylabel(f"PnL % in this range\nnet of fees ({history['fee_bps']:g} bps)")
    _legend_or_note(ax, combined["ts"] or model["ts"], ncol=2)


def _legend_or_note(ax: Any, anything: list[int], *, ncol: int) -> None:
    """The panel's legend, or a note that no trade was settled in the range."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8, ncol=ncol)
    if not anything:
        ax.text(0.5, 0.5, "no settled trade in this range", transform=ax.transAxes, ha="center", va="center",
                fontsize=8, color="dimgrey")


def _segments(history: dict[str, Any], start: int) -> list[dict[str, Any]]:
    """The versions' segments, and the algorithms alone before the first activation the store recorded."""
    segments = list(history["versions"])
    first = int(segments[0]["from_ts"]) if segments else None
    if first is None or first > start:
        end = first if first is not None else int(history["candles"]["ts"][-1])
        segments.insert(0, {"version": None, "from_ts": start, "to_ts": end, "benched": False})
    return segments


def _versions(ax: Any, history: dict[str, Any], start: int, end: int) -> None:
    from matplotlib.dates import date2num

    for segment in _segments(history, start):
        left, right = _clipped(segment, start, end)
        if right < left:
            continue
        version, benched = segment["version"], segment["benched"]
        grey = version is None or benched
        x0, x1 = date2num(_times([left, right]))
        ax.broken_barh([(x0, max(x1 - x0, 1e-6))], (VERSION_ROW - 0.35, 0.7),
                       facecolors="lightgrey" if grey else "tab:green", alpha=0.6 if grey else 0.35,
                       hatch="//" if grey else None, edgecolor="dimgrey", linewidth=0.5)
        room = (right - left) / max(end - start, 1) * LABEL_CHARS  # characters the segment has room for
        labels = ["algorithms only", "algos"] if version is None else [f"{version} (benched)", version] \
            if benched else [version]
        label = next((text for text in labels if len(text) <= room), None)
        if label is not None:
            ax.text((x0 + x1) / 2, VERSION_ROW, label, ha="center", va="center", fontsize=7, clip_on=True)


def _events(ax: Any, history: dict[str, Any]) -> list[Any]:
    """The retrains and the model's changes as markers; the legend's handles."""
    from matplotlib.lines import Line2D

    events = history["events"]
    runs = [e for e in events if e["kind"] == "retrain"]
    triggers = Counter(str(e["trigger"]) for e in runs)
    colour = {trigger: TRIGGER_COLOURS[i % len(TRIGGER_COLOURS)] for i, trigger in enumerate(sorted(triggers))}
    handles: list[Any] = []
    for trigger in sorted(triggers):
        for status, marker in RUN_MARKERS.items():
            at = [e for e in runs if str(e["trigger"]) == trigger and e["status"] == status]
            if at:
                ax.scatter(_times([e["ts"] for e in at]), [RUN_ROW] * len(at), marker=marker, s=36,
                           color=colour[trigger], zorder=3, linewidths=1.2)
                if status == "promoted":
                    for event in at:
                        ax.annotate(str(event["version"] or ""), (_times([event["ts"]])[0], RUN_ROW),
                                    xytext=(0, 7), textcoords="offset points", ha="center", fontsize=6)
        handles.append(Line2D([], [], linestyle="none", marker="s", color=colour[trigger],
                              label=f"retrain: {trigger} ({triggers[trigger]})"))
    statuses = Counter(str(e["status"]) for e in runs)
    for status, marker in RUN_MARKERS.items():
        if statuses.get(status):
            handles.append(Line2D([], [], linestyle="none", marker=marker, color="black",
                                  label=f"{status} ({statuses[status]})"))
    kinds = Counter(str(e["kind"]) for e in events if e["kind"] != "retrain")
    for kind, (marker, tint) in CHANGE_MARKERS.items():
        at = [e for e in events if e["kind"] == kind]
        if at:
            ax.scatter(_times([e["ts"] for e in at]), [CHANGE_ROW] * len(at), marker=marker, s=36, color=tint,
                       zorder=3)
            handles.append(Line2D([], [], linestyle="none", marker=marker, color=tint,
                                  label=f"{kind.replace('_', ' ')} ({kinds[kind]})"))
    return handles


def _timeline(ax: Any, history: dict[str, Any], start: int, end: int) -> None:
    _versions(ax, history, start, end)
    handles = _events(ax, history)
    ax.set_yticks([VERSION_ROW, RUN_ROW, CHANGE_ROW], ["serving", "retrains", "model changes"])
    ax.set_ylim(-0.7, 2.7)
    ax.set_ylabel("model timeline")
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)
    else:
        ax.text(0.5, 0.5, "no retrain and no model change in this range", transform=ax.transAxes, ha="center",
                va="center", fontsize=8, color="dimgrey")


def _changes_everywhere(axes: list[Any], history: dict[str, Any]) -> None:
    """A thin line at each promotion and rollback, on every panel."""
    for event in history["events"]:
        tint = {"promotion": "tab:green", "rollback": "tab:orange"}.get(event["kind"])
        if tint is not None:
            moment = _times([event["ts"]])[0]
            for ax in axes:
                ax.axvline(moment, color=tint, linewidth=0.7, alpha=0.5, zorder=1)


def _box(ax: Any, height: int) -> tuple[int, int, int, int]:
    """The axes' pixels in the PNG, from the top left (a row index of the decoded image is y)."""
    extent = ax.get_window_extent()
    return (int(np.ceil(extent.x0)), int(np.ceil(height - extent.y1)), int(np.floor(extent.x1)),
            int(np.floor(height - extent.y0)))


def render(history: dict[str, Any], *, title: str) -> Rendered:
    """The four panels of `history` (symbol_history's dict, with at least one candle) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = history["candles"]["ts"]
    start, end = int(ts[0]), int(ts[-1])
    figure, axes = plt.subplots(4, 1, figsize=FIGSIZE, dpi=DPI, sharex=True,
                                gridspec_kw={"height_ratios": [3, 1.6, 1.6, 1.3]})
    try:
        price_ax, rate_ax, pnl_ax, timeline_ax = axes
        _price(price_ax, history)
        _win_rate(rate_ax, history)
        _pnl(pnl_ax, history)
        _timeline(timeline_ax, history, start, end)
        _changes_everywhere(list(axes), history)
        price_ax.set_title(title, fontsize=10)
        pad = 0 if end > start else timeframe_ms(history["timeframe"])  # one candle: a candle either side
        timeline_ax.set_xlim(_times([start - pad])[0], _times([end + pad])[0])
        timeline_ax.set_xlabel("market time (UTC)")
        for ax in axes:
            ax.grid(alpha=0.3)
        figure.tight_layout()
        figure.subplots_adjust(right=0.85)  # room for the timeline's legend
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
        width, height = (int(round(v)) for v in figure.get_size_inches() * DPI)
        panels = {name: _box(ax, height) for name, ax in zip(PANELS, axes, strict=True)}
    finally:
        plt.close(figure)
    return Rendered(buffer.getvalue(), width, height, panels)


def headline_title(history: dict[str, Any], headline: str | None = None) -> str:
    """`SYMBOL TIMEFRAME FROM to TO`, then the headline figures when given."""
    first = f"{history['symbol']} {history['timeframe']}  {history['from']} to {history['to']}"
    return f"{first}\n{headline}" if headline else first
