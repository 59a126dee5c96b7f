"""Reading `timestamp,open,high,low,close,volume` CSV files (ms UTC; `.csv` or `.csv.gz`), all or nothing.

Rows may come in any order (many exports are newest first); exact duplicate rows are collapsed; two
rows with the same timestamp and different values are an error, and so is a candle that closes after
the current time (a candle from the future is no closed candle). Any bad row makes the whole file
fail with one line naming the file, the line and the problem, so nothing half-read is ever stored.
What is read is bounded (`market/input_file.py`): regular files only, size and line length capped.
"""

from __future__ import annotations

import csv
import io
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from autoretrain.daemon.foundation import candles as candle_ops
from autoretrain.daemon.foundation.errors import DataError
from autoretrain.daemon.foundation.timeframes import iso, timeframe_ms
from autoretrain.daemon.market.input_file import read_bounded_text
from autoretrain.ipc.candles import CANDLE_DTYPE

CSV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
# A timestamp below this (2001-09-09 in ms) is taken for seconds, which is a common export mistake.
_MIN_PLAUSIBLE_MS = 1_000_000_000_000
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")


@dataclass(frozen=True)
class CsvCandles:
    candles: np.ndarray  # sorted, unique
    rows: int
    duplicates: int


def _parse_header(path: Path, text: str) -> dict[str, int]:
    first_line = text.split("\n", 1)[0].strip().lstrip("\ufeff")
    if not first_line:
        raise DataError(f"{path}: empty file (expected a header: {','.join(CSV_COLUMNS)})")
    header = [name.strip().lower() for name in next(csv.reader([first_line]))]
    missing = [name for name in CSV_COLUMNS if name not in header]
    if missing:
        raise DataError(f"{path} line 1: missing column {', '.join(repr(m) for m in missing)} "
                        f"(header is {first_line!r}; expected {','.join(CSV_COLUMNS)})")
    duplicated = sorted({name for name in header if header.count(name) > 1 and name in CSV_COLUMNS})
    if duplicated:
        raise DataError(f"{path} line 1: column {duplicated[0]!r} appears twice")
    return {name: header.index(name) for name in CSV_COLUMNS}


def _numeric_columns(path: Path, frame: pd.DataFrame, columns: dict[str, int]) -> dict[str, np.ndarray]:
    values: dict[str, np.ndarray] = {}
    for name, position in columns.items():
        raw = frame.iloc[:, position].str.strip()
        parsed = pd.to_numeric(raw, errors="coerce")
        nan_text = raw.str.lower().isin({"nan", "-nan", "+nan", "inf", "-inf", "+inf", "infinity", "-infinity"})
        bad = parsed.isna().to_numpy() & ~nan_text.to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            text = raw.iloc[row]
            problem = "empty value" if text == "" else f"non-numeric value {text[:40]!r}"
            raise DataError(f"{path} line {frame.index[row] + 2}: {problem} in column {name!r}")
        values[name] = parsed.to_numpy(dtype=np.float64)
    return values


