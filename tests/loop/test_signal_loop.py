"""The signal loop in one process, no sockets: the same step the inference process and a backtest drive.

Real SQLite, real ONNX Runtime models; the bus is a list that collects what the loop publishes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.loop.signal_loop import SignalLoop
from autoretrain.daemon.signals.algorithms import REQUIRED_CANDLES
from autoretrain.daemon.signals.vote import compute_signal
from autoretrain.daemon.store.database import Database
from autoretrain.ipc import messages
from autoretrain.models.runtime import ModelRunner
from tests.support.data import random_walk_candles
from tests.support.models import trained_version


class Models:
    """A ModelSource: a fixed runner per symbol, and a record of every failure reported."""

    def __init__(self, runners: dict[str, ModelRunner | None] | None = None) -> None:
        self.runners = dict(runners or {})
        self.failures: list[tuple[str, str, int]] = []

    def runner(self, symbol: str) -> ModelRunner | None:
        return self.runners.get(symbol)

    def failed(self, symbol: str, error: BaseException, candle_ts: int) -> None:
        self.failures.append((symbol, str(error), candle_ts))
        self.runners[symbol] = None


class Broken:
    """A runner that loads fine and then fails on live data."""

    def __init__(self, runner: ModelRunner) -> None:
        self.inner, self.version, self.required_candles = runner, "v0099", runner.required_candles
        self.trained_until_ts, self.horizon = runner.trained_until_ts, runner.horizon

    def recent(self, window: np.ndarray) -> np.ndarray:
        return self.inner.recent(window)

    def predict_features(self, recent: np.ndarray, features: np.ndarray) -> float:
        raise RuntimeError("onnxruntime: bad input")


#: candles after the trained model's data (it never predicts a candle it trained on)
LATER = 1_735_689_600_000  # 2025-01-01


def config(tmp_path: Path, **sections: object) -> Config:
    return build_config({"paths": {"state_dir": str(tmp_path / "state")}, "market": {"symbols": ["BTC/USDT", "ETH/USDT"]},
                         **sections}, env={})


@pytest.fixture
def runner(tmp_path_factory: pytest.TempPathFactory) -> ModelRunner:
    return ModelRunner.load(trained_version(tmp_path_factory))


def test_one_batch_records_each_candle_once_and_publishes_what_is_new(tmp_path: Path) -> None:
    settings = config(tmp_path)
    published: list[messages.Message] = []
    with Database(settings.db_path) as db:
        loop = SignalLoop(db, settings, Models(), published.append)
        btc, eth = random_walk_candles(200, seed=1), random_walk_candles(200, seed=2)
        made = loop.signal([("BTC/USDT", btc), ("ETH/USDT", eth)])
        assert [new for _, new in made] == [True, True]
        assert [m.symbol for m in published if isinstance(m, messages.SignalMade)] == ["BTC/USDT", "ETH/USDT"]
        again = loop.signal([("BTC/USDT", btc)])  # a re-run after a crash: the first signal stays
        assert again[0][1] is False and len(published) == 2
        assert made[0][0] == compute_signal(btc[-REQUIRED_CANDLES:], model_probability=None, model_version=None,
                                            config=settings.signals)
        assert db.signals.last_signal_ts("binance", "ETH/USDT", "1h") == int(eth["ts"][-1])


def test_a_catch_up_is_a_series_of_batches_that_equals_signalling_one_by_one(tmp_path: Path,
                                                                             runner: ModelRunner) -> None:
    settings = config(tmp_path)
    candles = {"BTC/USDT": random_walk_candles(700, seed=3, start_ms=LATER),
               "ETH/USDT": random_walk_candles(700, seed=4, start_ms=LATER)}
    with Database(settings.db_path) as db:
        loop = SignalLoop(db, settings, Models({"BTC/USDT": runner}), lambda message: None)
        pending = {"BTC/USDT": (candles["BTC/USDT"], candles["BTC/USDT"][-5:]),  # five candles missed
                   "ETH/USDT": (candles["ETH/USDT"][:-3], candles["ETH/USDT"][-4:-3])}  # one
        made = loop.signal_pending(pending)
    assert [len(made["BTC/USDT"]), len(made["ETH/USDT"])] == [5, 1]
    for offset, signal in zip(range(-5, 0), made["BTC/USDT"], strict=True):
        end = len(candles["BTC/USDT"]) + offset + 1
        history = candles["BTC/USDT"][:end]
        expected = compute_signal(history[-REQUIRED_CANDLES:], model_probability=runner.predict(history),
                                  model_version=runner.version, config=settings.signals)
        assert signal == expected  # the batched path gives the very numbers of the one-candle path
    assert made["ETH/USDT"][0].model_version is None  # no model for ETH: the algorithms alone


def test_a_window_across_a_gap_is_signalled_by_the_algorithms_alone(tmp_path: Path, runner: ModelRunner) -> None:
    """Real exchanges have outages: the model's features would span the gap, so it sits that candle out."""
    settings = config(tmp_path)
    candles = random_walk_candles(700, seed=9, start_ms=LATER)
    gapped = np.delete(candles, 650)  # one candle missing inside the model's window
    with Database(settings.db_path) as db:
        loop = SignalLoop(db, settings, Models({"BTC/USDT": runner, "ETH/USDT": runner}), lambda message: None)
        ((gap, _),) = loop.signal([("BTC/USDT", gapped)])  # the only model row of its batch
        (skipped, _), (clean, _) = loop.signal([("BTC/USDT", np.delete(candles, 651)), ("ETH/USDT", candles)])
    assert gap.model_version is None and skipped.model_version is None and clean.model_version == runner.version


