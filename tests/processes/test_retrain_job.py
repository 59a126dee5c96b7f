"""The whole retrain job on a real store, real torch training, real ONNX export and onnxruntime evaluation."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from autoretrain.daemon.foundation.errors import DataError
from autoretrain.daemon.foundation.timeframes import HOUR_MS
from autoretrain.daemon.processes.retrain_job import run_training
from autoretrain.daemon.store.database import Database
from autoretrain.models.dataset import Normaliser
from autoretrain.models.features import FEATURE_NAMES, FEATURE_SET_VERSION, compute_features
from autoretrain.models.registry import Registry
from autoretrain.models.training import TrainingAborted
from tests.support.config import fast_config
from tests.support.models import SYMBOL, TIMEFRAME, regime_series, store_candles


def _runs(config) -> list:  # type: ignore[no-untyped-def]
    with Database(config.db_path) as db:
        return db.runs.recent(config.store_exchange, SYMBOL, TIMEFRAME)


def _meta(config, version: str) -> dict:  # type: ignore[no-untyped-def]
    return json.loads((Registry(config.models_dir).version_dir(SYMBOL, TIMEFRAME, version) / "meta.json").read_text())


def test_in_a_momentum_regime_persistence_is_the_bar_a_model_must_beat(tmp_path: Path) -> None:
    """With lag-1 sign persistence ~0.67, "the next move repeats the last" is as good as the regime allows: a
    model that learnt the regime does not beat it, and is not promoted (the hindsight majority let it pass)."""
    config = fast_config(tmp_path / "state")
    store_candles(config, regime_series(("momentum", 5000)).candles(0, 1999))
    outcome = run_training(config, SYMBOL, TIMEFRAME)
    persistence = outcome.metrics["baselines"]["persistence"]["accuracy"]
    assert persistence > 0.6 and outcome.metrics["challenger"]["accuracy"] > 0.6
    assert not outcome.promoted and "persistence baseline" in outcome.reason


def test_a_model_trained_in_a_mean_reversion_regime_predicts_it_and_is_promoted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = fast_config(tmp_path / "state")
    candles = regime_series(("mean_reversion", 5000)).candles(0, 1999)
    store_candles(config, candles)
    epochs_seen: list[tuple[int, int, float]] = []
    with caplog.at_level(logging.INFO, logger="autoretrain.model"):
        outcome = run_training(config, SYMBOL, TIMEFRAME, progress=lambda *a: epochs_seen.append(a),
                               trigger="test", reason="first model", requested_market_ts=int(candles["ts"][-1]))

    challenger = outcome.metrics["challenger"]
    assert challenger["accuracy"] >= 0.60, outcome.metrics  # the regime's lag-1 sign reversal is ~0.67
    assert challenger["accuracy"] > outcome.metrics["baseline"]["accuracy"]
    baselines = outcome.metrics["baselines"]  # neither baseline looks at the evaluation window's labels
    assert baselines["persistence"]["accuracy"] < 0.40 and 0.40 < baselines["majority_of_training"]["accuracy"] < 0.60
    assert outcome.metrics["evaluation"]["baselines"] == "majority of the training labels; persistence"
    assert outcome.promoted and outcome.status == "promoted" and outcome.version == "v0001"
    assert outcome.metrics["champion"] is None and "no champion" in outcome.reason
    assert set(outcome.durations) == {"data", "train", "export", "evaluate"}
    for entry in (outcome.metrics["challenger"], *outcome.metrics["baselines"].values()):
        assert {"accuracy", "signal_precision", "pnl_pct", "samples", "mcnemar_p"} <= set(entry)
    assert challenger["samples"] == outcome.metrics["evaluation"]["samples"] >= 300
    assert [e[:2] for e in epochs_seen] == [(i, 6) for i in range(1, 7)]

    registry = Registry(config.models_dir)
    assert registry.promoted(SYMBOL, TIMEFRAME) == "v0001"
    meta = _meta(config, "v0001")
    assert meta["feature_set_version"] == FEATURE_SET_VERSION and meta["feature_names"] == list(FEATURE_NAMES)
    assert meta["data"]["data_hash"].startswith("sha256:") and meta["onnx"]["sha256"]
    assert meta["hyperparameters"]["hidden_size"] == 16 and meta["hyperparameters"]["seed"] == 42
    assert meta["decision"]["promoted"] and meta["parity"]["ok"] and meta["parity"]["max_abs_diff"] <= 1e-4
    assert (meta["decision"]["rule"], meta["decision"]["alpha"], meta["decision"]["attempt"]) == ("tested", 0.05, 1)
    assert meta["decision"]["p_value"] < 0.05
    assert {"torch", "onnxruntime", "numpy", "python"} <= set(meta["software"])
    # validation and evaluation come after training, each behind a purge gap of seq_len + horizon candles
    step, purge = HOUR_MS, 16 + 1
    train_last = np.datetime64(meta["data"]["train"]["last"].rstrip("Z"), "ms").astype(np.int64)
    val_first = np.datetime64(meta["data"]["validation"]["first"].rstrip("Z"), "ms").astype(np.int64)
    assert (val_first - train_last) // step - 1 >= purge
    assert (meta["evaluation"]["evaluation"]["first_ts"] - meta["data"]["trained_until_ts"]) // step - 1 >= purge
    # the normaliser was fitted on the training rows only
    features = compute_features(candles)
    first_row = int((np.datetime64(meta["data"]["train"]["first"].rstrip("Z"), "ms").astype(np.int64)
                     - candles["ts"][0]) // step)
    last_train_end = int((train_last - candles["ts"][0]) // step) - 1
    expected = Normaliser.fit(features[first_row:last_train_end + 1])
    np.testing.assert_allclose(meta["normaliser"]["mean"], expected.mean, rtol=1e-9)

    run = _runs(config)[0]
    assert (run.status, run.version, run.trigger, run.reason) == ("promoted", "v0001", "test", "first model")
    assert run.data_end_ts == int(candles["ts"][-1]) and run.requested_market_ts == int(candles["ts"][-1])
    assert run.detail["metrics"]["challenger"]["accuracy"] == challenger["accuracy"]

    logged = caplog.messages
    assert "Training model (6 epochs)" in logged
    assert any(m.startswith("Epoch 6/6 | Val Accuracy: ") and m.endswith("%") for m in logged)
    assert f"New model saved for {SYMBOL} (accuracy: {100 * challenger['accuracy']:.1f}%)" in logged


def test_after_a_regime_change_the_challenger_replaces_the_champion_on_unseen_candles(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    series = regime_series(("momentum", 2000), ("mean_reversion", 3000))
    config = fast_config(tmp_path / "state")
    store_candles(config, series.candles(0, 1999))
    # persistence is as good as anything in momentum, so this champion is put in place by hand
    first = run_training(config, SYMBOL, TIMEFRAME, promote="always")
    assert first.promoted
    champion_until = _meta(config, first.version)["data"]["trained_until_ts"]

    store_candles(config, series.candles(2000, 3999))  # 2000 mean-reversion candles arrive
    second = run_training(config, SYMBOL, TIMEFRAME, days=1500 / 24)
    old, new = second.metrics["champion"], second.metrics["challenger"]
    assert old["version"] == "v0001" and old["samples"] == new["samples"]
    assert second.metrics["evaluation"]["first_ts"] > champion_until
    assert old["accuracy"] < 0.45 < 0.60 <= new["accuracy"]  # momentum bets lose in a mean-reverting market
    assert second.promoted and second.version == "v0002"
    assert 0 <= old["mcnemar_p"] < 0.01
    assert Registry(config.models_dir).pointer(SYMBOL, TIMEFRAME) | {"updated_at": None} == {
        "version": "v0002", "history": ["v0001"], "updated_at": None}

    # the candles that chose v0002 never judge its challengers: without new ones there is nothing to judge on
    refused = run_training(config, SYMBOL, TIMEFRAME, days=1500 / 24)
    assert not refused.promoted and refused.version is None and "unseen by champion v0002" in refused.reason
    store_candles(config, series.candles(4000, 4999))  # 1000 more candles arrive
    # a challenger that must beat the champion by more than 90 points cannot: the champion stays
    strict = fast_config(tmp_path / "state", promotion={"min_improvement": 0.9}, training={"epochs": 1})
    with caplog.at_level(logging.INFO, logger="autoretrain.model"):
        third = run_training(strict, SYMBOL, TIMEFRAME, days=1500 / 24)
    assert not third.promoted and third.status == "rejected" and third.version == "v0003"
    assert third.metrics["evaluation"]["first_ts"] > second.metrics["evaluation"]["last_ts"]
    assert "does not beat champion v0002" in third.reason and "by more than 90.0%" in third.reason
    assert Registry(config.models_dir).promoted(SYMBOL, TIMEFRAME) == "v0002"
    assert f"Keeping existing model for {SYMBOL}" in caplog.messages
    assert any(m.startswith("New model accuracy: ") for m in caplog.messages)
    assert any(m.startswith("Old model accuracy: ") for m in caplog.messages)
    assert [r.status for r in _runs(config)] == ["rejected", "rejected", "promoted", "promoted"]


def test_too_few_candles_unseen_by_the_champion_is_a_rejection_before_training(tmp_path: Path) -> None:
    config = fast_config(tmp_path / "state")
    store_candles(config, regime_series(("momentum", 3000)).candles(0, 1999))
    assert run_training(config, SYMBOL, TIMEFRAME, epochs=1, promote="always").promoted
    # the champion held out only its newest 400 candles; asking for 600 unseen samples cannot be met
    wider = fast_config(tmp_path / "state", promotion={"eval_candles": 1000, "min_eval_samples": 600})
    outcome = run_training(wider, SYMBOL, TIMEFRAME)
    assert not outcome.promoted and outcome.version is None and outcome.status == "rejected"
    assert "evaluation samples on candles unseen by champion v0001" in outcome.reason
    assert outcome.durations["train"] == outcome.durations["export"] == 0.0
    assert outcome.metrics == {"challenger": None, "champion": None, "baseline": None}
    assert [v.version for v in Registry(config.models_dir).versions(SYMBOL, TIMEFRAME)] == ["v0001"]


def test_fewer_candles_than_min_candles_is_a_data_error_and_nothing_is_written(tmp_path: Path) -> None:
    config = fast_config(tmp_path / "state", training={"min_candles": 1000})
    store_candles(config, regime_series(("momentum", 3000)).candles(0, 899))
    with pytest.raises(DataError, match="only 900 SIM/USDT 1h candles .* at least 1000 \\(training.min_candles\\)"):
        run_training(config, SYMBOL, TIMEFRAME)
    assert not config.models_dir.exists()
    run = _runs(config)[0]
    assert run.status == "failed" and "at least 1000" in run.detail["error"]


def test_no_store_or_no_candles_is_a_data_error(tmp_path: Path) -> None:
    config = fast_config(tmp_path / "state")
    with pytest.raises(DataError, match="no candles stored yet"):
        run_training(config, SYMBOL, TIMEFRAME)
    store_candles(config, regime_series(("momentum", 3000)).candles(0, 999), symbol="OTHER/USDT")
    with pytest.raises(DataError, match="no SIM/USDT 1h candles stored"):
        run_training(config, SYMBOL, TIMEFRAME)


def test_gaps_and_invalid_candles_are_reported_and_windows_across_them_skipped(tmp_path: Path) -> None:
    config = fast_config(tmp_path / "state")
    candles = regime_series(("momentum", 3000)).candles(0, 1999)
    candles["volume"][1500] = np.inf  # the store keeps infinities: the job must not feed them to the model
    store_candles(config, np.concatenate([candles[:700], candles[712:]]))  # an exchange outage of 12 candles
    with Database(config.db_path) as db:  # the daemon's queue creates and claims the run first
        runs = db.runs
        queued, _ = runs.queue(config.store_exchange, SYMBOL, TIMEFRAME, trigger="policy", reason="win rate")
        assert runs.claim_next().id == queued  # type: ignore[union-attr]
    outcome = run_training(config, SYMBOL, TIMEFRAME, epochs=1, promote="never", run_id=queued)
    assert outcome.data["invalid_candles"] == 1  # dropped, which makes one more gap
    assert outcome.data["gaps"] == 2 and outcome.data["missing_candles"] == 13
    assert outcome.version is not None and not outcome.promoted and "disabled" in outcome.reason
    assert Registry(config.models_dir).promoted(SYMBOL, TIMEFRAME) is None
    assert [(r.id, r.status, r.version) for r in _runs(config)] == [(queued, "rejected", outcome.version)]


def test_stop_request_aborts_and_registers_nothing(tmp_path: Path) -> None:
    config = fast_config(tmp_path / "state")
    store_candles(config, regime_series(("momentum", 3000)).candles(0, 1999))
    calls = iter(range(10_000))
    with pytest.raises(TrainingAborted, match="stopped on request at epoch 2/6"):
        run_training(config, SYMBOL, TIMEFRAME, should_stop=lambda: next(calls) >= 25)
    series = Registry(config.models_dir).series_dir(SYMBOL, TIMEFRAME)
    assert not series.exists() or [p.name for p in series.iterdir()] == []
    assert _runs(config)[0].status == "aborted"  # stopped on purpose: not a setback for the policy


def test_a_candidate_failing_the_parity_check_is_rejected_with_the_reason(tmp_path: Path) -> None:
    # onnxruntime and torch agree to ~1e-7; a tolerance below that must reject the candidate
    config = fast_config(tmp_path / "state", promotion={"parity_tolerance": 1e-12})
    store_candles(config, regime_series(("momentum", 3000)).candles(0, 1999))
    outcome = run_training(config, SYMBOL, TIMEFRAME, epochs=1)
    assert not outcome.promoted and outcome.version is None and outcome.status == "rejected"
    assert outcome.reason.startswith("parity check failed on 64 samples: max |onnxruntime - torch| = ")
    assert Registry(config.models_dir).versions(SYMBOL, TIMEFRAME) == []
    assert _runs(config)[0].status == "rejected"


def test_a_champion_moved_during_training_is_not_replaced(tmp_path: Path) -> None:
    """An operator's rollback (or another job's promotion) while this job trains wins: no blind overwrite."""
    config = fast_config(tmp_path / "state")
    store_candles(config, regime_series(("momentum", 5000)).candles(0, 1999))
    first = run_training(config, SYMBOL, TIMEFRAME, promote="never")
    second = run_training(config, SYMBOL, TIMEFRAME, promote="never")
    registry = Registry(config.models_dir)
    registry.promote(SYMBOL, TIMEFRAME, first.version)

    def operator_promotes_meanwhile(epoch: int, epochs: int, accuracy: float | None) -> None:
        if epoch == 2:
            registry.promote(SYMBOL, TIMEFRAME, second.version)

    outcome = run_training(config, SYMBOL, TIMEFRAME, promote="always", progress=operator_promotes_meanwhile)
    assert registry.promoted(SYMBOL, TIMEFRAME) == second.version  # the operator's choice stands
    assert not outcome.promoted and outcome.status == "rejected"
    assert f"changed from {first.version} to {second.version} during training" in outcome.reason
    assert _meta(config, outcome.version)["decision"]["promoted"] is False
