"""`autoretrainctl report --plot OUT.png` as a real subprocess on the store of a real daemon run.

One short run of the daemon on the simulated market (mean reversion first, so the model trained at start
beats the baselines and is promoted: candles, signals with outcomes, a retrain run and a model activation)
serves every test; the report is drawn once while the daemon runs and otherwise with it stopped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import yaml

from autoretrain.daemon.foundation.config import load_config
from autoretrain.daemon.foundation.timeframes import HOUR_MS, iso, parse_iso_ms
from autoretrain.daemon.store.database import Database
from tests.support.cli import run_ctl
from tests.support.config import simulated_config
from tests.support.daemon import Daemon

PANELS = ["price", "win rate", "PnL", "model timeline"]
MEAN_REVERSION_FIRST = {"simulated": {"seed": 7, "speed": 36000, "history_candles": 1000, "regimes": [
    {"kind": "mean_reversion", "candles": 1300, "strength": 0.7}, {"kind": "momentum", "candles": 1300, "strength": 0.5}]}}


@dataclass
class Run:
    config_path: Path
    while_running: subprocess.CompletedProcess[str]
    png_while_running: Path


def serving_with_outcomes(daemon: Daemon) -> bool:
    """A retrain finished, its model serves, and some of its signals are settled."""
    symbol = daemon.status()["symbols"][0]
    settled = daemon.query("SELECT COUNT(*) FROM signals s JOIN outcomes o ON o.signal_id = s.id"
                           " WHERE s.model_version IS NOT NULL")[0][0]
    return bool(symbol["last_retrain"] and symbol["model_version"] and settled >= 10)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("report")
    daemon = Daemon(tmp, simulated_config(tmp / "state", market=MEAN_REVERSION_FIRST)).start()
    try:
        daemon.wait_ready()
        daemon.wait_for(lambda: serving_with_outcomes(daemon), 90, "a promoted model serving, with outcomes")
        png = tmp / "while-running.png"
        result = run_ctl("report", "--plot", str(png), "--json", "--config", str(daemon.config_path))
    finally:
        code = daemon.shutdown()
    assert code == 0, daemon.log()[-3000:]
    yield Run(daemon.config_path, result, png)


def report(run: Run, out: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_ctl("report", *args, "--plot", str(out), "--config", str(config or run.config_path))


def ink(image: np.ndarray, box: list[int]) -> float:
    """Share of the pixels inside the box (its frame left out) that are dark or coloured: lines, markers, text."""
    x0, y0, x1, y1 = box
    inside = image[y0 + 3:y1 - 3, x0 + 3:x1 - 3, :3]
    dark = inside.mean(axis=2) < 0.8  # the grid (light grey, alpha 0.3) is not ink
    coloured = inside.max(axis=2) - inside.min(axis=2) > 0.25
    return float((dark | coloured).mean())


def check_png(path: Path, payload: dict) -> None:
    from matplotlib.image import imread

    image = imread(path)
    assert image.shape[:2] == (payload["height"], payload["width"]) == (1320, 1430)
    assert [panel["name"] for panel in payload["panels"]] == PANELS
    boxes = [panel["box"] for panel in payload["panels"]]
    for name, box in zip(PANELS, boxes, strict=True):
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= payload["width"] and 0 <= y0 < y1 <= payload["height"], (name, box)
        assert ink(image, box) > 0.004, f"panel {name} at {box} looks blank"
    assert all(upper[3] < lower[1] for upper, lower in pairwise(boxes)), "panels overlap"
    assert float(image[boxes[0][1]:boxes[0][3], boxes[0][0]:boxes[0][2], :3].std()) > 0.05


@pytest.fixture(scope="module")
def default(run: Run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The report with the daemon stopped, every option at its default: (the PNG, the --json document)."""
    out = tmp_path_factory.mktemp("default") / "report.png"
    result = report(run, out, "--json")
    assert result.returncode == 0, result.stderr
    return out, json.loads(result.stdout)


