"""Reading a series' performance out of the store: the SQL behind `signals.performance.Performance`.

One pass over the series' signals grouped by model version gives every per-version and cumulative
figure; the rolling windows are indexed range reads of the newest settled trades. Everything is
rebuilt from the store on every call, so it survives any restart.
"""

from __future__ import annotations

import sqlite3

from autoretrain.daemon.signals.performance import ALGORITHMS_ONLY, ModelRecord, Performance, RetrainSummary, Sample, Stats

_EARLIEST = -(2**62)
# One pass over the series' signals, per model version. `correct` and `pnl_pct` are NULL for HOLD and
# for unsettled signals, so COUNT(o.correct) counts exactly the settled trades.
_PER_VERSION = """
SELECT s.model_version, MAX(s.candle_ts), SUM(s.action = 'BUY'), SUM(s.action = 'SELL'), SUM(s.action = 'HOLD'),
       SUM(s.pending),
       COUNT(o.correct), SUM(o.correct), SUM(o.pnl_pct),
       COUNT(CASE WHEN s.candle_ts >= :since THEN o.correct END),
       SUM(CASE WHEN s.candle_ts >= :since THEN o.correct END),
       SUM(CASE WHEN s.candle_ts >= :since THEN o.pnl_pct END),
       COUNT(o.algo_correct), SUM(o.algo_correct), SUM(o.algo_pnl_pct),
       COUNT(o.model_correct), SUM(o.model_correct), COUNT(o.model_pnl_pct), SUM(o.model_pnl_pct),
       SUM(o.model_pnl_pct * o.model_pnl_pct),
       COUNT(CASE WHEN s.candle_ts >= :since THEN o.model_correct END),
       SUM(CASE WHEN s.candle_ts >= :since THEN o.model_correct END),
       COUNT(CASE WHEN s.candle_ts >= :since THEN o.model_pnl_pct END),
       SUM(CASE WHEN s.candle_ts >= :since THEN o.model_pnl_pct END),
       SUM(CASE WHEN s.candle_ts >= :since THEN o.model_pnl_pct * o.model_pnl_pct END)
FROM signals s LEFT JOIN outcomes o ON o.signal_id = s.id
WHERE s.exchange = :exchange AND s.symbol = :symbol AND s.timeframe = :timeframe
GROUP BY s.model_version ORDER BY MIN(s.candle_ts)
"""
# the model's newest settled predictions of the current window: its rolling record
_NEWEST_PREDICTIONS = """
SELECT COUNT(*), SUM(model_correct), COUNT(model_pnl_pct), SUM(model_pnl_pct), SUM(model_pnl_pct * model_pnl_pct)
FROM (SELECT o.model_correct, o.model_pnl_pct FROM signals s JOIN outcomes o ON o.signal_id = s.id
      WHERE s.exchange = ? AND s.symbol = ? AND s.timeframe = ? AND o.model_correct IS NOT NULL AND s.candle_ts >= ?
      ORDER BY s.candle_ts DESC LIMIT ?)
"""
# what the model added to the vote, signal by signal, while it was in it (HOLD counts 0)
_VOTE_GAIN = """
SELECT COUNT(*), SUM(gain), SUM(gain * gain)
FROM (SELECT COALESCE(o.pnl_pct, 0) - COALESCE(o.algo_pnl_pct, 0) AS gain
      FROM signals s JOIN outcomes o ON o.signal_id = s.id
      WHERE s.exchange = ? AND s.symbol = ? AND s.timeframe = ? AND s.candle_ts >= ? AND s.model_in_vote = 1
        AND s.model_probability IS NOT NULL)
"""
_NEWEST_TRADES = """
SELECT COUNT(*), SUM(correct), SUM(pnl_pct) FROM (
    SELECT o.correct, o.pnl_pct FROM signals s JOIN outcomes o ON o.signal_id = s.id
    WHERE s.exchange = ? AND s.symbol = ? AND s.timeframe = ? AND s.action != 'HOLD' AND s.candle_ts >= ?
    ORDER BY s.candle_ts DESC LIMIT ?)
"""
_CANDLES = ("SELECT COUNT(c.ts), MAX(c.ts) FROM series se JOIN candles c ON c.series_id = se.id"
            " WHERE se.exchange = ? AND se.symbol = ? AND se.timeframe = ? AND c.ts <= ?")


