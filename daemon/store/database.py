"""The store as one object per process: one SQLite connection, and behind it every SQL statement there is.

`Database(path)` opens (and migrates) `autoretrain.db`; its tables are `candles` (`CandleTable`),
`signals` (signals, their outcomes and model activations: `SignalTable`), `runs` (retrain jobs:
`RetrainRuns`) and `performance` (figures read across them: `PerformanceQueries`). No module outside
`daemon/store/` holds SQL (a test checks); the loop, the processes, the supervisor and the CLI ask
these objects.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from autoretrain.daemon.signals.performance import Performance
from autoretrain.daemon.store.candles import CandleTable
from autoretrain.daemon.store.connection import checkpoint, connect
from autoretrain.daemon.store.performance import PerformanceQueries
from autoretrain.daemon.store.retrain_runs import RetrainRuns
from autoretrain.daemon.store.signals import SignalTable


class Database:
    """The process's store: `create=False` refuses a missing file; `autocheckpoint=False` leaves WAL
    checkpoints to the supervisor (the latency path never waits for one)."""

    def __init__(self, path: str | Path, *, create: bool = True, autocheckpoint: bool = True) -> None:
        self.path = Path(path)
        self.conn: sqlite3.Connection = connect(self.path, create=create, autocheckpoint=autocheckpoint)
        self.candles = CandleTable(self.conn)
        self.signals = SignalTable(self.conn)
        self.runs = RetrainRuns(self.conn)
        self.performance = PerformanceQueries(self.conn)

    def read_performance(self, exchange: str, symbol: str, timeframe: str, *, window: int,
                         current_window: int | None = None, until_ts: int | None = None) -> Performance:
        """Every figure of the series: the current model's window from its activation, the retrain history;
        candles up to the one opening at `until_ts` (None: all of them)."""
        activation = self.signals.current_activation(exchange, symbol, timeframe)
        return self.performance.performance(
            exchange, symbol, timeframe, since_ts=activation.market_ts if activation else None,
            current_version=activation.version if activation else None,
            retrain=self.runs.summary(exchange, symbol, timeframe), window=window, current_window=current_window,
            benched=activation.benched if activation else False, until_ts=until_ts)

    def knows(self, exchange: str, symbol: str, timeframe: str) -> bool:
        """Whether anything (candles or signals) was ever stored for the series: a typo has neither."""
        return bool(self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM series WHERE exchange = ? AND symbol = ? AND timeframe = ?)"
            " OR EXISTS (SELECT 1 FROM signals WHERE exchange = ? AND symbol = ? AND timeframe = ?)",
            (exchange, symbol, timeframe) * 2,
        ).fetchone()[0])

    def checkpoint(self) -> None:
        checkpoint(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
