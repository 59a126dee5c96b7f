"""What a configuration value may be: what JSON carries unchanged, and a number only when it is one.

The supervisor hands the resolved configuration to its children as JSON, and each child validates it
again; a value JSON cannot carry (inf or NaN, a date, bytes, a set, a lone surrogate) would be accepted
by the supervisor and refused, or changed, in every child. These checks run where the file is first read.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any

INT64_MAX = 2**63 - 1  # SQLite's integer, numpy's and torch's seeds: nothing bigger is meaningful here


def is_number(annotation: Any) -> bool:
    """int, float or an optional one: the fields a YAML boolean must not silently fill."""
    if annotation in (int, float):
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(arg in (int, float) for arg in typing.get_args(annotation))
    return False


def _check_text(value: str, where: str = "") -> None:
    prefix = f"{where}: " if where else ""
    if "\x00" in value:
        raise ValueError(f"{prefix}{value!r} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{prefix}{value!r} is not valid Unicode (a lone surrogate)") from None


def check_strings(value: Any) -> None:
    """The strings of a field (itself, or the items and keys of a list or mapping of them)."""
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                _check_text(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            for text in (key, item):
                if isinstance(text, str):
                    _check_text(text)


def check_json_value(value: Any, where: str = "") -> None:
    """Refuse what JSON cannot carry unchanged: dates, bytes, sets, inf/NaN, non-string keys, huge ints."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > INT64_MAX:
            raise ValueError(f"{where or 'value'}: integer out of range (at most {INT64_MAX} either way)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where or 'value'}: {value!r} is not a finite number")
    elif isinstance(value, str):
        _check_text(value, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json_value(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where or 'mapping'}: key {key!r} is not a string")
            _check_text(key, where)
            check_json_value(item, f"{where}.{key}" if where else key)
    else:
        raise ValueError(f"{where or 'value'}: a {type(value).__name__} ({value!r}) is not a string, number, boolean, "
                         "null, list or mapping")
