"""The choices a backtest compares on the same candles, each as a change to the configuration.

Every variant starts from the configuration in use (with the command line's `--set` applied); the
fixed variants then overwrite what defines them, so `guide` is always the guide as written whatever
the configured policy says. `hold` replays nothing: it is the close-to-close return of the market.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autoretrain.daemon.foundation.errors import UsageError


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    model: bool = True  # False: the algorithms alone
    retrains: bool = True  # False: one model trained at the start, never replaced
    replays: bool = True  # False: buy and hold, no signals


GUIDE_AS_WRITTEN: dict[str, Any] = {
    "auto_training": {"enabled": True, "win_rate_scope": "cumulative", "min_signals": 20, "min_win_rate_threshold": 0.45,
                      "first_model_signals": 100, "max_days_between_retrain": 30, "min_trades_before_retrain": 50,
                      "cooldown_hours": 0, "train_at_start": False, "triggers": ["performance"],
                      "max_retrains_per_day": 1000, "bench_t": -20.0},
    "promotion": {"rule": "guide", "min_improvement": 0.0, "require_significance": False},
    "training": {"warm_start": False},
}

VARIANTS: dict[str, Variant] = {variant.name: variant for variant in (
    Variant("guide", "the guide's rules as written: the cumulative win rate below 45 % after 20 signals, a first "
                     "model after 100 signals, 30 days and 50 signals, no cooldown or daily limit, no training at "
                     "start, no warm start, promotion on new > old (no test), the model never leaves the vote",
            GUIDE_AS_WRITTEN),
    Variant("policy", "the configured policy (auto_training.*, promotion.*, training.warm_start)"),
    Variant("guide_promotion", "the configured policy, but promoting by the guide's bare rule (new > old, no test)",
            {"promotion": {"rule": "guide"}}),
    Variant("win_rate_trigger", "the configured policy, but retraining on the guide's win-rate trigger "
                                "(auto_training.triggers: [performance]) instead of the configured triggers",
            {"auto_training": {"triggers": ["performance"]}}),
    Variant("no_warm_start", "the configured policy without warm-start challengers (full retrains only)",
            {"training": {"warm_start": False}}),
    Variant("static", "one model trained at the start (promoted whatever its score), never retrained",
            {"auto_training": {"enabled": False}}, retrains=False),
    Variant("schedule", "retrain every auto_training.max_days_between_retrain days only (no performance "
                        "trigger), a first model at the start",
            {"auto_training": {"enabled": True, "min_win_rate_threshold": 0.0, "first_model_signals": 10**9,
                               "train_at_start": True, "triggers": []}}),
    Variant("algorithms", "the rule-based algorithms alone, no model", {"auto_training": {"enabled": False}},
            model=False),
    Variant("hold", "buy at the first candle's close and hold to the last (no fee)", replays=False),
)}
DEFAULT_VARIANTS = tuple(VARIANTS)


def pick_variants(text: str | None) -> list[Variant]:
    """`--variants guide,policy,...` (default: all of them), in the order given, `static` always included
    because every comparison is against it."""
    names = [name.strip() for name in (text or ",".join(DEFAULT_VARIANTS)).split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        raise UsageError(f"unknown variant {', '.join(unknown) or '(none given)'}: choose from {', '.join(VARIANTS)}")
    if "static" not in names:
        names.insert(0, "static")
    return [VARIANTS[name] for name in dict.fromkeys(names)]


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in, section by section (nested mappings merge, anything else replaces)."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse_set(assignments: list[str]) -> dict[str, Any]:
    """`--set auto_training.min_win_rate_threshold=0.5` ... as nested overrides; values are YAML scalars."""
    import yaml

    overrides: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(part.isidentifier() for part in parts):
            raise UsageError(f"--set {assignment!r}: expected KEY=VALUE with a dotted key, e.g. "
                             "auto_training.min_win_rate_threshold=0.5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise UsageError(f"--set {assignment!r}: the value is not a YAML scalar") from None
        node = overrides
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UsageError(f"--set {assignment!r}: {part} is set twice, once as a value")
        node[parts[-1]] = value
    return overrides
