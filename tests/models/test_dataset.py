"""Samples: labels, windows, gaps, time-ordered splits with purge gaps, and the normaliser."""

from __future__ import annotations

import numpy as np
import pytest

from autoretrain.daemon.foundation.timeframes import HOUR_MS
from autoretrain.models import dataset as ds
from autoretrain.models.features import WARMUP_CANDLES, compute_features
from tests.support.data import random_walk_candles


def test_labels_and_future_returns_look_horizon_candles_ahead() -> None:
    close = np.array([10.0, 11.0, 10.5, 10.5, 12.0])
    ends = np.array([0, 1, 2, 3])
    np.testing.assert_array_equal(ds.labels(close, ends, 1), [1, 0, 0, 1])  # a tie is not "up"
    np.testing.assert_array_equal(ds.labels(close, np.array([0, 1, 2]), 2), [1, 0, 1])
    np.testing.assert_allclose(ds.future_returns(close, np.array([0, 2]), 1), [0.1, 0.0])


def test_windows_hold_the_rows_ending_at_each_sample() -> None:
    rows = np.arange(40, dtype=np.float32).reshape(10, 4)
    x = ds.windows(rows, np.array([3, 9]), 3)
    assert x.shape == (2, 3, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], rows[1:4])
    np.testing.assert_array_equal(x[1], rows[7:10])


def test_valid_ends_need_warm_up_and_a_label_and_never_span_a_gap() -> None:
    candles = random_walk_candles(1000)
    candles["ts"][600:] += 5 * HOUR_MS  # five candles missing after index 599
    features = compute_features(candles)
    seq_len, horizon = 8, 2
    ends = ds.valid_ends(features, candles["ts"], HOUR_MS, seq_len, horizon)
    assert ends[0] == WARMUP_CANDLES + seq_len - 1
    assert ends[-1] == 1000 - 1 - horizon
    # before the gap: the label must not lie after it; after it: a fresh warm-up is needed
    assert ends[ends < 600].max() == 599 - horizon
    assert ends[ends >= 600].min() == 600 + WARMUP_CANDLES + seq_len - 1
    starts = ds.segment_starts(candles["ts"], HOUR_MS)
    assert (starts[ends - seq_len + 1 - WARMUP_CANDLES] == starts[ends + horizon]).all()


@pytest.mark.parametrize("seq_len,horizon,fraction", [(16, 1, 0.2), (32, 4, 0.3), (5, 12, 0.5)])
def test_split_is_in_time_order_with_purge_gaps(seq_len: int, horizon: int, fraction: float) -> None:
    ends = np.arange(250, 3000)
    before = 2600
    purge = seq_len + horizon
    split = ds.split_samples(ends, seq_len=seq_len, horizon=horizon, before=before, validation_fraction=fraction,
                             purge=purge)
    train_first, train_last = ds.span(split.train, seq_len, horizon)
    val_first, val_last = ds.span(split.validation, seq_len, horizon)
    assert train_first < train_last < val_first < val_last < before
    assert val_first - train_last - 1 >= purge  # candles strictly between what training and validation use
    assert before - val_last - 1 >= purge
    assert val_first - train_last - 1 <= purge + 1 and before - val_last - 1 <= purge + 1  # and no more is wasted
    share = len(split.validation) / (len(split.validation) + len(split.train) + purge + seq_len)
    assert share == pytest.approx(fraction, abs=0.02)


def test_normaliser_standardises_clips_and_survives_json() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(5.0, 3.0, size=(500, 28))
    rows[10, 0] = np.nan  # a warm-up row is ignored
    normaliser = ds.Normaliser.fit(rows)
    scaled = normaliser.apply(rows[11:])
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=0.05)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=0.05)
    outlier = rows[11:12].copy()
    outlier[0, 3] = 1e9
    assert normaliser.apply(outlier)[0, 3] == ds.CLIP
    assert np.isnan(normaliser.apply(rows[10:11])[0, 0])
    again = ds.Normaliser.from_dict(normaliser.to_dict(), 28)
    np.testing.assert_array_equal(again.apply(rows), normaliser.apply(rows))


def test_constant_feature_does_not_divide_by_zero() -> None:
    rows = np.ones((50, 28))
    assert np.isfinite(ds.Normaliser.fit(rows).apply(rows)).all()


def test_normaliser_from_bad_meta_is_refused() -> None:
    with pytest.raises(ValueError, match="27 means and 27 stds, expected 28"):
        ds.Normaliser.from_dict({"mean": [0.0] * 27, "std": [1.0] * 27}, 28)
    with pytest.raises(ValueError, match="non-positive"):
        ds.Normaliser.from_dict({"mean": [0.0] * 28, "std": [0.0] * 28}, 28)
