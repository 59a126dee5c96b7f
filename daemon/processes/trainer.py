"""The trainer process: runs queued retrain jobs one at a time, niced, with bounded torch threads.

Jobs come from the store's retrain queue (`retrain_runs` rows with status `queued`), filled by the
retrain policy in inference and by `autoretrainctl retrain`; a `retrain.queued` hint wakes the
trainer early, a poll every second covers lost hints. A job trains, exports, checks parity,
evaluates challenger vs champion and promotes through the registry (models.pipeline). A crash or
kill mid-job leaves the champion untouched (versions are staged and renamed; the pointer moves last),
and the next trainer start marks the interrupted run failed.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Sequence

from autoretrain.daemon.foundation.errors import USER_ERRORS, TrainingTimedOut
from autoretrain.daemon.processes.child import Child, run_child, transient_fault
from autoretrain.daemon.processes.retrain_job import run_training  # torch: the trainer is its only process
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.store.retrain_runs import RetrainRun
from autoretrain.ipc import messages
from autoretrain.models.training import ProgressCallback

POLL_S = 1.0


class Trainer:
    def __init__(self, child: Child) -> None:
        self.child = child
        self.config = child.config
        self.db = Database(self.config.db_path)
        self.runs = self.db.runs
        self.wakeups = child.subscribe(messages.Topic.RETRAIN_QUEUED)
        self.deadline: float | None = None  # monotonic time the running job must be done by

    def _should_stop(self) -> bool:
        """Asked between training batches: a beat for the liveness reports, the stop flag, the job's deadline."""
        self.child.beat()
        if self.deadline is not None and time.monotonic() > self.deadline:
            timeout = self.config.training.timeout
            raise TrainingTimedOut(f"training timed out after {timeout:g} s (training.timeout)")
        return self.child.stopping

    def _progress(self, run: RetrainRun) -> ProgressCallback:
        def report(epoch: int, epochs: int, val_accuracy: float) -> None:
            progress = messages.RetrainProgress(symbol=run.symbol, timeframe=run.timeframe, run_id=run.id, epoch=epoch,
                                                epochs=epochs, val_accuracy=val_accuracy)
            self.child.report(training=dataclasses.asdict(progress))
            self.child.publish(progress)

        return report

    def execute(self, run: RetrainRun) -> None:
        symbol = run.symbol
        self.child.log.info("Starting background retrain for %s", symbol)
        self.child.report("training", force=True, training={"run_id": run.id, "symbol": symbol,
                                                            "timeframe": run.timeframe, "epoch": 0, "epochs": None})
        self.child.publish(messages.RetrainStarted(symbol=symbol, timeframe=run.timeframe, run_id=run.id,
                                                   trigger=run.trigger, reason=run.reason))
        started = time.monotonic()
        self.deadline = started + self.config.training.timeout
        try:
            outcome = run_training(self.config, symbol, run.timeframe, trigger=run.trigger, reason=run.reason,
                                        requested_market_ts=run.requested_market_ts, run_id=run.id,
                                        progress=self._progress(run), should_stop=self._should_stop)
        except USER_ERRORS as exc:  # a refused or timed-out job: the daemon goes on (a warning, not an error)
            self.child.log.warning("Retrain failed for %s: %s", symbol, exc)
            self.child.publish(messages.RetrainFailed(symbol=symbol, timeframe=run.timeframe, run_id=run.id,
                                                      error=str(exc)))
            return
        except Exception as exc:
            fault = transient_fault(self.config, exc)
            if fault:  # the state directory full or read-only: the job failed, the trainer goes on
                self.child.log.warning("Retrain failed for %s: %s", symbol, fault)
            else:
                self.child.log.exception("Retrain failed for %s", symbol)
            self.child.publish(messages.RetrainFailed(symbol=symbol, timeframe=run.timeframe, run_id=run.id,
                                                      error=f"{type(exc).__name__}: {exc}"))
            return
        finally:
            self.deadline = None
            self.child.report("ready", force=True, training=None)
        self.child.publish(messages.RetrainFinished(
            symbol=symbol, timeframe=run.timeframe, run_id=run.id, status=outcome.status, version=outcome.version,
            promoted=outcome.promoted, reason=outcome.reason, seconds=round(time.monotonic() - started, 1)))
        if outcome.promoted:
            self.child.publish(messages.ModelPromoted(symbol=symbol, timeframe=run.timeframe, version=outcome.version))
        self.child.log.info("Retrain completed for %s", symbol)

    def run(self) -> int:
        try:
            os.nice(self.config.training.nice)  # before torch starts its threads: they inherit it
        except OSError as exc:
            self.child.log.warning("could not lower the trainer's priority: %s", exc)
        self.child.report("ready", force=True, training=None)
        while not self.child.stopping:
            for run_id in self.runs.fail_orphans():
                self.child.log.warning("retrain run %d was interrupted (its process is gone): marked failed", run_id)
            run = self.runs.claim_next()
            if run is None:
                if self.wakeups.sock.poll(int(POLL_S * 1000)):
                    self.wakeups.drain()
                self.child.report()
                continue
            self.execute(run)
        return 0

    def close(self) -> None:
        self.db.close()
        self.wakeups.close()


def main(argv: Sequence[str] | None = None) -> int:
    return run_child("trainer", Trainer, argv)


if __name__ == "__main__":
    sys.exit(main())
