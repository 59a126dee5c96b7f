"""`autoretrainctl performance` and `signals` as real subprocesses on a real store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.config import load_config
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.store.retrain_runs import REJECTED
from autoretrain.models.registry import Registry
from tests.support.cli import run_ctl
from tests.support.market_script import EX, SYM, TF, Market, ts_at


@pytest.fixture
def filled(write_config: Callable[..., Path]) -> tuple[Path, Config]:
    """A store with history, signals of two models (one pending), a rejected retrain; v0002 promoted."""
    path = write_config({"training": {"min_candles": 20}})
    config = load_config(path, env={})
    market = Market(config.db_path)
    market.history(30)
    market.play("WWLHW")
    market.activate("v0002")
    market.play("LLLWH", "v0002")
    market.play("W", "v0002", settle=False)
    runs = market.db.runs
    runs.finish(runs.start(EX, SYM, TF, trigger="periodic", requested_market_ts=ts_at(36)), REJECTED,
                data_end_ts=ts_at(36))
    market.close()
    registry = Registry(config.models_dir)
    registry.version_dir(SYM, TF, "v0002").mkdir(parents=True)
    registry.promote(SYM, TF, "v0002")
    return path, config


def test_performance_text(filled: tuple[Path, Config]) -> None:
    path, _ = filled
    result = run_ctl("performance", SYM, "--config", str(path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "binance BTC/USDT 1h: 41 candles, newest 2024-01-02T16:00:00Z" in out
    assert "model: v0002 promoted; current window: v0002 since 2024-01-02T11:00:00Z" in out
    assert "signals: 11 recorded (5 BUY, 4 SELL, 2 HOLD), 1 awaiting their outcome" in out
    assert [line.split()[:5] for line in out.splitlines() if line.strip().startswith("since start")] == [
        ["since", "start", "8", "4", "50.0%"]]
    assert [line.split()[:5] for line in out.splitlines() if line.strip().startswith("current model")] == [
        ["current", "model", "4", "1", "25.0%"]]
    assert "last retrain: 2024-01-02T12:00:00Z rejected (trigger periodic)" in out
    assert ("needs retrain: False — no retrain: cooldown after the rejected retrain at 2024-01-02T12:00:00Z: "
            "no retrain before 2024-01-03T00:00:00Z (auto_training.cooldown_hours)") in out
    assert result.stderr == ""


def test_performance_json_matches_the_store(filled: tuple[Path, Config]) -> None:
    path, config = filled
    result = run_ctl("performance", SYM, "--timeframe", TF, "--json", "--config", str(path))
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    with Database(config.db_path) as db:
        expected = db.read_performance(EX, SYM, TF, window=config.signals.performance_window,
                                       current_window=config.auto_training.rolling_window).as_dict()
    assert {k: payload[k] for k in expected} == expected
    assert payload["promoted_version"] == "v0002"
    assert payload["decision"]["retrain"] is False and payload["decision"]["reason"].startswith("cooldown after")
    assert payload["by_version"]["algorithms only"]["signals"] == 4


def test_performance_while_the_daemon_holds_the_write_lock(filled: tuple[Path, Config]) -> None:
    """WAL: a report reads beside a writer in the middle of a transaction (a running daemon)."""
    path, config = filled
    from autoretrain.daemon.store.connection import connect

    writer = connect(config.db_path)
    writer.execute("BEGIN IMMEDIATE")
    try:
        result = run_ctl("performance", SYM, "--json", "--config", str(path), timeout=20)
    finally:
        writer.execute("ROLLBACK")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["since_start"]["signals"] == 8


def test_signals_text_and_json(filled: tuple[Path, Config]) -> None:
    path, _ = filled
    result = run_ctl("signals", SYM, "--last", "3", "--config", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "binance BTC/USDT 1h: newest 3 signals, newest first"
    assert lines[1].startswith("2024-01-02T16:00:00Z  BUY ") and lines[1].endswith("v0002  | pending")
    assert lines[2].startswith("2024-01-02T15:00:00Z  HOLD") and "move +0.72%" in lines[2] and "PnL" not in lines[2]
    assert lines[3].startswith("2024-01-02T14:00:00Z  BUY ") and "correct  PnL +0.52%" in lines[3]
    assert len(lines) == 4

    result = run_ctl("signals", SYM, "--json", "--config", str(path))
    payload = json.loads(result.stdout)
    assert [s["time"] for s in payload["signals"]][:2] == ["2024-01-02T16:00:00Z", "2024-01-02T15:00:00Z"]
    assert len(payload["signals"]) == 11 and payload["signals"][-1]["model_version"] is None
    assert [s["status"] for s in payload["signals"]].count("pending") == 1
    oldest = payload["signals"][-1]
    assert oldest["outcome"]["correct"] is True and oldest["outcome"]["exit_time"] == "2024-01-02T07:00:00Z"


def test_no_signals_yet(write_config: Callable[..., Path]) -> None:
    path = write_config()
    market = Market(load_config(path, env={}).db_path)
    market.history(3)
    market.close()
    result = run_ctl("signals", SYM, "--config", str(path))
    assert (result.returncode, result.stdout.strip()) == (0, "binance BTC/USDT 1h: no signals recorded yet")
    result = run_ctl("performance", SYM, "--config", str(path))
    assert result.returncode == 0 and "signals: 0 recorded" in result.stdout
    assert "only 3 candles stored; training needs 1000 (training.min_candles)" in result.stdout


@pytest.mark.parametrize("args, code, message", [
    (["performance", "ETH/USDT"], 66, "nothing stored for binance ETH/USDT 1h: no candles and no signals"),
    (["signals", SYM, "--timeframe", "4h"], 66, "nothing stored for binance BTC/USDT 4h"),
    (["performance", "BTCUSDT"], 2, "invalid symbol 'BTCUSDT'"),
    (["signals", SYM, "--last", "0"], 2, "out of range: expected a whole number from 1 to 100000, got '0'"),
    (["performance", SYM, "--timeframe", "7x"], 2, "invalid timeframe '7x'"),
])
def test_bad_input_is_one_clear_line(filled: tuple[Path, Config], args: list[str], code: int, message: str) -> None:
    path, _ = filled
    result = run_ctl(*args, "--config", str(path))
    assert result.returncode == code
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert result.stderr.startswith("autoretrainctl")


def test_no_store_yet(write_config: Callable[..., Path]) -> None:
    path = write_config()
    for command in ("performance", "signals"):
        result = run_ctl(command, SYM, "--config", str(path))
        assert result.returncode == 66
        assert result.stderr.startswith("autoretrainctl: error: no store at ") and len(result.stderr.splitlines()) == 1
