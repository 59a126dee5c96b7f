"""CSV import: real data, any row order, all-or-nothing on malformed files, one clear line per error."""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autoretrain.daemon.foundation.config import load_config
from autoretrain.daemon.foundation.errors import DataError, NoInputError
from autoretrain.daemon.foundation.timeframes import HOUR_MS
from autoretrain.daemon.market import input_file
from autoretrain.daemon.market.csv_file import read_candle_csv
from autoretrain.daemon.store.database import Database
from tests.support.cli import run_ctl
from tests.support.data import random_walk_candles

HEADER = "timestamp,open,high,low,close,volume"
# the hour open now (it closes after now; read when the files are made, not at import: a run can cross the
# hour), five years ahead, the last hour of 9999: no closed candle among them
FIVE_YEARS_MS = 5 * 365 * 24 * HOUR_MS
LAST_HOUR_OF_9999 = 253_402_297_200_000


def csv_text(candles: np.ndarray, header: str = HEADER) -> str:
    rows = [f"{ts},{o!r},{h!r},{lo!r},{c!r},{v!r}" for ts, o, h, lo, c, v in candles.tolist()]
    return "\n".join([header, *rows]) + "\n"


def stored(config: Path, symbol: str = "BTC/USDT") -> np.ndarray:
    with Database(load_config(config, env={}).db_path) as db:
        return db.candles.window("binance", symbol, "1h")


def import_csv(config: Path, path: Path, *extra: str) -> object:
    return run_ctl("--config", str(config), "import-csv", str(path), "--symbol", "BTC/USDT", "--timeframe", "1h", *extra)


@pytest.mark.realdata
def test_real_btc_1h_file_imports_with_the_documented_gaps(write_config: Callable[..., Path], real_1h: Path) -> None:
    config = write_config()
    first = import_csv(config, real_1h, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["inserted"] == 73_265
    report = run_ctl("--config", str(config), "candles", "BTC/USDT", "--timeframe", "1h", "--json")
    summary = json.loads(report.stdout)
    assert (summary["count"], summary["gaps"], summary["missing"]) == (73_265, 27, 122)
    assert summary["first"] == "2018-01-01T00:00:00Z" and summary["last"] == "2026-05-16T18:00:00Z"
    before = stored(config)
    second = import_csv(config, real_1h, "--json")
    result = json.loads(second.stdout)
    assert (result["inserted"], result["updated"], result["unchanged"]) == (0, 0, 73_265)
    np.testing.assert_array_equal(stored(config), before)


def test_newest_first_file_imports_the_same_as_oldest_first(tmp_path: Path, write_config) -> None:
    candles = random_walk_candles(300)
    oldest_first = tmp_path / "asc.csv"
    newest_first = tmp_path / "desc.csv.gz"
    oldest_first.write_text(csv_text(candles))
    with gzip.open(newest_first, "wt") as handle:
        handle.write(csv_text(candles[::-1]))
    a = read_candle_csv(oldest_first, "1h").candles
    b = read_candle_csv(newest_first, "1h").candles
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, candles)
    config = write_config()
    assert import_csv(config, newest_first).returncode == 0
    np.testing.assert_array_equal(stored(config), candles)


def test_exact_duplicates_collapse_and_extra_columns_are_ignored(tmp_path: Path) -> None:
    candles = random_walk_candles(20)
    text = csv_text(np.concatenate([candles, candles[5:8]]))
    lines = text.splitlines()
    with_extra = "\n".join([lines[0] + ",trades"] + [line + ",7" for line in lines[1:]]) + "\n"
    path = tmp_path / "dup.csv"
    path.write_text(with_extra)
    loaded = read_candle_csv(path, "1h")
    assert (loaded.rows, loaded.duplicates, len(loaded.candles)) == (23, 3, 20)


