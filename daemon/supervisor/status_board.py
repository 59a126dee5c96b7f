"""What `autoretrainctl status`, the heartbeat lines and systemd's STATUS= say, built from the truth.

Per process: the supervisor's own child table (pid, restarts) with RSS and CPU from psutil and the
state each child last reported. Per symbol: candles, price and the last candle from the store;
the promoted version from the registry and the version inference actually serves (its report);
signals, win rate, PnL and the retrain decision from the store through the same performance and
policy code inference uses; training progress from the trainer's reports and the retrain queue.
Candles are read up to the market's time (`market.market_time`): one from the future in the store is
neither the price nor the last candle. The board owns the supervisor's store connection: a read or a
checkpoint that fails (a store damaged mid-run) is one warning per distinct failure and an error in
`status`, never an exception out of the supervisor's loop; the children meet the damage on their own
reads, exit 75, and the supervisor checks the store before restarting them.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from typing import Any

import psutil

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import StoreError
from autoretrain.daemon.foundation.timeframes import iso
from autoretrain.daemon.market.market_time import MarketTime
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.store.failures import describe_failure
from autoretrain.daemon.store.retrain_runs import RetrainRun
from autoretrain.daemon.supervisor.children import Children
from autoretrain.daemon.supervisor.symbol_state import SymbolState, read_symbol_state
from autoretrain.ipc import messages
from autoretrain.models.registry import Registry

SYMBOLS_TTL_S = 1.0
log = logging.getLogger("autoretrain.supervisor")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line for a log record or a status field."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class StatusBoard:
    def __init__(self, config: Config, children: Children, *, started_at: float) -> None:
        self.config = config
        self.children = children
        self.started_at = started_at
        self._opened: Database | None = None
        self.registry = Registry(config.models_dir)
        self._psutil: dict[int, psutil.Process] = {}
        self.training_progress: dict[str, Any] | None = None  # newest retrain.progress (every epoch)
        self._symbols_cache: tuple[float, list[SymbolState]] | None = None
        self._unreadable: dict[str, str] = {}  # symbol -> why its state could not be read, while it lasts
        self.market_time = MarketTime(config)
        self._store_failing: dict[str, str] = {}  # what failed (checkpoint, status, a command) -> why, while it lasts
        self.endpoints: dict[str, str | None] = {"metrics_url": None, "dashboard_url": None}  # once they listen

    def db(self) -> Database:
        """The supervisor's one store connection (status, control commands, checkpoints), opened on first use."""
        if self._opened is None:
            self._opened = Database(self.config.db_path)
        return self._opened

    def closed_until_ms(self) -> int | None:
        """Open time of the newest closed candle at the market's time: no stored candle after it is read."""
        return self.market_time.closed_until_ms()

    # -- the supervisor's own store use ----------------------------------------------------------------

    @property
    def store_error(self) -> str | None:
        """Why the supervisor's use of the store fails now (None: it answers)."""
        return next(reversed(self._store_failing.values()), None)

    def store_failed(self, what: str, exc: sqlite3.DatabaseError | StoreError) -> str:
        """`what` (the checkpoint, the status reads, a command) met a failing store: its one line, logged once
        while `what` keeps failing that way; the connection is dropped, so the next use opens the file afresh
        (recovered, replaced)."""
        text = describe_failure(self.config.db_path, exc) if isinstance(exc, sqlite3.DatabaseError) else str(exc)
        if self._store_failing.get(what) != text:
            log.warning("%s: %s", what, text)
        self._store_failing.pop(what, None)
        self._store_failing[what] = text  # the newest failure last: the one `status` shows
        if self._opened is not None:
            opened, self._opened = self._opened, None
            try:
                opened.close()
            except sqlite3.Error:
                pass  # closing a connection to a damaged file: nothing left to keep
        return text

    def store_answered(self, what: str) -> None:
        """`what` worked: one line if it had failed."""
        if self._store_failing.pop(what, None) is not None:
            log.info("%s: store %s answers again", what, self.config.db_path)

    def checkpoint(self) -> None:
        """The WAL checkpoint (ingest and inference leave it to the supervisor), failing soft."""
        try:
            self.db().checkpoint()
        except sqlite3.ProgrammingError:
            raise  # the sqlite3 module misused: a bug, with its traceback
        except (sqlite3.DatabaseError, StoreError) as exc:
            self.store_failed("WAL checkpoint", exc)
        else:
            self.store_answered("WAL checkpoint")

    def fail_interrupted_run(self, run_id: int, error: str) -> RetrainRun | None:
        """Mark a run whose trainer died failed, with why (failing soft: the next trainer's orphan sweep is the
        fallback); the run as it was, or None when it was not left running."""
        try:
            run = self.db().runs.fail_interrupted(run_id, error)
        except sqlite3.ProgrammingError:
            raise
        except (sqlite3.DatabaseError, StoreError) as exc:
            self.store_failed("marking an interrupted retrain failed", exc)
            return None
        self.store_answered("marking an interrupted retrain failed")
        return run

    def on_event(self, message: messages.Message) -> None:
        """Follow training epoch by epoch (what `status` and STATUS= show while a retrain runs)."""
        if isinstance(message, messages.RetrainStarted):
            self.training_progress = {"run_id": message.run_id, "symbol": message.symbol,
                                      "timeframe": message.timeframe, "epoch": 0, "epochs": None, "val_accuracy": None}
        elif isinstance(message, messages.RetrainProgress):
            self.training_progress = {"run_id": message.run_id, "symbol": message.symbol,
                                      "timeframe": message.timeframe, "epoch": message.epoch, "epochs": message.epochs,
                                      "val_accuracy": message.val_accuracy}
        elif isinstance(message, (messages.RetrainFinished, messages.RetrainFailed)):
            self.training_progress = None

    # -- processes -------------------------------------------------------------------------------------

    def _usage(self, pid: int | None) -> dict[str, Any]:
        if pid is None:
            return {"rss_mb": None, "cpu_percent": None, "cpu_seconds": None}
        try:
            process = self._psutil.get(pid)
            times = (process or psutil.Process(pid)).cpu_times()
            if process is None:
                # first look: the average over the process's life (psutil needs two samples for a rate)
                process = self._psutil[pid] = psutil.Process(pid)
                alive = max(1e-3, time.time() - process.create_time())
                process.cpu_percent(None)
                cpu = 100.0 * (times.user + times.system) / alive
            else:
                cpu = process.cpu_percent(None)
            return {"rss_mb": round(process.memory_info().rss / 2**20, 1), "cpu_percent": round(cpu, 1),
                    "cpu_seconds": round(times.user + times.system, 3)}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            self._psutil.pop(pid, None)
            return {"rss_mb": None, "cpu_percent": None, "cpu_seconds": None}

    def processes(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        rows = [{"name": "supervisor", "pid": os.getpid(), "state": "running", "restarts": 0,
                 "uptime_s": round(time.time() - self.started_at, 1), **self._usage(os.getpid())}]
        for child in self.children.table.values():
            rows.append({
                "name": child.name, "pid": child.pid, "state": child.state, "ready": child.ready,
                "restarts": child.restarts, "last_exit_code": child.last_exit_code,
                "uptime_s": round(time.time() - child.started_at, 1) if child.pid and child.started_at else None,
                "last_report_s": round(now - child.last_report, 1) if child.last_report is not None else None,
                **self._usage(child.pid),
                **({"signal_latency": child.detail["signal_latency"]} if "signal_latency" in child.detail else {}),
            })
        return rows

    # -- symbols ---------------------------------------------------------------------------------------

    def _serving_versions(self) -> dict[str, str | None]:
        inference = self.children.table.get("inference")
        if inference is None or not inference.ready:
            return {}
        return dict(inference.detail.get("models") or {})

    def _training(self) -> dict[str, Any] | None:
        """The job in progress: per-epoch events when they arrive, else the trainer's own report."""
        trainer = self.children.table.get("trainer")
        if trainer is None or trainer.pid is None:
            return None
        reported = trainer.detail.get("training")
        if self.training_progress and reported and self.training_progress.get("run_id") == reported.get("run_id"):
            return self.training_progress
        return reported

    def symbol_states(self) -> list[SymbolState]:
        """Per-symbol state, recomputed at most every SYMBOLS_TTL_S: `status` calls and heartbeats share it,
        so a burst of requests never keeps the supervisor's loop busy with the same queries."""
        now = time.monotonic()
        if self._symbols_cache is not None and now - self._symbols_cache[0] < SYMBOLS_TTL_S:
            return self._symbols_cache[1]
        states = self._read_symbol_states()
        self._symbols_cache = (now, states)
        return states

    def _read_symbol_states(self) -> list[SymbolState]:
        """Every symbol's state; one whose reads fail (a damaged store, a value no code path expected) is
        an `unreadable` state and a logged error, never an exception: the supervisor must survive its reads."""
        serving = self._serving_versions()
        training = self._training()
        serving_known = "inference" in self.children.table and self.children.table["inference"].ready
        states, closed, failed = [], self.closed_until_ms(), False
        for symbol in self.config.market.symbols:
            store_failure = False
            try:
                state = read_symbol_state(self.config, self.db(), self.registry, symbol,
                                          serving_version=serving.get(symbol), serving_known=serving_known,
                                          training=training if training and training.get("symbol") == symbol else None,
                                          closed_until_ms=closed)
            except sqlite3.ProgrammingError as exc:  # a bug, but the heartbeat goes on
                state = SymbolState.unreadable(symbol, self.config.market.timeframe, one_line(exc))
            except (sqlite3.DatabaseError, StoreError) as exc:  # a failing store: one warning, its error in status
                failed = store_failure = True
                state = SymbolState.unreadable(symbol, self.config.market.timeframe,
                                               self.store_failed("status", exc))
            except Exception as exc:  # noqa: BLE001 - whatever the store holds, the heartbeat goes on
                state = SymbolState.unreadable(symbol, self.config.market.timeframe, one_line(exc))
            self._note_readable(symbol, state.error, logged=store_failure)
            states.append(state)
        if not failed:
            self.store_answered("status")
        return states

    def _note_readable(self, symbol: str, error: str | None, *, logged: bool = False) -> None:
        """Log a symbol's unreadable state once when it starts (or changes; unless `logged` already, as the
        store's failure) and once when it ends."""
        before = self._unreadable.get(symbol)
        if error is not None and error != before and not logged:
            log.error("cannot read the state of %s from the store: %s", symbol, error)
        elif error is None and before is not None:
            log.info("the state of %s is readable again", symbol)
        if error is None:
            self._unreadable.pop(symbol, None)
        else:
            self._unreadable[symbol] = error

    def snapshot(self) -> dict[str, Any]:
        market_now = self.market_time.shown_ms()
        return {
            "daemon": {"pid": os.getpid(), "ready": self.children.all_ready(), "started_at": iso(int(self.started_at * 1000)),
                       "uptime_s": round(time.time() - self.started_at, 1), "state_dir": str(self.config.state_dir),
                       "source": self.config.market.source, "timeframe": self.config.market.timeframe,
                       "market_time": iso(market_now), "market_time_ms": market_now, **self.endpoints},
            "processes": self.processes(),
            "symbols": [state.as_dict() for state in self.symbol_states()],
            "store": {"path": str(self.config.db_path), "error": self.store_error},
        }

    def summary_line(self) -> str:
        ready = sum(1 for c in self.children.table.values() if c.ready)
        line = f"{ready}/{len(self.children.table)} processes ready"
        training = self._training()
        if training:
            line += f"; training {training.get('symbol')} epoch {training.get('epoch')}/{training.get('epochs') or '?'}"
        return line

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
