"""Argument types and output helpers shared by the autoretrainctl subcommands."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

from autoretrain.daemon.foundation.config_schema import check_symbol
from autoretrain.daemon.foundation.timeframes import parse_iso_ms, timeframe_ms


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
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0: {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


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
