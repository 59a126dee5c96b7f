"""Settling signals from stored candles only: horizon, fees per side, idempotence, gaps delay."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.config_schema import SignalsConfig
from autoretrain.daemon.market.csv_file import read_candle_csv
from autoretrain.daemon.signals.algorithms import REQUIRED_CANDLES
from autoretrain.daemon.signals.outcomes import trade_result
from autoretrain.daemon.signals.vote import BUY, HOLD, SELL, compute_signal
from autoretrain.daemon.store.connection import connect
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.store.signals import SignalTable
from tests.support.market_script import EX, SYM, TF, Market, rising, trade, ts_at


@pytest.mark.parametrize("action, entry, exit_, fee_bps, correct, pnl", [
    (BUY, 100.0, 101.0, 10.0, True, 1.0 - 0.2),     # 10 bps a side: a round trip costs 0.2 %
    (BUY, 100.0, 99.0, 10.0, False, -1.0 - 0.2),
    (BUY, 100.0, 100.0, 10.0, False, -0.2),          # flat is not up: the model's label
    (SELL, 100.0, 99.0, 10.0, True, 1.0 - 0.2),
    (SELL, 100.0, 101.0, 10.0, False, -1.0 - 0.2),
    (SELL, 100.0, 100.0, 10.0, True, -0.2),          # not up: the SELL call was right, the fees still lost
    (BUY, 200.0, 202.0, 0.0, True, 1.0),
    (SELL, 50.0, 45.0, 25.0, True, 10.0 - 0.5),
    (HOLD, 100.0, 150.0, 10.0, None, None),          # not a trade
])
def test_trade_result(action: str, entry: float, exit_: float, fee_bps: float, correct: bool | None,
                      pnl: float | None) -> None:
    got_correct, got_pnl = trade_result(action, entry, exit_, fee_bps)
    assert got_correct is correct
    assert got_pnl == (None if pnl is None else pytest.approx(pnl))


@pytest.mark.parametrize("horizon", [1, 3])
def test_a_signal_settles_horizon_candles_later(tmp_path: Path, horizon: int) -> None:
    market = Market(tmp_path / "s.db", horizon=horizon)
    market.history(5)
    market.play("WLH", version="v0001", settle=False)  # signals at candles 5, 6, 7; candles 0..7 stored
    first = market.signals.settle(EX, SYM, TF, horizon=horizon, fee_bps=10)
    assert [o.candle_ts for o in first] == ([ts_at(5), ts_at(6)] if horizon == 1 else [])
    market.candles.upsert(EX, SYM, TF, rising(8, horizon))
    second = market.signals.settle(EX, SYM, TF, horizon=horizon, fee_bps=10)
    outcomes = {o.candle_ts: o for o in first + second}
    assert sorted(outcomes) == [ts_at(5), ts_at(6), ts_at(7)]
    assert {r.signal.candle_ts: r.outcome for r in market.signals.recent(EX, SYM, TF)} == outcomes  # as stored

    buy, sell, hold = (outcomes[ts_at(i)] for i in (5, 6, 7))
    assert (buy.exit_ts, buy.exit_price, buy.entry_price, buy.horizon) == (ts_at(5 + horizon), 105.0 + horizon,
                                                                           105.0, horizon)
    assert buy.return_pct == pytest.approx(100 * horizon / 105)
    assert (buy.correct, buy.pnl_pct) == (True, pytest.approx(100 * horizon / 105 - 0.2))
    assert (sell.correct, sell.pnl_pct) == (False, pytest.approx(-100 * horizon / 106 - 0.2))
    assert (hold.correct, hold.pnl_pct, hold.return_pct) == (None, None, pytest.approx(100 * horizon / 107))
    assert market.signals.pending(EX, SYM, TF) == 0


def test_settling_twice_settles_once(tmp_path: Path) -> None:
    market = Market(tmp_path / "s.db")
    market.play("WWLH", settle=False)
    market.candles.upsert(EX, SYM, TF, rising(4, 1))
    assert len(market.signals.settle(EX, SYM, TF, horizon=1, fee_bps=10)) == 4
    assert market.signals.settle(EX, SYM, TF, horizon=1, fee_bps=10) == []
    # another process (its own connection) settling the same series finds nothing left either
    other = SignalTable(connect(tmp_path / "s.db"))
    assert other.settle(EX, SYM, TF, horizon=1, fee_bps=10) == []
    # even a signal whose pending flag was lost (crash between writes is impossible: one transaction) is not
    # settled twice: the outcome row is keyed by the signal
    market.conn.execute("UPDATE signals SET pending = 1")
    assert market.signals.settle(EX, SYM, TF, horizon=1, fee_bps=10) == []
    assert market.conn.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0] == 4


def test_a_gap_delays_settlement_and_never_fakes_it(tmp_path: Path) -> None:
    path = tmp_path / "gap.db"
    db = Database(path)
    candles, store = db.candles, db.signals
    all_candles = rising(0, 6)
    candles.upsert(EX, SYM, TF, all_candles[[0, 1, 3, 4, 5]])  # candle 2 is missing
    for index in (1, 3):
        store.record(EX, SYM, TF, trade(index, BUY))
    settled = store.settle(EX, SYM, TF, horizon=1, fee_bps=10)
    # signal 3 settles on candle 4; signal 1 waits for candle 2: candle 3 does not stand in for it
    assert [(o.candle_ts, o.exit_ts) for o in settled] == [(ts_at(3), ts_at(4))]
    assert store.pending(EX, SYM, TF) == 1
    assert store.settle(EX, SYM, TF, horizon=1, fee_bps=10) == []
    candles.upsert(EX, SYM, TF, all_candles[[2]])  # the ingest fills the gap later
    late = store.settle(EX, SYM, TF, horizon=1, fee_bps=10)
    assert [(o.candle_ts, o.exit_ts, o.exit_price) for o in late] == [(ts_at(1), ts_at(2), 102.0)]
    assert store.pending(EX, SYM, TF) == 0


def test_nothing_settles_without_stored_candles(tmp_path: Path) -> None:
    store = SignalTable(connect(tmp_path / "empty.db"))
    store.record(EX, SYM, TF, trade(1, SELL))
    assert store.settle(EX, SYM, TF, horizon=1, fee_bps=10) == []
    assert store.pending(EX, SYM, TF) == 1
    with pytest.raises(ValueError, match="horizon"):
        store.settle(EX, SYM, TF, horizon=0, fee_bps=10)


def test_the_algorithms_vote_is_settled_beside_the_signal(tmp_path: Path) -> None:
    market = Market(tmp_path / "s.db")
    market.signals.record(EX, SYM, TF, trade(0, HOLD, "v0002", algo_action=BUY))
    market.signals.record(EX, SYM, TF, trade(1, BUY, "v0002", algo_action=SELL))
    market.candles.upsert(EX, SYM, TF, rising(0, 3))
    hold, buy = market.signals.settle(EX, SYM, TF, horizon=1, fee_bps=0)
    assert (hold.correct, hold.algo_correct, hold.algo_pnl_pct) == (None, True, pytest.approx(100 / 100))
    assert (buy.correct, buy.algo_correct, buy.algo_pnl_pct) == (True, False, pytest.approx(-100 / 101))
    assert buy.as_dict()["exit_time"] == "2024-01-01T02:00:00Z"


@pytest.mark.realdata
def test_real_candles_across_an_exchange_outage(real_1h: Path, tmp_path: Path) -> None:
    """Binance was down 33 hours on 2018-02-08: signals whose exit candle fell in the outage stay pending."""
    candles = read_candle_csv(real_1h, "1h").candles[700:1050]  # the outage follows index 911 of the file
    horizon, step = 3, 3_600_000
    db = Database(tmp_path / "real.db")
    store, signals = db.candles, db.signals
    store.upsert(EX, SYM, TF, candles[:REQUIRED_CANDLES])
    for index in range(REQUIRED_CANDLES, len(candles)):  # the daemon's loop, one closed candle at a time
        store.upsert(EX, SYM, TF, candles[index:index + 1])
        window = store.latest(EX, SYM, TF, REQUIRED_CANDLES)
        signals.record(EX, SYM, TF, compute_signal(window, model_probability=None, model_version=None,
                                                   config=SignalsConfig(), horizon=horizon))
        signals.settle(EX, SYM, TF, horizon=horizon, fee_bps=10)
    close_at = dict(zip(candles["ts"].tolist(), candles["close"].tolist(), strict=True))
    records = signals.recent(EX, SYM, TF, limit=1000)
    assert len(records) == len(candles) - REQUIRED_CANDLES
    in_outage = []
    for record in records:
        exit_ts = record.signal.candle_ts + horizon * step
        if exit_ts in close_at:
            assert record.outcome is not None and record.outcome.exit_price == close_at[exit_ts]
            assert record.outcome.return_pct == pytest.approx(100 * (close_at[exit_ts] / record.signal.price - 1))
        else:
            assert record.outcome is None
            if exit_ts <= candles["ts"][-1]:
                in_outage.append(record.signal.candle_ts)
    assert len(in_outage) == 3  # the last three candles before the outage; and the newest 3 await their exit
    assert signals.pending(EX, SYM, TF) == 3 + horizon


def test_each_signal_settles_at_the_horizon_of_the_model_that_made_it(tmp_path: Path) -> None:
    """The settlement horizon is the serving model's, recorded with the signal, not the configured one."""
    market = Market(tmp_path / "h.db")
    market.candles.upsert(EX, SYM, TF, rising(0, 10))
    market.signals.record(EX, SYM, TF, trade(2, BUY, "v0001", horizon=3))  # a 3-candle model
    market.signals.record(EX, SYM, TF, trade(3, BUY))  # algorithms alone, 1 candle
    settled = market.signals.settle(EX, SYM, TF, horizon=1, fee_bps=0)
    assert {(o.candle_ts, o.exit_ts, o.horizon) for o in settled} == {(ts_at(2), ts_at(5), 3), (ts_at(3), ts_at(4), 1)}


def test_the_models_own_record_is_settled_beside_the_vote(tmp_path: Path) -> None:
    """The model's direction counts on every candle it predicted; its own trade only where it was confident."""
    market = Market(tmp_path / "m.db")
    market.candles.upsert(EX, SYM, TF, rising(0, 5))
    held = trade(1, HOLD, "v0001")  # the combined vote held, the model leaned up at 0.58: its own call is HOLD
    market.signals.record(EX, SYM, TF, replace(held, model_probability=0.58, model_action=HOLD))
    market.signals.record(EX, SYM, TF, replace(trade(2, HOLD, "v0001"), model_probability=0.3, model_action=SELL))
    first, second = market.signals.settle(EX, SYM, TF, horizon=1, fee_bps=10)
    assert (first.model_correct, first.model_pnl_pct, first.correct) == (True, None, None)
    assert (second.model_correct, second.model_pnl_pct) == (False, pytest.approx(-100 / 102 - 0.2))
