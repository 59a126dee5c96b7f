"""Configuration: defaults, partial files, environment overrides and one-line errors with exit 78."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from autoretrain.daemon.foundation.config import build_config, load_config
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import EX_CONFIG, ConfigError
from tests.support.cli import run_ctl
from tests.support.data import ROOT


def test_shipped_config_yaml_holds_exactly_the_defaults() -> None:
    shipped = load_config(ROOT / "config.yaml", env={})
    assert shipped == build_config({}, base=ROOT, env={})


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("# nothing but a comment\n")
    config = load_config(path, env={})
    assert config.auto_training.min_trades_before_retrain == 50
    assert config.auto_training.max_days_between_retrain == 30
    assert config.auto_training.min_win_rate_threshold == 0.45
    assert config.training.epochs == 50 and config.training.patience == 10 and config.training.min_candles == 1000
    assert config.heartbeat_interval == 300


def test_partial_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("market:\n  symbols: [ETH/USDT, BTC/USDT]\ntraining:\n  epochs: 7\n")
    config = load_config(path, env={})
    assert config.market.symbols == ["ETH/USDT", "BTC/USDT"]
    assert config.training.epochs == 7
    assert config.training.days == 180
    assert config.market.exchange == "binance"


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "config.yaml"
    path.write_text("paths: {state_dir: ./state}\nlogging: {file: logs/trading.log}\n")
    config = load_config(path, env={})
    assert config.state_dir == tmp_path / "etc" / "state"
    assert config.runtime_dir == tmp_path / "etc" / "state" / "run"
    assert config.logging.file == str(tmp_path / "etc" / "logs" / "trading.log")
    assert config.control_endpoint == f"ipc://{tmp_path / 'etc' / 'state' / 'run' / 'control.sock'}"


def test_systemd_directories_override_paths(tmp_path: Path) -> None:
    env = {"STATE_DIRECTORY": str(tmp_path / "lib"), "RUNTIME_DIRECTORY": str(tmp_path / "run")}
    config = build_config({"paths": {"state_dir": "/nonexistent"}}, base=tmp_path, env=env)
    assert config.state_dir == tmp_path / "lib"
    assert config.db_path == tmp_path / "lib" / "autoretrain.db"
    assert config.runtime_dir == tmp_path / "run"


def test_config_env_variable_is_used_and_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text("heartbeat_interval: 60\n")
    assert load_config(None, env={"AUTORETRAIN_CONFIG": str(path)}).heartbeat_interval == 60
    with pytest.raises(ConfigError, match=r"config file not found: .*missing.yaml \(from \$AUTORETRAIN_CONFIG\)"):
        load_config(None, env={"AUTORETRAIN_CONFIG": str(tmp_path / "missing.yaml")})
    monkeypatch.chdir(tmp_path)
    assert load_config(None, env={}) == build_config({}, base=tmp_path, env={})


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("training:\n  epochs: 0\n", "training.epochs", "greater than or equal to 1"),
        ("training:\n  epochs: many\n", "training.epochs", "valid integer"),
        ("market:\n  symbolz: [BTC/USDT]\n", "market.symbolz", "unknown key"),
        ("nonsense: 1\n", "nonsense", "unknown key"),
        ("auto_training:\n  min_win_rate_threshold: 1.5\n", "auto_training.min_win_rate_threshold", "less than or equal to 1"),
        ("market:\n  timeframe: 7x\n", "market.timeframe", "invalid timeframe"),
        ("market:\n  symbols: [BTCUSDT]\n", "market.symbols", "expected BASE/QUOTE"),
        ("market:\n  symbols: []\n", "market.symbols", "at least 1"),
        ("market:\n  source: kraken\n", "market.source", "'ccxt', 'csv' or 'simulated'"),
        ("market:\n  source: csv\n", "market", "no file for BTC/USDT"),
        ("control:\n  endpoint: ipc://@autoretrain\n", "control.endpoint", "abstract-namespace"),
        ("control:\n  endpoint: tcp://0.0.0.0:5555\n", "control.endpoint", "loopback only"),
        ("market:\n  simulated:\n    regimes: [{kind: sideways, candles: 10}]\n", "market.simulated.regimes[0].kind", "momentum"),
        ("market:\n  simulated:\n    start: yesterday\n", "market.simulated.start", "invalid date"),
        ("training:\n  days: 15\n  min_candles: 400\n", "training.days", "hold at most 360 1h candles"),
        ("market:\n  exchange_params: {timeout: abc}\n", "market.exchange_params", "timeout must be int or float"),
        ("market:\n  exchange_params: {enableRateLimit: 1}\n", "market.exchange_params", "must be bool"),
        ("market:\n  timeframe: 1d\n", "training.days", "fewer than training.min_candles (1000)"),
        ("promotion:\n  eval_candles: 120\n", "promotion.eval_candles",
         "hold at most 88 windows of seq_len + horizon (32 + 1) candles, fewer than promotion.min_eval_samples (100)"),
        ("auto_training:\n  triggers: [hunch]\n", "auto_training.triggers[0]", "'performance', 'drift' or 'losing_money'"),
    ],
)
def test_invalid_values_name_the_key_path(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert f": {key}: " in message and problem in message, message
    assert caught.value.exit_code == EX_CONFIG
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("market: [\n", "line 2 column 1: invalid YAML"), ("- a\n- b\n", "top level must be a mapping")],
)
def test_unparseable_files_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_config(path, env={})


def test_config_objects_are_immutable() -> None:
    config = Config()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.training.epochs = 3  # type: ignore[misc]


def test_ctl_exits_78_with_the_key_path_on_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("training:\n  epochs: -3\n")
    result = run_ctl("--config", str(path), "candles", "BTC/USDT")
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "training.epochs" in lines[0] and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_ctl_accepts_config_after_the_subcommand_and_via_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"paths: {{state_dir: {tmp_path / 'state'}}}\nheartbeat_interval: -1\n")
    after = run_ctl("candles", "BTC/USDT", "--config", str(path))
    via_env = run_ctl("candles", "BTC/USDT", env={"AUTORETRAIN_CONFIG": str(path)})
    for result in (after, via_env):
        assert result.returncode == 78 and "heartbeat_interval" in result.stderr
