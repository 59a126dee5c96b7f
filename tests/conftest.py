"""Shared fixtures: configs written to disk, the real data (skipped when absent). Helpers live in tests/support/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.data import BTC_1H


@pytest.fixture
def real_1h() -> Path:
    """The real Binance BTC/USDT 1h file; the test is skipped (with the reason) when it is absent."""
    if not BTC_1H.is_file():
        pytest.skip(f"real market data not available at {BTC_1H} (only present in the development workspace)")
    return BTC_1H


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a YAML config into tmp_path (state under tmp_path/state unless given) and return its path."""

    def write(data: dict[str, Any] | None = None, name: str = "config.yaml") -> Path:
        data = dict(data or {})
        data.setdefault("paths", {}).setdefault("state_dir", str(tmp_path / "state"))
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write
