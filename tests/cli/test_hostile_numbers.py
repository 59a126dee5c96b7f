"""Numbers no one means, on the command line and in the store: one line and exit 2, or a plain report;
never exit 70 with an internal error.

The command line's limits are the configuration's own (read from the schema): `train --epochs` is
`training.epochs`, `train --days` is `training.days`, `download --days` is `market.backfill_days`.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from autoretrain.daemon.cli.arguments import schema_limits
from autoretrain.daemon.foundation.config import load_config
from tests.support.cli import run_ctl
from tests.support.market_script import SYM, Market

FIVE_THOUSAND_DIGITS = "1" * 5000


def _one_line(result: subprocess.CompletedProcess[str], code: int, *parts: str) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def _high(key_path: str) -> str:
    high = schema_limits(key_path)[2]
    assert high is not None
    return str(int(high))


@pytest.mark.parametrize(("args", "key_path"), [
    (["train", SYM, "--days", "1e300"], "training.days"),
    (["train", SYM, "--days", "1e308"], "training.days"),
    (["train", SYM, "--days", "inf"], "training.days"),
    (["train", SYM, "--epochs", "99999999999999999999"], "training.epochs"),
    (["train", SYM, "--epochs", str(int(_high("training.epochs")) + 1)], "training.epochs"),
    (["train", SYM, "--epochs", "\u0663"], "training.epochs"),  # an Arabic-Indic three is no ASCII number
    (["download", SYM, "--days", "1e308"], "market.backfill_days"),
    (["download", SYM, "--days", FIVE_THOUSAND_DIGITS], "market.backfill_days"),
])
def test_numbers_beyond_the_configuration_limits_are_a_bad_command_line(
        write_config: Callable[..., Path], args: list[str], key_path: str) -> None:
    line = _one_line(run_ctl("--config", str(write_config()), *args), 2, f"as {key_path} in the configuration")
    assert _high(key_path) in line  # the limit is stated, and it is the schema's
    assert len(line) < 400  # a 5,000-digit argument is not echoed back whole


@pytest.mark.parametrize(("args", "expected"), [
    (["signals", SYM, "--last", "1e30"], "expected a whole number from 1 to 100000, got '1e30'"),
    (["signals", SYM, "--last", "9" * 30], "out of range: expected a whole number from 1 to 100000"),
    (["candles", SYM, "--gaps", "-1"], "out of range: expected a whole number from 0 to 100000, got '-1'"),
    (["promote", SYM, FIVE_THOUSAND_DIGITS], "invalid version '111111111111'... (5000 characters)"),
    (["promote", SYM, "v" + FIVE_THOUSAND_DIGITS], "(5001 characters): expected a name such as v0007"),
    (["download", SYM, "--since", "9" * 5000], "invalid date '9999999999"),
])
def test_listing_sizes_versions_and_dates_out_of_any_range_are_a_bad_command_line(
        write_config: Callable[..., Path], args: list[str], expected: str) -> None:
    line = _one_line(run_ctl("--config", str(write_config()), *args), 2, expected)
    assert len(line) < 400


def test_the_highest_allowed_number_is_accepted(write_config: Callable[..., Path]) -> None:
    """The bound is the schema's, not a tighter one: the top value gets past the command line to the data check."""
    result = run_ctl("--config", str(write_config()), "train", SYM, "--epochs", _high("training.epochs"),
                     "--days", _high("training.days"))
    _one_line(result, 65, "no candles stored yet")


OUT_OF_RANGE_TIMES = [253_402_300_800_000, 2**62, 2**63 - 1, -(2**63)]  # 10000-01-01, and beyond int64's reach


@pytest.mark.parametrize("ts", OUT_OF_RANGE_TIMES)
def test_reports_on_a_store_holding_a_candle_no_calendar_can_show(write_config: Callable[..., Path], ts: int) -> None:
    path = write_config()
    config = load_config(path, env={})
    market = Market(config.db_path)
    market.history(30)
    market.play("WWLHW")
    market.close()
    with sqlite3.connect(config.db_path) as conn:  # as a hand edit, an old import or a damaged copy leaves it
        conn.execute("INSERT INTO candles SELECT series_id, ?, open, high, low, close, volume FROM candles"
                     " ORDER BY ts DESC LIMIT 1", (ts,))
    conn.close()
    for args in (["performance", SYM], ["performance", SYM, "--json"], ["candles", SYM], ["candles", SYM, "--json"],
                 ["signals", SYM]):
        result = run_ctl("--config", str(path), *args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    newest = json.loads(run_ctl("--config", str(path), "performance", SYM, "--json").stdout)["last_candle"]
    first = json.loads(run_ctl("--config", str(path), "candles", SYM, "--json").stdout)["first"]
    assert f"out-of-range time ({ts} ms)" in ((newest, first) if ts > 0 else (first,))
