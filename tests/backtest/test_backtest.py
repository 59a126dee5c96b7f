"""The walk-forward backtest, held to its honesty claims on the simulated market (real training, real ONNX).

- no variant ever sees a candle before its time: candles after t rewritten, everything up to t the same;
- the same seed gives the same report;
- after a known regime switch the policy's accuracy recovers while the static model's stays below 50 %;
- buy and hold is exactly the first-to-last close return.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autoretrain.daemon.backtest.metrics import bootstrap_difference
from autoretrain.daemon.backtest.plot import rolling_accuracy
from autoretrain.daemon.backtest.run import Backtest, run_backtest
from autoretrain.daemon.backtest.variants import VARIANTS, pick_variants
from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.timeframes import HOUR_MS
from tests.support.cli import run_ctl
from tests.support.models import START_MS, regime_series

pytestmark = pytest.mark.slow
#: the model alone decides (algorithm weights 0), so a variant's accuracy is its model's
MODEL_ONLY = {
    "model": {"seq_len": 16, "hidden_size": 16},
    "training": {"epochs": 8, "days": 40, "min_candles": 500, "threads": 1, "device": "cpu", "batch_size": 64,
                 "learning_rate": 0.005},
    "promotion": {"eval_candles": 200, "min_eval_samples": 100},
    "auto_training": {"win_rate_scope": "rolling", "rolling_window": 50, "min_signals": 20, "cooldown_hours": 24},
    "signals": {"model_weight": 1, "algorithms": {"rsi": 0, "macd": 0, "ma_cross": 0, "bollinger": 0}},
}
SWITCH_AT = 2000  # candle index where momentum turns into mean reversion
#: the most candles after the switch the policy may take to be right 55 % of the time again (measured: ~700)
RECOVERY_CANDLES = 1100


def config(tmp_path: Path) -> Config:
    return build_config({**MODEL_ONLY, "paths": {"state_dir": str(tmp_path / "state")}}, env={})


def backtest(tmp_path: Path, candles: np.ndarray, variants: str, **kwargs: Any) -> Backtest:
    return run_backtest(config(tmp_path), candles, "SIM/USDT", "1h", variants=pick_variants(variants), overrides={},
                        **kwargs)


def without_timing(document: Any) -> Any:
    if isinstance(document, dict):
        return {key: without_timing(value) for key, value in document.items() if key not in ("timing", "seconds")}
    if isinstance(document, list):
        return [without_timing(value) for value in document]
    return document


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Backtest, np.ndarray]:
    candles = regime_series(("momentum", SWITCH_AT), ("mean_reversion", 2000)).candles(0, 3999)
    return backtest(tmp_path_factory.mktemp("switch"), candles, "policy,static,hold"), candles


def test_after_a_regime_switch_the_policy_recovers_and_the_static_model_does_not(
        switch: tuple[Backtest, np.ndarray]) -> None:
    result, candles = switch
    runs = {run.variant.name: run for run in result.runs}
    switch_ts = int(candles["ts"][SWITCH_AT])
    times, accuracy = rolling_accuracy(runs["policy"], 50)
    recovered = [int(t) for t, a in zip(times, accuracy, strict=True) if t > switch_ts + 200 * HOUR_MS and a >= 0.55]
    assert recovered, "the policy's rolling accuracy never got back to 55 % after the switch"
    assert (recovered[0] - switch_ts) // HOUR_MS <= RECOVERY_CANDLES
    after = [trade.correct for trade in runs["static"].trades if trade.exit_ts > switch_ts + 200 * HOUR_MS]
    assert len(after) > 100 and np.mean(after) < 0.5  # trained once on momentum: wrong more often than not
    before = [trade.correct for trade in runs["static"].trades if trade.exit_ts < switch_ts]
    assert np.mean(before) > 0.55  # ...although it had learnt the first regime
    policy = result.report["variants"]["policy"]
    fired = policy["retrains"]["fired_by_trigger"]
    # in momentum no model beats persistence, so the first model is refused and tried again after each cooldown
    assert policy["retrains"]["promoted"] >= 2 and fired["first_model"] >= 2
    assert set(fired) <= {"train_at_start", "first_model", "drift", "losing_money", "periodic"}  # the default triggers


def test_buy_and_hold_is_the_exact_first_to_last_close_return(switch: tuple[Backtest, np.ndarray]) -> None:
    result, _ = switch
    data, hold = result.report["data"], result.report["variants"]["hold"]
    assert hold["pnl_compounded_pct"] == pytest.approx(100 * (data["last_close"] / data["first_close"] - 1), rel=1e-9)
    assert hold["trades"] == 0 and hold["exposure"] == 1.0


def test_no_variant_sees_a_candle_before_its_time(tmp_path: Path) -> None:
    # mean reversion first: a first model beats persistence there, so the policy trades from the start
    candles = regime_series(("mean_reversion", 1300), ("momentum", 1300)).candles(0, 1699)
    cut = 1450  # everything after candle 1450 is rewritten: a different market from there on
    rewritten = candles.copy()
    rng = np.random.default_rng(3)
    scale = np.exp(np.cumsum(rng.normal(0, 0.03, len(candles) - cut - 1)))
    for field in ("open", "high", "low", "close"):
        rewritten[field][cut + 1:] = candles[field][cut + 1:] * scale
    rewritten["volume"][cut + 1:] = rng.uniform(1, 1000, len(candles) - cut - 1)
    t = int(candles["ts"][cut])
    first = backtest(tmp_path / "a", candles, "policy,static,algorithms")
    second = backtest(tmp_path / "b", rewritten, "policy,static,algorithms")
    assert not np.array_equal(first.returns["policy"], second.returns["policy"])  # the futures really differ
    for one, other in zip(first.runs, second.runs, strict=True):
        assert [trade for trade in one.trades if trade.exit_ts <= t] == [
            trade for trade in other.trades if trade.exit_ts <= t], one.variant.name
        assert [without_timing(row.as_dict()) for row in one.retrains if row.market_ts <= t] == [
            without_timing(row.as_dict()) for row in other.retrains if row.market_ts <= t], one.variant.name
        upto = one.candle_ts <= t
        np.testing.assert_array_equal(first.returns[one.variant.name][upto], second.returns[one.variant.name][upto])
    assert any(row.market_ts <= t for row in first.runs[1].retrains)  # the policy did retrain before t


def test_the_same_seed_gives_the_same_report_one_variant_at_a_time_or_in_parallel(tmp_path: Path) -> None:
    candles = regime_series(("momentum", 1000), ("mean_reversion", 1000)).candles(0, 1499)
    first = backtest(tmp_path / "a", candles, "policy,algorithms,hold", seed=5)
    second = backtest(tmp_path / "b", candles, "policy,algorithms,hold", seed=5, jobs=2)  # two worker processes
    assert (first.report["settings"]["jobs"], second.report["settings"]["jobs"]) == (1, 2)
    for report in (first.report, second.report):
        del report["settings"]["jobs"]
    assert json.dumps(without_timing(first.report), sort_keys=True) == json.dumps(without_timing(second.report),
                                                                                  sort_keys=True)
    assert [name for name in first.report["variants"]] == ["static", "policy", "algorithms", "hold"]
    assert first.report["variants"]["policy"]["retrains"]["fired_by_trigger"]  # training ran, and repeated exactly
    interval = first.report["variants"]["algorithms"]["vs_static"]["ci95_pct"]
    block = first.report["settings"]["block_length_candles"]
    _, low, high = bootstrap_difference(first.returns["algorithms"], first.returns["static"], block=block,
                                        resamples=2000, seed=6)  # only the seed differs: another interval
    assert [100 * low, 100 * high] != interval


def write_csv(path: Path, candles: np.ndarray) -> Path:
    lines = ["timestamp,open,high,low,close,volume"] + [",".join(str(value) for value in row)
                                                        for row in candles.tolist()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_command_prints_a_table_and_writes_json_and_a_png(tmp_path: Path, write_config) -> None:  # type: ignore[no-untyped-def]
    csv = write_csv(tmp_path / "sim.csv", regime_series(("momentum", 1500)).candles(0, 1499))
    config_path = write_config(MODEL_ONLY)
    result = run_ctl("--config", str(config_path), "backtest", "--csv", str(csv), "--timeframe", "1h",
                     "--variants", "algorithms,hold", "--json", str(tmp_path / "r.json"), "--plot",
                     str(tmp_path / "r.png"), "--set", "signals.fee_bps=5", timeout=600)
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert rows[0].split()[:3] == ["variant", "trades", "accuracy"]
    assert [row.split()[0] for row in rows[1:4]] == ["static", "algorithms", "hold"]
    assert "fees 5 bps a side" in rows[-1]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["settings"]["overrides"] == {"signals": {"fee_bps": 5}}
    assert set(report["variants"]["static"]) >= {"direction_accuracy_ci95", "vs_static", "retrain_runs", "sharpe"}
    from matplotlib.image import imread

    image = imread(tmp_path / "r.png")
    assert image.shape[0] > 800 and image.shape[1] > 1000  # three panels at 110 dpi
    assert result.stderr == ""  # no progress bar off a terminal, no warnings


@pytest.mark.parametrize("arguments, code, message", [
    (["--variants", "guide,nonsense"], 64, "unknown variant nonsense"),
    (["--set", "training.epochs=0"], 78, "backtest --set: training.epochs: Input should be greater than or equal to 1"),
    (["--set", "no-equals-sign"], 64, "expected KEY=VALUE"),
    (["--from", "2025-01-01"], 65, "no candles between 2025-01-01T00:00:00Z"),
    (["--from", "2024-02-01", "--to", "2024-01-15"], 64, "--to is before --from"),
])
def test_bad_arguments_are_one_line(tmp_path: Path, write_config, arguments: list[str], code: int,  # type: ignore[no-untyped-def]
                                    message: str) -> None:
    csv = write_csv(tmp_path / "sim.csv", regime_series(("momentum", 600)).candles(0, 599))
    result = run_ctl("--config", str(write_config(MODEL_ONLY)), "backtest", "--csv", str(csv), "--timeframe", "1h",
                     *arguments)
    assert result.returncode == code, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_missing_csv_and_an_empty_store_are_one_line(tmp_path: Path, write_config) -> None:  # type: ignore[no-untyped-def]
    config_path = write_config(MODEL_ONLY)
    missing = run_ctl("--config", str(config_path), "backtest", "--csv", str(tmp_path / "none.csv"), "--timeframe", "1h")
    assert missing.returncode == 66 and "no such file" in missing.stderr
    empty = run_ctl("--config", str(config_path), "backtest", "BTC/USDT", "--timeframe", "1h")
    assert empty.returncode == 66 and "no store at" in empty.stderr


def test_variants_are_named_and_static_is_always_compared_against() -> None:
    assert [variant.name for variant in pick_variants("hold,policy")] == ["static", "hold", "policy"]
    assert set(VARIANTS) == {"guide", "policy", "guide_promotion", "win_rate_trigger", "no_warm_start", "static",
                             "schedule", "algorithms", "hold"}
    guide = VARIANTS["guide"].overrides  # the guide as written, whatever the configured policy says
    assert guide["auto_training"]["triggers"] == ["performance"] and guide["promotion"]["rule"] == "guide"
    assert guide["training"]["warm_start"] is False
    assert START_MS == int(regime_series(("momentum", 10)).candles(0, 0)["ts"][0])
