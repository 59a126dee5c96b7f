"""Batching symbols never changes a signal: 2-D indicators, features and votes equal the 1-D ones."""

from __future__ import annotations

import numpy as np
import pytest

from autoretrain.daemon.foundation.config_schema import SignalsConfig, SimulatedConfig
from autoretrain.daemon.market.simulated import SimulatedSource
from autoretrain.daemon.signals.algorithms import REQUIRED_CANDLES, votes, votes_batch
from autoretrain.daemon.signals.vote import compute_signal, compute_signals
from autoretrain.models import indicators as ind
from autoretrain.models.features import compute_features


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    source = SimulatedSource(SimulatedConfig(), "1h")
    return np.stack([source.series(f"S{i}/USDT", "1h").candles(0, 600)[-232:] for i in range(7)])


def naive_rolling(values: np.ndarray, window: int, reduce) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = np.full(len(values), np.nan)
    for end in range(window - 1, len(values)):
        out[end] = reduce(values[end - window + 1:end + 1])
    return out


def test_rolling_windows_match_the_definition() -> None:
    rng = np.random.default_rng(3)
    prices = 30000 * np.exp(np.cumsum(rng.normal(0, 0.01, 500)))
    prices[[0, 40, 41]] = np.nan
    for window in (5, 20, 96):
        np.testing.assert_allclose(ind.sma(prices, window), naive_rolling(prices, window, np.mean), rtol=1e-12)
        np.testing.assert_allclose(ind.rolling_std(prices, window), naive_rolling(prices, window, np.std),
                                   rtol=1e-7, atol=1e-9)


def test_ema_matches_the_recursion() -> None:
    rng = np.random.default_rng(4)
    values = np.concatenate([[np.nan] * 3, 100 + np.cumsum(rng.normal(0, 1, 2000))])
    for span, wilder in ((2, False), (12, False), (26, False), (14, True), (200, False)):
        alpha = 1 / span if wilder else 2 / (span + 1)
        expected = np.full(len(values), np.nan)
        level = values[3:3 + span].mean()
        expected[3 + span - 1] = level
        for index in range(3 + span, len(values)):
            level += alpha * (values[index] - level)
            expected[index] = level
        np.testing.assert_allclose(ind.ema(values, span, wilder=wilder), expected, rtol=1e-12)


def test_indicators_on_rows_equal_indicators_on_each_series(windows: np.ndarray) -> None:
    close = windows["close"]
    for function in (lambda x: ind.rsi(x, 14), lambda x: ind.macd(x)[2], lambda x: ind.bollinger(x)[3],
                     lambda x: ind.zscore(x, 24), lambda x: ind.log_returns(x, 6)):
        batched = function(close)
        for row in range(len(close)):
            np.testing.assert_array_equal(batched[row], function(close[row]))


def test_features_of_a_batch_equal_features_of_each_symbol(windows: np.ndarray) -> None:
    batched = compute_features(windows)
    assert batched.shape == (len(windows), windows.shape[1], 28)
    for row, window in enumerate(windows):
        np.testing.assert_array_equal(batched[row], compute_features(window))


def test_votes_and_signals_of_a_batch_equal_those_of_each_symbol(windows: np.ndarray) -> None:
    config = SignalsConfig()
    probabilities = [None, 0.9, 0.1, 0.55, None, 0.5, 0.71]
    versions = [None, "v1", "v2", "v3", None, "v5", "v6"]
    assert votes_batch(windows) == [votes(window) for window in windows]
    batched = compute_signals(windows[:, -REQUIRED_CANDLES:], model_probabilities=probabilities,
                              model_versions=versions, config=config)
    single = [compute_signal(window, model_probability=p, model_version=v, config=config)
              for window, p, v in zip(windows, probabilities, versions, strict=True)]
    assert batched == single
    # the comparison means something only if the batch holds more than one kind of decision
    assert len({s.action for s in batched}) >= 2, [s.action for s in batched]