def _malformed_files(candles: np.ndarray) -> dict[str, tuple[str, str]]:
    open_now = int(time.time() * 1000) // HOUR_MS * HOUR_MS
    good = csv_text(candles).splitlines()
    conflicting = good[:6] + [good[3].replace(good[3].split(",")[5], "12345.0")] + good[6:]
    invalid = list(good)
    parts = invalid[4].split(",")
    parts[2] = str(float(parts[4]) * 0.5)  # high below close
    invalid[4] = ",".join(parts)
    non_numeric = list(good)
    non_numeric[7] = non_numeric[7].replace(non_numeric[7].split(",")[3], "abc")
    return {
        "missing_column.csv": ("timestamp,open,high,low,close\n1704067200000,1,1,1,1\n",
                               r"line 1: missing column 'volume'"),
        "non_numeric.csv": ("\n".join(non_numeric) + "\n", r"line 8: non-numeric value 'abc' in column 'low'"),
        "conflict.csv": ("\n".join(conflicting) + "\n",
                         r"lines 4 and 7: two different candles for the same timestamp"),
        "invalid_candle.csv": ("\n".join(invalid) + "\n", r"line 5: invalid candle at .*high below open or close"),
        "empty.csv": ("", r"empty file"),
        "header_only.csv": (HEADER + "\n", r"no candles after the header"),
        "seconds.csv": (HEADER + "\n1704067200,1,1,1,1,1\n", r"line 2: timestamp 1704067200 is not in milliseconds"),
        "nan_price.csv": ("\n".join(good[:3] + [good[3].replace(good[3].split(",")[4], "nan")] + good[4:]) + "\n",
                          r"line 4: invalid candle at .*non-finite value"),
        "misaligned.csv": (HEADER + f"\n{1704067200000 + 60_000},1,1,1,1,1\n", r"line 2: invalid candle at .*not aligned to 1h"),
        "ragged.csv": (HEADER + "\n1704067200000,1,1,1,1,1\n1704070800000,1,1,1,1,1,9,9\n", r"malformed CSV: .*line 3"),
        "empty_field.csv": (HEADER + "\n1704067200000,1,,1,1,1\n", r"line 2: empty value in column 'high'"),
        "extra_field_every_row.csv": (HEADER + "\n1704067200000,1,2,0.5,1.5,10,99\n1704070800000,1,2,0.5,1.5,10,99\n",
                                      r"line 2: 7 fields, the header has 6"),
        "timestamp_too_large.csv": (HEADER + "\n1704067200000,1,1,1,1,1\n99999999999999999999,1,1,1,1,1\n",
                                    r"line 3: timestamp 99999999999999999999 is out of range"),
        "timestamp_1e30.csv": (HEADER + "\n1e30,1,1,1,1,1\n", r"line 2: timestamp 1e30 is out of range"),
        "blank_line_then_bad.csv": ("\n".join(good[:3] + ["", invalid[4]]) + "\n",
                                    r"line 5: invalid candle at .*high below open or close"),
        "open_now.csv": ("\n".join(good[:3] + [f"{open_now},1,2,0.5,1.5,10"] + good[3:]) + "\n",
                         r"line 4: candle at .* closes at .*, after the current time .*: a candle from the future"),
        "in_five_years.csv": ("\n".join(good + [f"{open_now + FIVE_YEARS_MS},1,2,0.5,1.5,10"]) + "\n",
                              r"line 12: candle at .* after the current time .*: a candle from the future"),
        "year_9999.csv": ("\n".join(good + [f"{LAST_HOUR_OF_9999},1,2,0.5,1.5,10"]) + "\n",
                          r"line 12: candle at 9999-12-31T23:00:00Z closes at out-of-range time .*a candle from "
                          r"the future"),
        "year_9999_careful_path.csv": (HEADER + f"\n1704067200000,1,2,0.5,1.5,10\n{LAST_HOUR_OF_9999},1,2,0.5,1.5,\n",
                                       r"line 3: empty value in column 'volume'"),  # the first problem is named
        "header_longer_than_a_line_may_be.csv": (HEADER + ",x" * 70_000 + "\n1704067200000,1,2,0.5,1.5,10\n",
                                                 r"line 1: longer than 8192 bytes"),
        "data_line_too_long.csv": ("\n".join(good[:4] + [good[4] + " " * 9000] + good[5:]) + "\n",
                                   r"line 5: longer than 8192 bytes"),
    }