class PerformanceQueries:
    """Performance figures of a series, through the process's one connection (`store.Database`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def newest_trades(self, exchange: str, symbol: str, timeframe: str, *, since_ts: int | None,
                      limit: int = -1) -> Stats:
        """Settled trades from `since_ts` on (all of them, or the newest `limit`): an indexed range read."""
        return Stats.from_row(self.conn.execute(_NEWEST_TRADES, (exchange, symbol, timeframe,
                                                                 _EARLIEST if since_ts is None else since_ts,
                                                                 limit)).fetchone())

    def model_recent(self, exchange: str, symbol: str, timeframe: str, *, since_ts: int | None,
                     limit: int) -> ModelRecord:
        """The model's newest `limit` settled predictions from `since_ts` on: an indexed range read."""
        return ModelRecord.from_row(self.conn.execute(_NEWEST_PREDICTIONS, (
            exchange, symbol, timeframe, _EARLIEST if since_ts is None else since_ts, limit)).fetchone())

    def vote_gain(self, exchange: str, symbol: str, timeframe: str, *, since_ts: int | None) -> Sample:
        return Sample.from_row(self.conn.execute(_VOTE_GAIN, (
            exchange, symbol, timeframe, _EARLIEST if since_ts is None else since_ts)).fetchone())

    def performance(self, exchange: str, symbol: str, timeframe: str, *, since_ts: int | None,
                    current_version: str | None, retrain: RetrainSummary, window: int,
                    current_window: int | None = None, benched: bool = False,
                    until_ts: int | None = None) -> Performance:
        """Every figure of the series: `since_ts` (the current model's activation) starts `current`,
        `window` sizes `rolling`, `current_window` sizes `current_recent`; candles are counted up to the one
        opening at `until_ts` (the newest closed one: a candle from the future in the store is not counted)."""
        key = (exchange, symbol, timeframe)
        since = _EARLIEST if since_ts is None else since_ts
        candles, last_candle = self.conn.execute(_CANDLES, (*key, 2**63 - 1 if until_ts is None else until_ts)).fetchone()
        rows = self.conn.execute(_PER_VERSION, {"exchange": exchange, "symbol": symbol, "timeframe": timeframe,
                                                "since": since}).fetchall()
        by_version = {(row[0] or ALGORITHMS_ONLY): Stats.from_row(row[6:9]) for row in rows}
        actions = {action: sum(int(row[column] or 0) for row in rows)
                   for column, action in ((2, "BUY"), (3, "SELL"), (4, "HOLD"))}
        return Performance(
            exchange=exchange, symbol=symbol, timeframe=timeframe, candles=int(candles or 0),
            last_candle_ts=last_candle, recorded=sum(actions.values()), actions=actions,
            pending=sum(int(row[5] or 0) for row in rows),
            last_signal_ts=max((row[1] for row in rows), default=None),
            since_start=Stats.total(by_version.values()),
            current_version=current_version, current_since_ts=since_ts,
            current=Stats.total(Stats.from_row(row[9:12]) for row in rows),
            current_window=current_window,
            current_recent=self.newest_trades(*key, since_ts=since_ts, limit=current_window)
            if current_window else Stats(),
            window=window, rolling=self.newest_trades(*key, since_ts=None, limit=window),
            by_version=by_version, algorithms=Stats.total(Stats.from_row(row[12:15]) for row in rows),
            retrain=retrain,
            model_current=_model_total([ModelRecord.from_row(row[20:25]) for row in rows]),
            model_recent=self.model_recent(*key, since_ts=since_ts, limit=current_window)
            if current_window else ModelRecord(),
            model_by_version={row[0]: ModelRecord.from_row(row[15:20]) for row in rows if row[0] is not None},
            vote_gain=self.vote_gain(*key, since_ts=since_ts), benched=benched,
        )


def _model_total(parts: list[ModelRecord]) -> ModelRecord:
    return ModelRecord(sum(p.predictions for p in parts), sum(p.right for p in parts),
                       Sample(sum(p.trades.n for p in parts), sum(p.trades.total for p in parts),
                              sum(p.trades.squares for p in parts)))