def _fast_parse(text: str, columns: dict[str, int]) -> np.ndarray | None:
    """All rows as candles when every field is a plain number; None sends the file to the careful path."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # more fields than the header
            frame = pd.read_csv(io.StringIO(text), header=0, engine="c", dtype=np.float64, index_col=False)
    except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError):
        return None
    ordered = frame.iloc[:, list(columns.values())].to_numpy()
    if len(ordered) == 0 or not np.isfinite(ordered).all():
        return None
    ts = ordered[:, 0]
    if (ts != np.floor(ts)).any() or (ts < _MIN_PLAUSIBLE_MS).any() or (ts > candle_ops.LATEST_TS_MS).any():
        return None
    batch = np.empty(len(ordered), dtype=CANDLE_DTYPE)
    batch["ts"] = ts.astype(np.int64)
    for position, name in enumerate(("open", "high", "low", "close", "volume"), start=1):
        batch[name] = ordered[:, position]
    return batch


def _too_many_fields(path: Path, text: str) -> str:
    """The message for a file with a row longer than its header (pandas would drop the extra fields)."""
    rows = csv.reader(io.StringIO(text))
    width = len(next(rows))
    for number, row in enumerate(rows, start=2):
        if len(row) > width:
            return f"{path} line {number}: {len(row)} fields, the header has {width}"
    return f"{path}: a row has more fields than the header"


def _careful_parse(path: Path, text: str, columns: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Candles and the file line of each, raising DataError with the line of the first bad field."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False,
                                skip_blank_lines=False, header=0, engine="c", index_col=False)
    except pd.errors.ParserWarning:
        raise DataError(_too_many_fields(path, text)) from None
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1]
        raise DataError(f"{path}: malformed CSV: {detail}") from None
    frame = frame[~(frame == "").all(axis=1)] if len(frame.columns) else frame
    if len(frame) == 0:
        raise DataError(f"{path}: no candles after the header")
    values = _numeric_columns(path, frame, columns)
    line_of = frame.index.to_numpy() + 2

    ts = values["timestamp"]
    finite_ts = np.isfinite(ts)
    if not finite_ts.all():
        row = int(np.flatnonzero(~finite_ts)[0])
        raise DataError(f"{path} line {line_of[row]}: timestamp is not a number")
    not_integer = ts != np.floor(ts)
    if not_integer.any():
        row = int(np.flatnonzero(not_integer)[0])
        raise DataError(f"{path} line {line_of[row]}: timestamp {ts[row]!r} is not a whole number of milliseconds")
    too_small = ts < _MIN_PLAUSIBLE_MS
    if too_small.any():
        row = int(np.flatnonzero(too_small)[0])
        raise DataError(f"{path} line {line_of[row]}: timestamp {int(ts[row])} is not in milliseconds "
                        "(seconds? expected ms since 1970-01-01 UTC)")
    too_large = ts > candle_ops.LATEST_TS_MS
    if too_large.any():
        row = int(np.flatnonzero(too_large)[0])
        raw = frame.iloc[row, columns["timestamp"]].strip()
        raise DataError(f"{path} line {line_of[row]}: timestamp {raw} is out of range "
                        "(later than the year 9999; expected ms since 1970-01-01 UTC)")
    batch = np.empty(len(frame), dtype=CANDLE_DTYPE)
    batch["ts"] = ts.astype(np.int64)
    for name in ("open", "high", "low", "close", "volume"):
        batch[name] = values[name]
    return batch, line_of


def _future_row(batch: np.ndarray, timeframe: str, now_ms: int) -> int | None:
    """Index of the first row (in file order) whose candle closes after `now_ms`: not a closed candle."""
    late = np.flatnonzero(batch["ts"] > now_ms - timeframe_ms(timeframe))
    return int(late[0]) if len(late) else None


def _checked(path: Path, batch: np.ndarray, line_of: np.ndarray, timeframe: str, now_ms: int) -> CsvCandles:
    """Validated, sorted, de-duplicated closed candles; DataError naming the line of the first problem."""
    _, rejected = candle_ops.validate(batch, timeframe)
    first = min(rejected, key=lambda r: r.index) if rejected else None
    future = _future_row(batch, timeframe, now_ms)
    if future is not None and (first is None or future < first.index):
        ts = int(batch["ts"][future])
        raise DataError(f"{path} line {line_of[future]}: candle at {iso(ts)} closes at {iso(ts + timeframe_ms(timeframe))}, "
                        f"after the current time {iso(now_ms)}: a candle from the future is not a closed candle")
    if first is not None:
        raise DataError(f"{path} line {line_of[first.index]}: invalid candle at {first.describe()}")
    unique, conflicts = candle_ops.normalise(batch)
    if conflicts:
        conflict = min(conflicts, key=lambda c: min(c.first_index, c.second_index))
        lines = sorted((line_of[conflict.first_index], line_of[conflict.second_index]))
        raise DataError(f"{path} lines {lines[0]} and {lines[1]}: two different candles for the same "
                        f"timestamp {conflict.ts}")
    return CsvCandles(unique, rows=len(batch), duplicates=len(batch) - len(unique))


def read_candle_csv(path: str | Path, timeframe: str, *, now_ms: int | None = None) -> CsvCandles:
    """Read and validate a whole file; raises DataError naming the file and line on the first problem.

    Only candles closed by `now_ms` (default: the wall clock) are accepted. Files of plain numbers take
    a fast all-numeric parse; anything else (blank lines, text, NaN, empty fields, ragged rows) is
    re-read field by field so that an error names the exact line.
    """
    path = Path(path)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    text = read_bounded_text(path)
    columns = _parse_header(path, text)
    fast = _fast_parse(text, columns)
    if fast is not None and not _BLANK_LINE.search(text.rstrip()):
        return _checked(path, fast, np.arange(len(fast)) + 2, timeframe, now)
    batch, line_of = _careful_parse(path, text, columns)
    return _checked(path, batch, line_of, timeframe, now)