@pytest.mark.parametrize("name", list(_malformed_files(random_walk_candles(10)).keys()))
def test_malformed_csv_is_one_clear_line_and_stores_nothing(tmp_path: Path, write_config, name: str) -> None:
    config = write_config()
    existing = random_walk_candles(50, start_ms=1_600_000_000_000 // HOUR_MS * HOUR_MS, seed=9)
    with Database(load_config(config, env={}).db_path) as db:
        db.candles.upsert("binance", "BTC/USDT", "1h", existing)
    before = stored(config)
    assert len(before) == 50

    text, expected = _malformed_files(random_walk_candles(10))[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError, match=expected):
        read_candle_csv(path, "1h")
    result = import_csv(config, path)
    assert result.returncode == 65, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"autoretrainctl: error: {path}"), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    np.testing.assert_array_equal(stored(config), before)


def test_missing_and_unreadable_files_are_clear_errors(tmp_path: Path, write_config) -> None:
    config = write_config()
    missing = import_csv(config, tmp_path / "nope.csv")
    assert missing.returncode == 66
    assert missing.stderr.strip() == f"autoretrainctl: error: {tmp_path / 'nope.csv'}: no such file"
    corrupt = tmp_path / "broken.csv.gz"
    corrupt.write_bytes(gzip.compress(csv_text(random_walk_candles(100)).encode())[:200])
    result = import_csv(config, corrupt)
    assert result.returncode == 65 and "cannot read" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_arguments_are_one_line_usage_errors(write_config, tmp_path: Path) -> None:
    config = write_config()
    path = tmp_path / "x.csv"
    path.write_text(csv_text(random_walk_candles(3)))
    for args in (["import-csv", str(path), "--symbol", "BTCUSDT", "--timeframe", "1h"],
                 ["import-csv", str(path), "--symbol", "BTC/USDT", "--timeframe", "hourly"],
                 ["import-csv", str(path), "--timeframe", "1h"]):
        result = run_ctl("--config", str(config), *args)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1 and "error:" in result.stderr


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_special_files_are_refused_at_once_in_one_line(tmp_path: Path, write_config, kind: str) -> None:
    config = write_config()
    if kind == "fifo":
        path = tmp_path / "candles.csv"
        os.mkfifo(path)  # nobody writes: opening it for reading would block for ever
    else:
        path = Path("/dev/zero") if kind == "device" else tmp_path
    started = time.monotonic()
    with pytest.raises(NoInputError):
        read_candle_csv(path, "1h")
    result = import_csv(config, path)
    assert time.monotonic() - started < 60  # neither call blocked nor read /dev/zero until memory ran out
    assert result.returncode == 66, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    expected = {"fifo": "is a FIFO (named pipe), not a regular file", "device": "is a device, not a regular file",
                "directory": "is a directory, not a CSV file"}[kind]
    assert result.stderr.strip() == f"autoretrainctl: error: {path}: {expected}" + \
        (": only regular files are read" if kind != "directory" else "")


def test_a_file_larger_than_the_bound_is_refused_before_it_is_read(tmp_path: Path, write_config) -> None:
    config = write_config()
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:  # sparse: 1 GiB and a byte, on no disk space
        handle.truncate(input_file.MAX_INPUT_BYTES + 1)
    result = import_csv(config, path)
    assert result.returncode == 65, result.stderr
    assert result.stderr.strip() == (f"autoretrainctl: error: {path}: {input_file.MAX_INPUT_BYTES + 1} bytes, more "
                                     f"than {input_file.MAX_INPUT_BYTES} (1024 MiB), the most a candle file may "
                                     "hold: split it, or import it in parts")


def test_a_file_without_line_breaks_is_refused_after_the_first_chunk(tmp_path: Path) -> None:
    path = tmp_path / "zeros.csv"
    path.write_bytes(b"0" * (64 * 2**20))
    with pytest.raises(DataError, match="line 1: longer than 8192 bytes"):
        read_candle_csv(path, "1h")


def test_a_gzip_bomb_stops_at_the_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = csv_text(random_walk_candles(40_000, start_ms=1_500_000_000_000 // HOUR_MS * HOUR_MS))
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(gzip.compress(rows.encode()))
    assert read_candle_csv(path, "1h").rows == 40_000  # within the bound it is an ordinary file
    monkeypatch.setattr(input_file, "MAX_INPUT_BYTES", len(rows) - 1)  # one byte less than it inflates to
    with pytest.raises(DataError, match=rf"more than {len(rows) - 1} bytes .* of data, the most a candle file may hold"):
        read_candle_csv(path, "1h")
