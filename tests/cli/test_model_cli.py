"""`autoretrainctl train | models | promote | rollback` as real subprocesses, without the daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autoretrain.models.registry import Registry
from tests.support.cli import run_ctl
from tests.support.config import FAST, fast_config
from tests.support.models import SYMBOL, TIMEFRAME, regime_series, register_copy, store_candles, trained_version


def _one_line_error(result: Any, code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autoretrainctl: error: ") and text in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_train_json_then_models_lists_the_promoted_version(tmp_path: Path, write_config) -> None:
    config_path = write_config(FAST)
    store_candles(fast_config(tmp_path / "state"), regime_series(("mean_reversion", 3000)).candles(0, 1999))
    result = run_ctl("--config", str(config_path), "train", SYMBOL, "--epochs", "3", "--json", timeout=240)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["version"] == "v0001" and report["promoted"] is True and report["reason"]
    assert set(report["metrics"]) >= {"challenger", "champion", "baseline"}
    assert report["metrics"]["challenger"]["samples"] > 0 and report["metrics"]["champion"] is None
    assert set(report["durations"]) == {"data", "train", "export", "evaluate"}
    assert report["training"]["epochs_run"] == 3

    listing = run_ctl("--config", str(config_path), "models", SYMBOL, "--json")
    assert listing.returncode == 0, listing.stderr
    models = json.loads(listing.stdout)
    assert models["promoted"] == "v0001" and [v["version"] for v in models["versions"]] == ["v0001"]
    assert models["versions"][0]["metrics"]["challenger"]["accuracy"] == report["metrics"]["challenger"]["accuracy"]
    text = run_ctl("--config", str(config_path), "models", SYMBOL)
    assert "* v0001" in text.stdout and "promoted: v0001" in text.stdout


def test_train_text_mode_shows_the_guide_lines(tmp_path: Path, write_config) -> None:
    config_path = write_config(FAST)
    store_candles(fast_config(tmp_path / "state"), regime_series(("momentum", 3000)).candles(0, 1999))
    result = run_ctl("--config", str(config_path), "train", SYMBOL, "--epochs", "2", "--promote", "never",
                     timeout=240)
    assert result.returncode == 0, result.stderr
    assert "Epoch 2/2 | Val Accuracy: " in result.stderr
    assert "No model promoted for SIM/USDT" in result.stderr
    assert result.stdout.startswith("SIM/USDT 1h: not promoted v0001: promotion disabled (--promote never)")


def test_train_refuses_missing_or_insufficient_data_in_one_line(tmp_path: Path, write_config) -> None:
    config_path = write_config(FAST)
    _one_line_error(run_ctl("--config", str(config_path), "train", SYMBOL), 65, "no candles stored yet")
    store_candles(fast_config(tmp_path / "state"), regime_series(("momentum", 3000)).candles(0, 299))
    _one_line_error(run_ctl("--config", str(config_path), "train", SYMBOL), 65,
                    "only 300 SIM/USDT 1h candles in the 3650 days up to 2024-01-13T11:00:00Z; training needs at least 500")
    bad = run_ctl("--config", str(config_path), "train", SYMBOL, "--promote", "sometimes")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


@pytest.fixture
def two_versions(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                 write_config) -> tuple[Path, Registry]:
    """A registry holding two real versions (copies of one trained model), neither promoted."""
    config_path = write_config(FAST)
    registry = Registry(fast_config(tmp_path / "state").models_dir)
    source = trained_version(tmp_path_factory)
    for name in ("v0001", "v0002"):
        assert register_copy(registry, SYMBOL, TIMEFRAME, source) == name
    return config_path, registry


def test_promote_and_rollback_move_the_pointer(two_versions: tuple[Path, Registry]) -> None:
    config_path, registry = two_versions
    first = run_ctl("--config", str(config_path), "promote", SYMBOL, "1")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "SIM/USDT 1h: promoted v0001 (was none)"
    second = run_ctl("--config", str(config_path), "promote", SYMBOL, "v0002", "--json")
    assert json.loads(second.stdout) == {"symbol": SYMBOL, "timeframe": TIMEFRAME, "promoted": "v0002",
                                         "previous": "v0001", "via": "registry"}  # no daemon running
    assert registry.promoted(SYMBOL, TIMEFRAME) == "v0002"
    back = run_ctl("--config", str(config_path), "rollback", SYMBOL)
    assert back.returncode == 0 and back.stdout.strip() == "SIM/USDT 1h: rolled back from v0002 to v0001"
    assert registry.promoted(SYMBOL, TIMEFRAME) == "v0001"
    _one_line_error(run_ctl("--config", str(config_path), "rollback", SYMBOL), 64, "no previous champion")


def test_promote_refuses_unknown_bad_and_corrupt_versions(two_versions: tuple[Path, Registry]) -> None:
    config_path, registry = two_versions
    _one_line_error(run_ctl("--config", str(config_path), "promote", SYMBOL, "v0042"), 66, "no version v0042")
    _one_line_error(run_ctl("--config", str(config_path), "promote", SYMBOL, "newest"), 64, "invalid version")
    onnx_file = registry.version_dir(SYMBOL, TIMEFRAME, "v0002") / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:-100])
    _one_line_error(run_ctl("--config", str(config_path), "promote", SYMBOL, "v0002"), 65,
                    "SIM/USDT 1h v0002 refused: model.onnx sha256")
    assert registry.promoted(SYMBOL, TIMEFRAME) is None


def test_models_without_any_version(tmp_path: Path, write_config) -> None:
    config_path = write_config(FAST)
    result = run_ctl("--config", str(config_path), "models", SYMBOL, "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["versions"] == []
    assert "no model versions" in run_ctl("--config", str(config_path), "models", SYMBOL).stdout
