"""Warm-start challengers: the champion fine-tuned on the newest candles beside a full retrain, both scored on
the same window, the better one tested at a level shared between them (real torch, ONNX and onnxruntime)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from autoretrain.daemon.cli.model import _models_text
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.processes.retrain_job import TrainOutcome, run_training
from autoretrain.models.features import N_FEATURES
from autoretrain.models.lstm import DirectionLSTM
from autoretrain.models.registry import Registry
from autoretrain.models.runtime import ModelRunner
from autoretrain.models.training import WEIGHTS_FILE, load_weights
from tests.support.config import fast_config
from tests.support.models import SYMBOL, TIMEFRAME, regime_series, store_candles

SERIES = regime_series(("momentum", 2000), ("mean_reversion", 3000))


def _version_dir(config: Config, version: str) -> Path:
    return Registry(config.models_dir).version_dir(SYMBOL, TIMEFRAME, version)


def _meta(config: Config, version: str) -> dict[str, Any]:
    return json.loads((_version_dir(config, version) / "meta.json").read_text())


def _with_champion(state: Path, **sections: dict[str, Any]) -> Config:
    """A momentum champion (put in place by hand: persistence is as good in momentum), then 2000 candles of
    mean reversion, in which it bets the wrong way."""
    config = fast_config(state, **sections)
    store_candles(config, SERIES.candles(0, 1999))
    assert run_training(config, SYMBOL, TIMEFRAME, promote="always").version == "v0001"
    store_candles(config, SERIES.candles(2000, 3999))
    return config


@pytest.fixture(scope="module")
def after_switch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, TrainOutcome, list[str]]:
    config = _with_champion(tmp_path_factory.mktemp("warm") / "state")
    logger = logging.getLogger("autoretrain.model")
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        outcome = run_training(config, SYMBOL, TIMEFRAME, days=1500 / 24, promote="always")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return config, outcome, messages


def test_both_candidates_are_scored_on_the_same_window_and_the_better_is_the_challenger(after_switch) -> None:  # type: ignore[no-untyped-def]
    config, outcome, messages = after_switch
    candidates = outcome.metrics["candidates"]
    assert set(candidates) == {"full", "warm_start"}
    assert candidates["full"]["samples"] == candidates["warm_start"]["samples"] == outcome.metrics["champion"]["samples"]
    best = max(candidates, key=lambda kind: (candidates[kind]["accuracy"], kind == "full"))
    assert outcome.metrics["chosen"] == best == outcome.metrics["challenger"]["kind"]
    assert outcome.metrics["challenger"]["accuracy"] == candidates[best]["accuracy"]
    # the fine-tuned champion learnt the new regime: far better than the champion it started from
    assert candidates["warm_start"]["accuracy"] > 0.55 > 0.45 > outcome.metrics["champion"]["accuracy"]
    assert any(m.startswith("Fine-tuning champion v0001 on the newest ") for m in messages)
    assert any(m.startswith("Candidates: full ") and "warm start" in m for m in messages)


def test_the_promotion_test_shares_its_level_between_the_two_candidates(after_switch) -> None:  # type: ignore[no-untyped-def]
    config, outcome, _ = after_switch
    decision = _meta(config, outcome.version)["decision"]
    assert decision["candidates"] == ["full", "warm_start"]
    assert decision["rule"] == "tested" and decision["attempt"] == 1
    assert decision["alpha"] == pytest.approx(config.promotion.significance_level / 2)


def test_the_committed_version_is_the_chosen_network_with_its_own_scaling_and_weights(after_switch) -> None:  # type: ignore[no-untyped-def]
    config, outcome, _ = after_switch
    meta, champion = _meta(config, outcome.version), _meta(config, "v0001")
    chosen = outcome.metrics["chosen"]
    assert meta["training"]["kind"] == chosen
    if chosen == "warm_start":
        assert meta["training"]["warm_start_from"] == "v0001" and meta["normaliser"] == champion["normaliser"]
        assert meta["training"]["epochs"] == config.training.warm_start_epochs
        assert meta["data"]["train"]["samples"] <= config.training.warm_start_candles
    else:
        assert meta["training"]["warm_start_from"] is None and meta["normaliser"] != champion["normaliser"]
    # weights.npz is the very network behind model.onnx: torch on it gives what onnxruntime gives
    folder = _version_dir(config, outcome.version)
    weights = load_weights((folder / WEIGHTS_FILE).read_bytes())
    network = DirectionLSTM(N_FEATURES, config.model.hidden_size, config.model.num_layers, config.model.dropout)
    network.load_state_dict({name: torch.from_numpy(value) for name, value in weights.items()})
    with np.load(folder / "parity.npz") as parity:
        inputs = parity["x"]
    with torch.no_grad():
        from_weights = torch.sigmoid(network.eval()(torch.from_numpy(inputs))).numpy()
    np.testing.assert_allclose(ModelRunner.load(folder).predict_windows(inputs), from_weights, atol=1e-5)
    # only the chosen candidate was registered, and `autoretrainctl models` says how each was made
    listing = Registry(config.models_dir).listing(SYMBOL, TIMEFRAME)
    assert [row["version"] for row in listing["versions"]] == ["v0001", "v0002"]
    made = {"full": "full retrain", "warm_start": "fine-tuned v0001"}[chosen]
    rows = _models_text(listing).splitlines()[2:]
    assert " full retrain " in rows[0] and f" {made} " in rows[1] and rows[1].startswith("* v0002")


def _single_candidate(config: Config, caplog: pytest.LogCaptureFixture) -> tuple[TrainOutcome, list[str]]:
    with caplog.at_level(logging.INFO, logger="autoretrain.model"):
        outcome = run_training(config, SYMBOL, TIMEFRAME, days=1500 / 24, epochs=2, promote="always")
    assert set(outcome.metrics["candidates"]) == {"full"} and outcome.metrics["chosen"] == "full"
    decision = _meta(config, outcome.version)["decision"]
    assert decision["candidates"] == ["full"] and decision["alpha"] == pytest.approx(config.promotion.significance_level)
    return outcome, caplog.messages


def test_warm_start_off_trains_the_full_candidate_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = _with_champion(tmp_path / "state", training={"warm_start": False})
    _, messages = _single_candidate(config, caplog)
    assert not any(m.startswith("Fine-tuning") or m.startswith("No warm start") for m in messages)


def test_a_champion_with_corrupt_or_missing_weights_is_not_fine_tuned(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    config = _with_champion(tmp_path / "state")
    weights = _version_dir(config, "v0001") / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    _, messages = _single_candidate(config, caplog)
    assert "No warm start: champion v0001's weights.npz does not match its meta.json (corrupt?)" in messages

    # a champion made before warm starts (no weights recorded) is retrained from scratch, saying so
    caplog.clear()
    champion = _version_dir(config, "v0002")
    meta = json.loads((champion / "meta.json").read_text())
    del meta["weights"]
    (champion / "meta.json").write_text(json.dumps(meta))
    (champion / WEIGHTS_FILE).unlink()
    store_candles(config, SERIES.candles(4000, 4999))
    _, messages = _single_candidate(config, caplog)
    assert "No warm start: champion v0002 has no saved weights (made before warm starts)" in messages


def test_a_champion_of_another_network_shape_is_not_fine_tuned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    _with_champion(state)
    wider = fast_config(state, model={"seq_len": 16, "hidden_size": 24})
    _, messages = _single_candidate(wider, caplog)
    assert any(m.startswith("No warm start: champion v0001 has another network") for m in messages)
    shutil.rmtree(state)
