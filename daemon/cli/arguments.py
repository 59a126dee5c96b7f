"""Argument types and output helpers shared by the autoretrainctl subcommands.

Numbers on the command line have the same limits as the configuration keys they stand in for
(`--epochs` is `training.epochs`, ...): `config_int` and `config_float` read them from the pydantic
schema, so the two can never disagree. A number is ASCII digits only, and short: a 5,000-digit, a `1e308`
or a non-ASCII argument is refused as a bad command line (exit 2) before any command uses it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from autoretrain.daemon.foundation.config_schema import Config, check_symbol
from autoretrain.daemon.foundation.timeframes import parse_iso_ms, timeframe_ms

#: longer than any number these arguments take: refused before it is parsed at all
MAX_NUMBER_CHARS = 32
#: the most rows a listing argument (`signals --last`, `candles --gaps`) asks for
MAX_LISTED = 100_000
_INT_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


def symbol_arg(text: str) -> str:
    try:
        return check_symbol(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def timeframe_arg(text: str) -> str:
    try:
        timeframe_ms(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def date_arg(text: str) -> int:
    try:
        return parse_iso_ms(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_float(text: str) -> float:
    """A finite number greater than 0 (ASCII, short), for arguments no configuration key stands behind."""
    return float(_number_in(float, 0.0, False, None, True)(text))


def positive_int(text: str) -> int:
    """A whole number greater than 0 (ASCII, short), for arguments no configuration key stands behind."""
    return int(_number_in(int, 1, True, None, True)(text))


def _schema_field(key_path: str) -> FieldInfo:
    """The pydantic field of a configuration key such as `training.epochs`."""
    model: type[BaseModel] = Config
    *sections, name = key_path.split(".")
    for section in sections:
        annotation = model.model_fields[section].annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel), key_path
        model = annotation
    return model.model_fields[name]


def schema_limits(key_path: str) -> tuple[float | None, bool, float | None, bool]:
    """(low, low is inclusive, high, high is inclusive) of a configuration key, from its schema."""
    low: float | None = None
    high: float | None = None
    low_inclusive = high_inclusive = True
    for rule in _schema_field(key_path).metadata:
        if isinstance(rule, annotated_types.Ge):
            low, low_inclusive = float(rule.ge), True  # type: ignore[arg-type]
        elif isinstance(rule, annotated_types.Gt):
            low, low_inclusive = float(rule.gt), False  # type: ignore[arg-type]
        elif isinstance(rule, annotated_types.Le):
            high, high_inclusive = float(rule.le), True  # type: ignore[arg-type]
        elif isinstance(rule, annotated_types.Lt):
            high, high_inclusive = float(rule.lt), False  # type: ignore[arg-type]
    return low, low_inclusive, high, high_inclusive


def _limits_text(low: float | None, low_inclusive: bool, high: float | None, high_inclusive: bool) -> str:
    def shown(value: float) -> str:
        return str(int(value)) if value == int(value) else repr(value)

    if low is not None and high is not None and low_inclusive and high_inclusive:
        return f"from {shown(low)} to {shown(high)}"
    parts = []
    if low is not None:
        parts.append(f"{'at least' if low_inclusive else 'greater than'} {shown(low)}")
    if high is not None:
        parts.append(f"{'at most' if high_inclusive else 'less than'} {shown(high)}")
    return " and ".join(parts)


def _number_in(kind: type, low: float | None, low_inclusive: bool, high: float | None, high_inclusive: bool,
               where: str = "") -> Callable[[str], Any]:
    """An argparse type: a whole (`int`) or finite (`float`) ASCII number within the limits."""
    noun = "a whole number" if kind is int else "a number"
    limits = _limits_text(low, low_inclusive, high, high_inclusive)
    suffix = f" ({where})" if where else ""

    def parse(text: str) -> Any:
        shown = text if len(text) <= MAX_NUMBER_CHARS else f"{text[:MAX_NUMBER_CHARS]}... ({len(text)} characters)"
        pattern = _INT_TEXT if kind is int else _FLOAT_TEXT
        if len(text) > MAX_NUMBER_CHARS or not pattern.fullmatch(text.strip()):
            raise argparse.ArgumentTypeError(f"expected {noun} {limits}{suffix}, got {shown!r}")
        value = kind(text.strip())
        if not math.isfinite(value) or \
                (low is not None and (value < low if low_inclusive else value <= low)) or \
                (high is not None and (value > high if high_inclusive else value >= high)):
            raise argparse.ArgumentTypeError(f"out of range: expected {noun} {limits}{suffix}, got {shown!r}")
        return value

    return parse


def int_in(low: int | None, high: int | None) -> Callable[[str], int]:
    """A whole number from `low` to `high` (inclusive), for arguments no configuration key stands behind."""
    return _number_in(int, low, True, high, True)


def config_int(key_path: str) -> Callable[[str], int]:
    """A whole number within the limits of the configuration key `key_path` (e.g. `training.epochs`)."""
    return _number_in(int, *schema_limits(key_path), where=f"as {key_path} in the configuration")


def config_float(key_path: str) -> Callable[[str], float]:
    """A finite number within the limits of the configuration key `key_path` (e.g. `training.days`)."""
    return _number_in(float, *schema_limits(key_path), where=f"as {key_path} in the configuration")


def version_arg(text: str) -> str:
    """A model version as typed (`v0007` or `7`), refused here only when no version can be that long;
    the registry judges the rest, so its one message stays the authority on what a version is."""
    if len(text) > MAX_NUMBER_CHARS:
        raise argparse.ArgumentTypeError(f"invalid version {text[:12]!r}... ({len(text)} characters): expected a "
                                         "name such as v0007 (or its number, 7)")
    return text


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    """Print the result: JSON when --json was given, else the human-readable text."""
    if getattr(args, "json", False):
        json.dump(payload, sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    else:
        print(text)
    sys.stdout.flush()


def terminal_bar(args: argparse.Namespace, *, total: int, unit: str) -> Any:
    """A tqdm progress bar on stderr when it is an interactive terminal and no JSON was asked for, else None
    (scripts, logs and the journal never see one)."""
    if getattr(args, "json", False) or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    try:
        width = os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        width = 0
    return tqdm(total=total, unit=unit, unit_scale=True, file=sys.stderr, ncols=width if width >= 40 else 80)
