"""Performance from the store: windows, per version, the algorithms' baseline, retrain history, restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoretrain.daemon.signals.performance import ALGORITHMS_ONLY, Stats
from autoretrain.daemon.signals.vote import BUY, HOLD, SELL
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.store.retrain_runs import FAILED, PROMOTED, REJECTED
from tests.support.market_script import EX, SYM, TF, Market, rising, trade, ts_at


def pnl(script: str, first: int) -> float:
    """Net PnL % of `script` played from candle `first` of the rising market (fee 10 bps a side)."""
    return sum((100 if c == "W" else -100) / (100 + i) - 0.2 for i, c in enumerate(script, start=first) if c != "H")


def expected(script: str, first: int) -> Stats:
    """The Stats that `script` played from candle `first` must add up to."""
    trades = [c for c in script if c != "H"]
    return Stats(len(trades), trades.count("W"), pytest.approx(pnl(script, first)))


def play_history(market: Market) -> None:
    """Algorithms only, then v0001, v0002 and a rollback to v0001 (candles 5..17)."""
    market.history(5)
    market.play("WWHLW")                  # 5..9
    market.activate("v0001")
    market.play("LLWH", "v0001")          # 10..13
    market.activate("v0002")
    market.play("WWW", "v0002")           # 14..16
    market.activate("v0001")
    market.play("L", "v0001")             # 17


def test_every_window_adds_up(tmp_path: Path) -> None:
    market = Market(tmp_path / "p.db")
    play_history(market)
    perf = market.db.read_performance(EX, SYM, TF, window=5, current_window=3)
    assert perf.since_start == expected("WWHLWLLWHWWWL", 5)
    assert (perf.since_start.signals, perf.since_start.correct) == (11, 7)
    assert perf.since_start.win_rate == pytest.approx(7 / 11)
    assert perf.since_start.pnl_avg_pct == pytest.approx(perf.since_start.pnl_total_pct / 11)
    # the current model is v0001 since the rollback: its first stint is not in the window
    assert (perf.current_version, perf.current_since_ts) == ("v0001", ts_at(17))
    assert perf.current == expected("L", 17)
    assert perf.current_recent == expected("L", 17)
    # the newest five trades, whoever made them: W (v0001's 12), W W W (v0002), L (v0001's 17)
    assert perf.rolling == Stats(5, 4, pytest.approx(pnl("W", 12) + pnl("WWWL", 14)))
    assert perf.by_version == {ALGORITHMS_ONLY: expected("WWHLW", 5),
                               "v0001": Stats(4, 1, pytest.approx(pnl("LLWH", 10) + pnl("L", 17))),
                               "v0002": expected("WWW", 14)}
    assert list(perf.by_version) == [ALGORITHMS_ONLY, "v0001", "v0002"]  # in order of first use
    assert (perf.recorded, perf.actions, perf.pending) == (13, {BUY: 7, SELL: 4, HOLD: 2}, 0)
    assert (perf.candles, perf.last_candle_ts, perf.last_signal_ts) == (19, ts_at(18), ts_at(17))
    payload = json.loads(json.dumps(perf.as_dict()))
    assert payload["current_model"]["version"] == "v0001" and payload["rolling"]["window"] == 5
    assert payload["since_start"]["signals"] == 11 and payload["by_version"][ALGORITHMS_ONLY]["correct"] == 3


def test_current_recent_is_the_newest_trades_of_the_current_model(tmp_path: Path) -> None:
    market = Market(tmp_path / "p.db")
    market.activate("v0003")
    market.play("LLLLLWHWW", "v0003")
    perf = market.db.read_performance(EX, SYM, TF, window=100, current_window=4)
    assert (perf.current.signals, perf.current.correct) == (8, 3)
    assert perf.current_recent == expected("LWHWW", 4)
    assert (perf.current_recent.signals, perf.current_recent.correct) == (4, 3)


def test_hold_is_not_a_trade_and_pending_trades_do_not_count_yet(tmp_path: Path) -> None:
    market = Market(tmp_path / "p.db")
    market.play("HHHW")
    market.play("LW", settle=False)
    perf = market.db.read_performance(EX, SYM, TF, window=100)
    assert (perf.since_start.signals, perf.since_start.correct) == (1, 1)  # only the settled W
    assert (perf.recorded, perf.actions[HOLD], perf.pending) == (6, 3, 2)
    market.settle_all()
    assert market.db.read_performance(EX, SYM, TF, window=100).since_start == expected("HHHWLW", 0)


def test_the_algorithms_own_vote_is_scored_as_a_baseline(tmp_path: Path) -> None:
    market = Market(tmp_path / "p.db")
    market.candles.upsert(EX, SYM, TF, rising(0, 5))
    market.signals.record(EX, SYM, TF, trade(0, BUY, "v0001", algo_action=SELL))   # model right, rules wrong
    market.signals.record(EX, SYM, TF, trade(1, HOLD, "v0001", algo_action=BUY))   # rules right, no trade
    market.signals.record(EX, SYM, TF, trade(2, SELL, "v0001", algo_action=HOLD))
    market.signals.settle(EX, SYM, TF, horizon=1, fee_bps=0)
    perf = market.db.read_performance(EX, SYM, TF, window=100)
    assert (perf.since_start.signals, perf.since_start.correct) == (2, 1)
    assert perf.algorithms == Stats(2, 1, pytest.approx(-100 / 100 + 100 / 101))


def test_empty_series(tmp_path: Path) -> None:
    perf = Database(tmp_path / "e.db").read_performance(EX, SYM, TF, window=50, current_window=20)
    assert perf.since_start == Stats() and perf.since_start.win_rate is None and perf.rolling.pnl_avg_pct is None
    assert (perf.candles, perf.recorded, perf.current_version, perf.by_version) == (0, 0, None, {})
    assert perf.retrain.last is None and not perf.retrain.in_progress
    assert perf.as_dict()["last_signal"] is None


def test_last_retrain_and_its_result(tmp_path: Path) -> None:
    db = Database(tmp_path / "r.db")
    runs = db.runs

    def summary():
        return db.read_performance(EX, SYM, TF, window=10).retrain

    run_id, _ = runs.queue(EX, SYM, TF, trigger="performance", requested_market_ts=ts_at(100))
    assert summary().in_progress and summary().last is None
    runs.finish(run_id, REJECTED, data_end_ts=ts_at(99))
    rejected = summary()
    assert not rejected.in_progress
    assert (rejected.last.status, rejected.setback_status, rejected.setback_ts, rejected.last_completed_ts) == (
        REJECTED, REJECTED, ts_at(100), ts_at(100))
    run_id = runs.start(EX, SYM, TF, trigger="cli")  # `autoretrainctl train`: no request time, data end only
    runs.finish(run_id, FAILED, data_end_ts=ts_at(130))
    failed = summary()
    assert (failed.setback_status, failed.setback_ts, failed.last_completed_ts) == (FAILED, ts_at(130), ts_at(100))
    run_id = runs.start(EX, SYM, TF, trigger="periodic", requested_market_ts=ts_at(200))
    runs.finish(run_id, PROMOTED, version="v0004", data_end_ts=ts_at(200))
    promoted = summary()  # a promotion ends the setback
    assert (promoted.setback_status, promoted.setback_ts, promoted.last_completed_ts) == (None, None, ts_at(200))
    assert promoted.as_dict()["last"] == {"status": PROMOTED, "trigger": "periodic", "reason": "",
                                          "market_time": "2024-01-09T08:00:00Z", "version": "v0004",
                                          "finished_at": promoted.last.finished_at, "run_id": run_id}
    other = db.read_performance(EX, "ETH/USDT", TF, window=10).retrain
    assert other.last is None  # per series


def test_a_restart_rebuilds_the_same_performance(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    market = Market(path)
    play_history(market)
    market.db.runs.finish(market.db.runs.start(EX, SYM, TF, trigger="first_model",
                                                                   requested_market_ts=ts_at(9)), PROMOTED)
    before = market.db.read_performance(EX, SYM, TF, window=5, current_window=3).as_dict()
    market.close()
    db = Database(path)  # a new process after a crash: nothing is kept in memory
    assert db.read_performance(EX, SYM, TF, window=5, current_window=3).as_dict() == before
    assert before["since_start"]["signals"] == 11 and before["retrain"]["last"]["status"] == PROMOTED


@pytest.mark.parametrize("scope", ["current_model", "rolling"])
def test_the_policys_indexed_reads_agree_with_the_full_performance(tmp_path: Path, scope: str) -> None:
    from autoretrain.daemon.foundation.config import build_config
    from autoretrain.daemon.loop.assess import policy_inputs
    from autoretrain.daemon.signals.policy import PolicyInputs

    market = Market(tmp_path / "p.db")
    play_history(market)
    market.db.runs.finish(market.db.runs.start(EX, SYM, TF, trigger="manual"), REJECTED)
    config = build_config({"auto_training": {"win_rate_scope": scope, "rolling_window": 20, "min_signals": 1},
                           "training": {"min_candles": 10, "days": 30}}, env={})
    perf = market.db.read_performance(EX, SYM, TF, window=100, current_window=20)
    full = PolicyInputs.from_performance(perf, has_model=True, scope=scope)
    light = policy_inputs(market.db, config, EX, SYM, TF, has_model=True)
    assert light == PolicyInputs(**{**full.__dict__, "candles": 10})  # candles: counted only up to min_candles
