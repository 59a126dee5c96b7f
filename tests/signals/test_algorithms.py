"""Rule-based algorithms and the vote that combines them with the model (daemon.algorithms, daemon.signals)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autoretrain.daemon.foundation.config_schema import SignalsConfig
from autoretrain.daemon.signals import algorithms
from autoretrain.daemon.signals.vote import BUY, HOLD, SELL, classify, compute_signal, probability_up
from autoretrain.ipc.candles import CANDLE_DTYPE
from autoretrain.models import indicators
from tests.support.data import random_walk_candles


def candles_from(close: np.ndarray) -> np.ndarray:
    out = np.zeros(len(close), dtype=CANDLE_DTYPE)
    out["ts"] = 1_704_067_200_000 + np.arange(len(close)) * 3_600_000
    out["open"] = out["close"] = close
    out["high"], out["low"], out["volume"] = close * 1.001, close * 0.999, 1.0
    return out


STEPS = np.arange(180.0)


@pytest.mark.parametrize("close, expected", [
    # accelerating rise: trend followers up, mean reversion (overbought, at the upper band) down
    (100 + 0.005 * STEPS**2, {"rsi": -1.0, "macd": 1.0, "ma_cross": 1.0, "bollinger": "-"}),
    # accelerating fall: the mirror image
    (200 - 0.005 * STEPS**2, {"rsi": 1.0, "macd": -1.0, "ma_cross": -1.0, "bollinger": "+"}),
    # steady line: MACD histogram converged to 0 (float noise is not a vote), the rest still lean
    (100 + STEPS, {"rsi": -1.0, "macd": 0.0, "ma_cross": 1.0, "bollinger": "-"}),
    # flat market: nobody has an opinion
    (np.full(180, 100.0), {"rsi": 0.0, "macd": 0.0, "ma_cross": 0.0, "bollinger": 0.0}),
])
def test_each_algorithm_votes_by_its_rule(close: np.ndarray, expected: dict[str, object]) -> None:
    votes = algorithms.votes(candles_from(close))
    assert set(votes) == {"rsi", "macd", "ma_cross", "bollinger"}
    for name, want in expected.items():
        vote = votes[name]
        assert vote is not None and -1.0 <= vote <= 1.0
        if want == "+":
            assert vote > 0.5, name
        elif want == "-":
            assert vote < -0.5, name
        else:
            assert vote == want, name


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_rsi_and_bollinger_votes_are_graded(seed: int) -> None:
    """RSI 40 is half an oversold vote; a close a quarter up the band is half a buy (on the newest 128 candles)."""
    candles = random_walk_candles(300, seed=seed)
    close = candles["close"][-algorithms.REQUIRED_CANDLES:]
    rsi = indicators.rsi(close)[-1]
    position = indicators.bollinger(close)[3][-1]
    votes = algorithms.votes(candles)
    assert votes["rsi"] == pytest.approx(np.clip((50 - rsi) / 20, -1, 1), abs=1e-12)
    assert votes["bollinger"] == pytest.approx(np.clip(1 - 2 * position, -1, 1), abs=1e-12)
    full_history = np.clip((50 - indicators.rsi(candles["close"])[-1]) / 20, -1, 1)
    assert votes["rsi"] != pytest.approx(full_history, abs=1e-12)  # the full history would seed RSI elsewhere


def test_short_window_abstains_and_holds() -> None:
    votes = algorithms.votes(candles_from(100 + STEPS[:20]))
    assert votes["macd"] is None and votes["ma_cross"] is None
    signal = compute_signal(candles_from(np.array([100.0])), model_probability=None, model_version=None,
                            config=SignalsConfig())
    assert all(v is None for v in signal.components.values())
    assert (signal.action, signal.probability_up) == (HOLD, 0.5)


def test_same_candle_gives_the_same_signal_whatever_the_window_held() -> None:
    """Re-running a candle after a crash (a longer or shorter ring) reproduces the recorded signal."""
    candles = random_walk_candles(1000, seed=11)
    config = SignalsConfig()
    signals = [compute_signal(window, model_probability=0.7, model_version="v0001", config=config).as_dict()
               for window in (candles[:700], candles[300:700], candles[700 - algorithms.REQUIRED_CANDLES:700])]
    assert signals[0] == signals[1] == signals[2]
    assert signals[0]["candle_ts"] == int(candles["ts"][699])
    shorter = compute_signal(candles[650:700], model_probability=0.7, model_version="v0001", config=config)
    assert shorter.components != signals[0]["components"]  # fewer candles than required: EMAs differ


@pytest.mark.parametrize("probability, threshold, action", [
    (0.55, 0.55, BUY), (0.5499, 0.55, HOLD), (0.45, 0.55, SELL), (0.4501, 0.55, HOLD),
    (0.5, 0.5, HOLD), (0.5001, 0.5, BUY), (0.4999, 0.5, SELL), (1.0, 1.0, BUY), (0.0, 1.0, SELL), (0.99, 1.0, HOLD),
])
def test_classify_at_the_threshold(probability: float, threshold: float, action: str) -> None:
    got, confidence = classify(probability, threshold)
    assert got == action
    assert confidence == max(probability, 1 - probability)


@pytest.mark.parametrize("votes, weights, expected", [
    ({"a": 1.0, "b": -1.0}, {"a": 1, "b": 1}, 0.5),
    ({"a": 1.0, "b": 0.0}, {"a": 1, "b": 1}, 0.75),
    ({"a": 1.0, "b": -1.0}, {"a": 3, "b": 1}, 0.75),
    ({"a": 1.0, "b": None}, {"a": 1, "b": 1}, 1.0),      # an abstention does not dilute the others
    ({"a": 1.0, "b": -1.0}, {"a": 0, "b": 1}, 0.0),      # weight 0 disables an algorithm
    ({"a": None}, {"a": 1}, 0.5),
    ({"a": 1.0}, {}, 0.5),                               # unweighted votes are ignored
])
def test_probability_is_the_weighted_mean_vote(votes: dict, weights: dict, expected: float) -> None:
    assert probability_up(votes, weights) == pytest.approx(expected)


def test_the_model_joins_the_vote_with_its_weight() -> None:
    flat = candles_from(np.full(200, 100.0))  # every algorithm votes 0
    config = SignalsConfig()  # four algorithms at weight 1, model weight 2, threshold 0.55
    alone = compute_signal(flat, model_probability=None, model_version="v0003", config=config)
    assert (alone.action, alone.model_version, alone.algo_action) == (HOLD, None, HOLD)
    joined = compute_signal(flat, model_probability=0.8, model_version="v0003", config=config)
    # score = 2 * (2*0.8 - 1) / (4 + 2) = 0.2 -> probability 0.6
    assert joined.probability_up == pytest.approx(0.6)
    assert (joined.action, joined.confidence, joined.model_version) == (BUY, pytest.approx(0.6), "v0003")
    assert joined.components["model"] == pytest.approx(0.6)
    assert (joined.algo_action, joined.algo_probability) == (HOLD, 0.5)
    bearish = compute_signal(flat, model_probability=0.1, model_version="v0003", config=config)
    assert bearish.action == SELL and bearish.probability_up == pytest.approx(0.5 - 2 * 0.8 / 6 / 2)
    muted = compute_signal(flat, model_probability=0.8, model_version="v0003",
                           config=SignalsConfig(model_weight=0.0))
    assert muted.action == HOLD


@pytest.mark.parametrize("bad", [float("nan"), 1.5, -0.1, float("inf")])
def test_a_broken_model_probability_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="model probability"):
        compute_signal(random_walk_candles(200), model_probability=bad, model_version="v1", config=SignalsConfig())


def test_no_candles_is_refused() -> None:
    with pytest.raises(ValueError, match="no candles"):
        compute_signal(np.empty(0, dtype=CANDLE_DTYPE), model_probability=None, model_version=None,
                       config=SignalsConfig())


def test_signal_is_priced_at_the_close_and_serialisable() -> None:
    candles = random_walk_candles(300, seed=5)
    signal = compute_signal(candles, model_probability=0.3, model_version="v0002", config=SignalsConfig())
    data = json.loads(json.dumps(signal.as_dict()))
    assert data["price"] == float(candles["close"][-1]) and data["time"] == "2024-01-13T11:00:00Z"
    assert data["action"] in (BUY, SELL, HOLD) and 0.5 <= data["confidence"] <= 1.0


def test_algorithms_trade_a_fair_share_of_candles() -> None:
    """The documented vote must be usable: on a random walk it neither always holds nor never does."""
    candles = random_walk_candles(800, seed=2)
    config = SignalsConfig()
    actions = [compute_signal(candles[:end], model_probability=None, model_version=None, config=config).action
               for end in range(200, 800)]
    shares = {a: actions.count(a) / len(actions) for a in (BUY, SELL, HOLD)}
    assert all(0.1 < share < 0.8 for share in shares.values()), shares
