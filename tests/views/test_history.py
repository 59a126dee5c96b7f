"""The chart data (`views.history`) on a scripted market: rolling win rate, cumulative PnL, the model timeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.store.signals import Activation
from autoretrain.daemon.views.history import activation_events, symbol_history, tallies
from tests.support.market_script import EX, SYM, TF, Market, ts_at


def _config(tmp_path: Path) -> Config:
    return build_config({"paths": {"state_dir": str(tmp_path)},
                         "market": {"source": "ccxt", "exchange": EX, "symbols": [SYM], "timeframe": TF},
                         "auto_training": {"rolling_window": 20, "min_signals": 20}}, base=tmp_path, env={})


@pytest.fixture
def market(tmp_path: Path) -> Market:
    played = Market(tmp_path / "autoretrain.db")
    played.history(5)
    played.activate("v0001")
    played.play("W" * 10 + "L" * 10, "v0001")
    run_id, _ = played.db.runs.queue(EX, SYM, TF, trigger="performance", reason="win rate 50% under 45%",
                                     requested_market_ts=played.now_ms)
    played.db.runs.finish(run_id, "rejected", version="v0002", detail={"reason": "accuracy 51% does not beat 55%"})
    played.activate("v0002")
    played.play("WWWW", "v0002")
    played.activate("v0001")  # a rollback
    played.play("H", "v0001")
    yield played
    played.close()


def test_rolling_win_rate_and_cumulative_pnl_follow_the_trades(market: Market, tmp_path: Path) -> None:
    history = symbol_history(market.db, _config(tmp_path), SYM, until_ms=None, candles=1000)
    combined = history["trades"]["combined"]
    assert combined["ts"] == [ts_at(i + 1) for i in range(5, 29)]  # 24 trades, each at its exit; HOLD is no trade
    rates = combined["win_rate"]
    assert rates[:4] == [None] * 4 and rates[4:10] == [1.0] * 6  # drawn from the 5th trade on
    assert rates[19] == pytest.approx(0.5)  # 10 right of 20
    assert rates[23] == pytest.approx(10 / 20)  # the newest 20: 6 right, 10 wrong, 4 right
    pnl = combined["pnl_pct"]
    assert all(b > a for a, b in zip(pnl[:10], pnl[1:10], strict=False))  # right trades add, net of fees
    assert all(b < a for a, b in zip(pnl[9:20], pnl[10:20], strict=False))
    settled = [r.outcome.pnl_pct for r in market.db.signals.between(EX, SYM, TF, 0, ts_at(100)) if r.outcome and
               r.outcome.pnl_pct is not None]
    assert pnl[-1] == pytest.approx(sum(settled))
    assert history["threshold"] == 0.45 and history["rolling_window"] == 20
    assert len(history["markers"]) == 24 and {m["action"] for m in history["markers"]} == {"BUY", "SELL"}


def test_the_timeline_names_promotions_the_rejection_and_the_rollback(market: Market, tmp_path: Path) -> None:
    config = _config(tmp_path)
    history = symbol_history(market.db, config, SYM, until_ms=None, candles=1000)
    kinds = [(e["kind"], e.get("version"), e.get("status")) for e in history["events"]]
    assert kinds == [("promotion", "v0001", None), ("retrain", "v0002", "rejected"), ("promotion", "v0002", None),
                     ("rollback", "v0001", None)]
    rejected = history["events"][1]
    assert rejected["trigger"] == "performance" and rejected["result"] == "accuracy 51% does not beat 55%"
    assert [(s["version"], s["from_ts"], s["to_ts"]) for s in history["versions"]] == [
        ("v0001", ts_at(5), ts_at(25)), ("v0002", ts_at(25), ts_at(29)), ("v0001", ts_at(29), ts_at(30))]
    counts = tallies(market.db, config, SYM)
    assert counts["promotions"] == 2 and counts["rollbacks"] == 1 and counts["rejections"] == 1
    assert counts["retrains"] == [{"trigger": "performance", "result": "rejected", "count": 1}]
    assert counts["trades_by_action"]["combined"] == {"BUY": 14, "SELL": 10}


def test_a_window_of_candles_and_an_empty_store(market: Market, tmp_path: Path) -> None:
    config = _config(tmp_path)
    recent = symbol_history(market.db, config, SYM, until_ms=None, candles=10)
    assert recent["candles"]["ts"][0] == ts_at(21) and len(recent["candles"]["ts"]) == 10
    assert all(m["ts"] >= ts_at(21) for m in recent["markers"])
    assert [e["kind"] for e in recent["events"]] == ["retrain", "promotion", "rollback"]  # at 24, 25, 29
    early = symbol_history(market.db, config, SYM, until_ms=ts_at(12), candles=1000)
    assert early["candles"]["ts"][-1] == ts_at(12) and max(early["trades"]["combined"]["ts"]) <= ts_at(12)
    empty = symbol_history(market.db, config, "ETH/USDT", until_ms=None)
    assert empty["candles"] == {"ts": [], "close": []} and empty["events"] == [] and empty["from"] is None


def test_benching_and_the_algorithms_alone_are_not_promotions() -> None:
    events = activation_events([Activation("v0003", 1, 0.0), Activation("v0003", 2, 0.0, benched=True),
                                Activation("v0003", 3, 0.0), Activation("v0003", 4, 0.0), Activation(None, 5, 0.0),
                                Activation("v0004", 6, 0.0)])
    assert [e["kind"] for e in events] == ["promotion", "benched", "unbenched", "reactivated", "algorithms_only",
                                           "promotion"]