def test_a_model_never_predicts_a_candle_it_trained_on(tmp_path: Path, runner: ModelRunner) -> None:
    """After a long stop the catch-up may reach back into the model's own training data: those candles are
    signalled by the algorithms alone, the model joins from the first candle it has not seen."""
    settings = config(tmp_path)
    assert runner.trained_until_ts is not None
    step = 3_600_000
    candles = random_walk_candles(700, seed=10, start_ms=runner.trained_until_ts - 650 * step)
    with Database(settings.db_path) as db:
        loop = SignalLoop(db, settings, Models({"BTC/USDT": runner}), lambda message: None)
        made = loop.signal_pending({"BTC/USDT": (candles, candles[-60:])})["BTC/USDT"]
    served = [(signal.candle_ts <= runner.trained_until_ts, signal.model_version) for signal in made]
    assert {version for inside, version in served if inside} == {None}
    assert {version for inside, version in served if not inside} == {runner.version}


def test_short_windows_are_signalled_beside_full_ones(tmp_path: Path) -> None:
    """The algorithms abstain while their window is short; such a symbol is batched apart, not dropped."""
    settings = config(tmp_path)
    with Database(settings.db_path) as db:
        loop = SignalLoop(db, settings, Models(), lambda message: None)
        made = loop.signal([("BTC/USDT", random_walk_candles(300, seed=5)), ("ETH/USDT", random_walk_candles(20))])
    assert [signal.components["macd"] is None for signal, _ in made] == [False, True]


def test_a_model_failing_on_live_data_is_reported_and_the_candle_still_gets_its_signal(
        tmp_path: Path, runner: ModelRunner) -> None:
    settings = config(tmp_path)
    models = Models({"BTC/USDT": Broken(runner)})  # type: ignore[dict-item]
    candles = random_walk_candles(700, seed=6, start_ms=LATER)
    with Database(settings.db_path) as db:
        loop = SignalLoop(db, settings, models, lambda message: None)
        ((signal, new),) = loop.signal([("BTC/USDT", candles)])
    assert new and signal.model_version is None and "model" not in signal.components
    assert models.failures == [("BTC/USDT", "onnxruntime: bad input", int(candles["ts"][-1]))]


def test_settle_then_decide_queues_the_retrain_the_policy_asks_for(tmp_path: Path) -> None:
    settings = config(tmp_path, training={"min_candles": 300, "days": 30})
    published: list[messages.Message] = []
    candles = random_walk_candles(400, seed=7)
    with Database(settings.db_path) as db:
        db.candles.upsert("binance", "BTC/USDT", "1h", candles)
        loop = SignalLoop(db, settings, Models(), published.append)
        loop.signal([("BTC/USDT", candles[:-1])])  # the signal of the next-to-last candle, settled by the last
        decided = loop.settle_and_decide("BTC/USDT", int(candles["ts"][-2]), has_model=False)
        assert decided is not None and decided.queued and decided.decision.trigger == "train_at_start"
        again = loop.settle_and_decide("BTC/USDT", int(candles["ts"][-2]), has_model=False)
        assert again is not None and not again.decision.retrain  # one retrain in flight is enough
        assert db.runs.get(decided.run_id).status == "queued"
    outcomes = [m for m in published if isinstance(m, messages.OutcomeSettled)]
    queued = [m for m in published if isinstance(m, messages.RetrainQueued)]
    assert len(outcomes) == 1 and outcomes[0].exit_ts == int(candles["ts"][-1])
    assert [(m.trigger, m.run_id) for m in queued] == [("train_at_start", decided.run_id)]


def test_with_auto_training_off_the_loop_only_settles(tmp_path: Path) -> None:
    settings = config(tmp_path, auto_training={"enabled": False}, training={"min_candles": 300, "days": 30})
    candles = random_walk_candles(400, seed=8)
    with Database(settings.db_path) as db:
        db.candles.upsert("binance", "BTC/USDT", "1h", candles)
        loop = SignalLoop(db, settings, Models(), lambda message: None)
        loop.signal([("BTC/USDT", candles[:-1])])
        assert loop.settle_and_decide("BTC/USDT", int(candles["ts"][-2]), has_model=False) is None
        assert db.signals.pending("binance", "BTC/USDT", "1h") == 0 and db.runs.recent("binance", "BTC/USDT", "1h") == []