def test_report_with_the_daemon_stopped(default: tuple[Path, dict], run: Run, tmp_path: Path) -> None:
    out, payload = default
    assert payload["path"] == str(out) and payload["bytes"] == out.stat().st_size
    assert payload["symbol"] == "BTC/USDT" and payload["timeframe"] == "1h"
    assert payload["candles"] == 500  # dashboard.history_candles
    assert payload["signals"] > 0 and payload["events"] >= 2  # the retrain run and the promotion
    check_png(out, payload)

    text = report(run, tmp_path / "again.png", "BTC/USDT")
    assert text.returncode == 0, text.stderr
    assert text.stdout == (f"wrote {tmp_path / 'again.png'} (1430x1320 px, 4 panels: price, win rate, PnL, model "
                           f"timeline; BTC/USDT 1h, 500 candles {payload['first']} to {payload['last']})\n")


def test_report_while_the_daemon_runs(run: Run) -> None:
    assert run.while_running.returncode == 0, run.while_running.stderr
    check_png(run.png_while_running, json.loads(run.while_running.stdout))


def test_since_changes_the_range(default: tuple[Path, dict], run: Run, tmp_path: Path) -> None:
    _, before = default
    day = (iso(parse_iso_ms(before["first"]) - 200 * HOUR_MS) or "")[:10]  # a date alone: its midnight, UTC
    result = report(run, tmp_path / "since.png", "--since", day, "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["first"] == f"{day}T00:00:00Z" and payload["last"] == before["last"]
    assert payload["candles"] == (parse_iso_ms(before["last"]) - parse_iso_ms(day)) // HOUR_MS + 1 > 700
    check_png(tmp_path / "since.png", payload)


def one_line_error(result: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.startswith("autoretrainctl") and result.stderr.count("\n") == 1 and words in result.stderr


@pytest.mark.parametrize(("args", "code", "words"), [
    (("ETH/USDT",), 64, "'ETH/USDT' is not a configured symbol (configured: BTC/USDT)"),
    (("BTC USDT",), 2, "argument SYMBOL"),
    (("--since", "yesterday"), 2, "invalid date 'yesterday'"),
    (("--since", "2024-13-01"), 2, "invalid date"),
])
def test_a_bad_symbol_or_date_is_a_usage_error(run: Run, tmp_path: Path, args: tuple[str, ...], code: int,
                                               words: str) -> None:
    out = tmp_path / "out.png"
    one_line_error(report(run, out, *args), code, words)
    assert not out.exists()


def test_an_output_nobody_can_write_is_one_line(run: Run, tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "out.png"
    one_line_error(report(run, missing), 73, f"cannot write {missing}: no directory {missing.parent}")
    directory = tmp_path / "a-directory.png"
    directory.mkdir()
    one_line_error(report(run, directory), 73, f"cannot write {directory}:")


def config_with_store(tmp_path: Path, run: Run, content: bytes | None) -> Path:
    """The run's configuration with its own state directory: an empty store, or a file of `content`."""
    data = yaml.safe_load(run.config_path.read_text())
    data["paths"] = {"state_dir": str(tmp_path / "state")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path, env={})
    config.db_path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        Database(config.db_path).close()
    else:
        config.db_path.write_bytes(content)
    return path


def test_an_empty_missing_or_damaged_store_is_one_line(run: Run, tmp_path: Path) -> None:
    empty = config_with_store(tmp_path, run, None)
    one_line_error(report(run, tmp_path / "out.png", config=empty), 66, "no candles for BTC/USDT in the store yet")
    shutil.rmtree(tmp_path / "state")
    one_line_error(report(run, tmp_path / "out.png", config=empty), 66, "no store at")
    damaged = config_with_store(tmp_path, run, b"not a database " * 1000)
    one_line_error(report(run, tmp_path / "out.png", config=damaged), 75, "")
    assert not (tmp_path / "out.png").exists()
