"""The 28 features: shape, warm-up, no lookahead, formulas, and agreement between short and long histories."""

from __future__ import annotations

import numpy as np
import pytest

from autoretrain.daemon.market.csv_file import read_candle_csv
from autoretrain.models.features import FEATURE_NAMES, FEATURE_SET_VERSION, WARMUP_CANDLES, compute_features
from tests.support.data import random_walk_candles
from tests.support.models import regime_series


def test_twenty_eight_named_features_as_float32() -> None:
    candles = random_walk_candles(400)
    features = compute_features(candles)
    assert len(FEATURE_NAMES) == 28 == len(set(FEATURE_NAMES))
    assert features.shape == (400, 28) and features.dtype == np.float32
    assert FEATURE_SET_VERSION


def test_rows_are_nan_during_warm_up_and_finite_after() -> None:
    features = compute_features(regime_series(("momentum", 600), ("mean_reversion", 600)).candles(0, 999))
    assert np.isnan(features[:WARMUP_CANDLES]).all()
    assert np.isfinite(features[WARMUP_CANDLES:]).all()


def test_shorter_input_than_warm_up_is_all_nan() -> None:
    features = compute_features(random_walk_candles(50))
    assert features.shape == (50, 28) and np.isnan(features).all()


@pytest.mark.parametrize("t", [WARMUP_CANDLES, 333, 598])
def test_no_lookahead_rewriting_every_later_candle_leaves_features_at_t_unchanged(t: int) -> None:
    candles = random_walk_candles(600, seed=1)
    before = compute_features(candles)
    rewritten = candles.copy()
    other = random_walk_candles(600, seed=99, price=5000.0)
    for field in ("open", "high", "low", "close", "volume"):
        rewritten[field][t + 1:] = other[field][t + 1:]
    after = compute_features(rewritten)
    np.testing.assert_array_equal(after[: t + 1], before[: t + 1])
    assert not np.array_equal(after[t + 1:], before[t + 1:])


def test_features_from_the_last_candles_match_features_from_a_long_history() -> None:
    # Inference computes features from seq_len + WARMUP_CANDLES candles; training from months of them.
    candles = regime_series(("momentum", 3000)).candles(0, 2999)
    seq_len = 32
    full = compute_features(candles)[-seq_len:]
    recent = compute_features(candles[-(seq_len + WARMUP_CANDLES):])[-seq_len:]
    np.testing.assert_allclose(recent, full, atol=1e-5, rtol=0)


def test_formulas_of_a_few_features() -> None:
    candles = random_walk_candles(300, seed=3)
    features = compute_features(candles)
    col = {name: features[:, i].astype(np.float64) for i, name in enumerate(FEATURE_NAMES)}
    close, open_, high, low = (candles[f] for f in ("close", "open", "high", "low"))
    t = 250
    assert col["ret_1"][t] == pytest.approx(np.log(close[t] / close[t - 1]), rel=1e-5)
    assert col["ret_24"][t] == pytest.approx(np.log(close[t] / close[t - 24]), rel=1e-5)
    assert col["body"][t] == pytest.approx(np.log(close[t] / open_[t]), rel=1e-4, abs=1e-7)
    assert col["range"][t] == pytest.approx(np.log(high[t] / low[t]), rel=1e-5)
    assert col["close_sma_24"][t] == pytest.approx(np.log(close[t] / close[t - 23: t + 1].mean()), rel=1e-4, abs=1e-7)
    returns = np.diff(np.log(close))
    assert col["vol_12"][t] == pytest.approx(returns[t - 12:t].std(), rel=1e-4)
    assert -0.5 <= col["close_location"][t] <= 0.5
    assert -1.0 <= col["rsi_14"][t] <= 1.0


def test_flat_zero_volume_candles_give_finite_features() -> None:
    candles = random_walk_candles(400, seed=4)
    flat = slice(250, 260)
    price = candles["close"][249]
    for field in ("open", "high", "low", "close"):
        candles[field][flat] = price
    candles["open"][260] = price
    candles["volume"][flat] = 0.0
    features = compute_features(candles)
    assert np.isfinite(features[WARMUP_CANDLES:]).all()


@pytest.mark.realdata
def test_real_btc_history_has_finite_features_after_warm_up(real_1h) -> None:  # type: ignore[no-untyped-def]
    candles = read_candle_csv(real_1h, "1h").candles  # 8 years: gaps, zero-volume candles, the COVID crash
    features = compute_features(candles)
    assert np.isfinite(features[WARMUP_CANDLES:]).all()
    spread = np.std(features[WARMUP_CANDLES:], axis=0)
    assert (spread > 0).all(), [FEATURE_NAMES[i] for i in np.flatnonzero(spread == 0)]
