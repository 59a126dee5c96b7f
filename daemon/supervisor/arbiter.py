"""The supervisor's arbiter loop (systemd Type=notify) over the ingest, inference and trainer processes.

`Supervisor(config)` only holds state. `open()` takes an exclusive lock on the state directory and one
on the runtime directory (a second daemon refuses with exit 75), checks the store once (a damaged,
unreadable or read-only one is exit 75 before any child starts), clears stale runtime files, creates
the candle rings, binds the event bus and the control socket, then the metrics and dashboard listeners
(`web`: a port in use is exit 78, one line). `run()` then starts ingest, inference
and trainer in that order, each once the previous one reports ready; `READY=1` goes to systemd when
all three are ready.

Running: forward bus events, answer the control socket, restart a dead child with exponential
backoff, give up (exit non-zero, so systemd's own restart logic takes over) when a child keeps
failing, kill and restart a child silent for `supervisor.child_timeout` (or whose loop stalls), ping the
watchdog on every pass of this loop (only a stuck supervisor stops it), log a heartbeat per symbol.

SIGTERM/SIGINT: `STOPPING=1`, stop the children in order, reap them all, remove the sockets and
rings, exit 0.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from types import FrameType
from typing import IO

import zmq

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.processes.child import RESOLVED_CONFIG_NAME, write_resolved_config
from autoretrain.daemon.store.failures import FULL
from autoretrain.daemon.store.health import START_CHECK_S, inspect_store, verify_store
from autoretrain.daemon.supervisor import sd_notify
from autoretrain.daemon.supervisor.children import PROCESS_MODULES, ChildExit, Children, GiveUp
from autoretrain.daemon.supervisor.commands import CommandContext, ControlCommands
from autoretrain.daemon.supervisor.runtime import clear_runtime, lock_runtime_dir, lock_state_dir
from autoretrain.daemon.supervisor.status_board import StatusBoard
from autoretrain.daemon.supervisor.web import WebServers
from autoretrain.ipc import messages
from autoretrain.ipc.bus import EventBus, Publisher, Subscriber
from autoretrain.ipc.control import ControlServer
from autoretrain.ipc.ring import CandleRing, ring_path

POLL_MS = 100
CHECKPOINT_EVERY_S = 5.0
#: what the supervisor reads off the bus: liveness reports, training and model events (never candles or signals)
WATCHED_TOPICS = (messages.Topic.PROCESS, "retrain.", "model.")
log = logging.getLogger("autoretrain.supervisor")


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.stopping = False
        self.started_at = time.time()
        self.lock: IO[str] | None = None
        self.runtime_lock: int | None = None
        self.rings: list[CandleRing] = []
        self.context: zmq.Context | None = None
        self.bus: EventBus | None = None
        self.publisher: Publisher | None = None
        self.events: Subscriber | None = None
        self.control: ControlServer | None = None
        self.web = WebServers(config)
        self.children = Children(tuple(PROCESS_MODULES), config.runtime_dir / RESOLVED_CONFIG_NAME,
                                 config.supervisor)
        self.children.store_problem = self._store_problem
        self.children.on_exit = self._on_child_exit
        self.board = StatusBoard(config, self.children, started_at=self.started_at)
        self.commands = ControlCommands(CommandContext(config, self.board, self.publish))
        self.ready_notified = False
        self.last_status_line = ""
        self.next_heartbeat = time.monotonic() + config.heartbeat_interval
        self.watchdog_every = sd_notify.watchdog_interval()
        self.next_watchdog = time.monotonic()
        self.next_checkpoint = time.monotonic() + CHECKPOINT_EVERY_S

    # -- opening and closing ---------------------------------------------------------------------------

    def open(self) -> None:
        """Locks, runtime files, rings, bus and control socket; whatever part ran is undone if one fails."""
        config = self.config
        self.lock = lock_state_dir(config.state_dir)
        try:
            self._check_store()
            if not config.runtime_dir.exists():
                config.runtime_dir.mkdir(mode=0o750, parents=True)  # systemd's RuntimeDirectory= is left as set
            self.runtime_lock = lock_runtime_dir(config.runtime_dir)
            clear_runtime(config)
            self.rings = [CandleRing.create(ring_path(config.runtime_dir, symbol, config.market.timeframe),
                                            config.ingest.ring_capacity) for symbol in config.market.symbols]
            self.children.config_json = write_resolved_config(config, config.runtime_dir)
            self.context = zmq.Context()
            self.bus = EventBus(self.context, config.runtime_dir)
            self.publisher = Publisher(self.context, self.bus.publish_endpoint, "supervisor")
            self.events = Subscriber(self.context, self.bus.subscribe_endpoint, WATCHED_TOPICS)
            self.control = ControlServer(self.context, config.control_endpoint, self.commands.handle,
                                         max_request_bytes=config.control.max_request_bytes)
            self.web.open()  # metrics and dashboard: they ask the control socket bound just above
            self.board.endpoints = dict(self.web.urls)
        except BaseException:
            self._close_runtime()
            raise

    def _check_store(self) -> None:
        """Once, before any child: a damaged, unreadable or read-only store is StoreError (exit 75), not children
        that die on their first read and restart until the supervisor gives up."""
        health = verify_store(self.config.db_path)
        for note in health.notes:
            log.warning("store %s: %s", self.config.db_path, note)

    def _store_problem(self) -> str | None:
        """A child exited with 75 (its store failed): the store's problem now, if it has one (then: give up). A full
        disk is no such problem: it passes, and the restart's backoff waits for it (systemd never retries 75)."""
        health = inspect_store(self.config.db_path, time_limit_s=START_CHECK_S, count_rows=False)
        if health.problem is not None and health.problem.kind == FULL:
            return None
        return health.message() or None

    def _on_child_exit(self, death: ChildExit) -> None:
        """A trainer that dies in a job (the OOM killer, kill -9): its run is failed now, saying why, rather than
        "process gone" when the next trainer starts; the cooldown after a failed retrain follows as usual."""
        job = death.detail.get("training") if death.name == "trainer" else None
        if not isinstance(job, dict) or not isinstance(job.get("run_id"), int):
            return
        at = f" at epoch {job.get('epoch')}/{job['epochs']}" if job.get("epochs") else ""
        error = f"interrupted: the trainer (pid {death.pid}) was {death.cause}{at}"
        if death.oom_evidence:
            error += ("; give the service more memory (MemoryMax=) or make the job smaller "
                      "(training.batch_size, training.days, model.hidden_size)")
        run = self.board.fail_interrupted_run(job["run_id"], error)
        if run is None:
            return
        log.warning("retrain run %d for %s was %s; marked failed", run.id, run.symbol, error)
        self.publish(messages.RetrainFailed(symbol=run.symbol, timeframe=run.timeframe, run_id=run.id, error=error))

    def _close_runtime(self) -> None:
        """Close sockets and rings, remove the runtime files, release both locks: after a failed start
        (whatever part of `open` ran) and at stop."""
        self.web.close()
        for part in (self.control, self.events, self.publisher, self.bus):
            if part is not None:
                part.close()
        if self.context is not None:
            self.context.destroy(linger=0)
        for ring in self.rings:
            ring.close()
        if self.runtime_lock is not None:  # never clear a runtime directory another daemon holds
            clear_runtime(self.config)
            os.close(self.runtime_lock)
            self.runtime_lock = None
        if self.lock is not None:
            self.lock.close()  # the lock file itself stays: unlinking it would race with a starting daemon
            self.lock = None

    def publish(self, message: messages.Message) -> None:
        """Events that originate in the supervisor (promotions from the control socket, heartbeats)."""
        if self.publisher is not None:
            self.publisher.publish(message)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    # -- the loop --------------------------------------------------------------------------------------

    def _start_next_child(self) -> None:
        """Initial start-up: each child once the previous one is ready."""
        for name in PROCESS_MODULES:
            child = self.children.table[name]
            if child.started_at is None:  # never spawned yet
                self.children.spawn(child)
                return
            if not child.ready:
                return

    def _handle_events(self) -> None:
        assert self.events is not None
        for event in self.events.drain():
            message = event.message
            if isinstance(message, messages.ProcessReport):
                self.children.on_report(message.name, message.state, message.detail, message.pid, message.stalled_s)
            self.board.on_event(message)

    def _notify_state(self) -> None:
        if not self.ready_notified and self.children.all_ready():
            self.ready_notified = True
            log.info("autoretraind ready: %s", ", ".join(f"{c.name} pid {c.pid}" for c in self.children.table.values()))
            sd_notify.notify("READY=1", f"STATUS={self.board.summary_line()}")
        line = self.board.summary_line()
        if line != self.last_status_line:
            self.last_status_line = line
            sd_notify.notify(f"STATUS={line}")
        # the watchdog stands for this loop: a hung child is the loop's to replace (kill_hung), and a child
        # that keeps failing ends the loop (GiveUp); only a stuck supervisor stops the pings
        if self.watchdog_every and time.monotonic() >= self.next_watchdog:
            sd_notify.notify("WATCHDOG=1")
            self.next_watchdog = time.monotonic() + self.watchdog_every

    def _heartbeat(self) -> None:
        if time.monotonic() < self.next_heartbeat:
            return
        self.next_heartbeat = time.monotonic() + self.config.heartbeat_interval
        states = self.board.symbol_states()
        for state in states:
            log.info("%s", state.heartbeat_line())
        self.publish(messages.Heartbeat(symbols=[{key: value for key, value in state.as_dict().items()
                                                  if key != "performance"} for state in states]))

    def _checkpoint(self) -> None:
        """Ingest and inference never checkpoint the WAL themselves (latency): the supervisor does, and a store
        that fails it (damaged mid-run) is a warning, never the supervisor's end (the board's `checkpoint`)."""
        if time.monotonic() < self.next_checkpoint or not self.config.db_path.exists():
            return
        self.next_checkpoint = time.monotonic() + CHECKPOINT_EVERY_S
        self.board.checkpoint()

    def _check_start_deadline(self) -> None:
        """Start-up fails when a child not yet ready has shown no progress for `ready_timeout` seconds.

        A long backfill or catch-up keeps reporting progress (pages, candles), so it never trips this."""
        if self.ready_notified:
            return
        now = time.monotonic()
        for child in self.children.table.values():
            if child.ready or child.process is None or child.progress_at is None:
                continue
            if now - child.progress_at > self.config.supervisor.ready_timeout:
                raise GiveUp(f"{child.name} not ready and without progress for "
                             f"{self.config.supervisor.ready_timeout:.0f} s (state: {child.state})")

    def run(self) -> int:
        """The arbiter loop until SIGTERM/SIGINT or a give-up; `open()` first. Returns the exit code."""
        assert self.events is not None and self.control is not None, "open() the supervisor first"
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        poller = zmq.Poller()
        poller.register(self.events.sock, zmq.POLLIN)
        poller.register(self.control.sock, zmq.POLLIN)
        log.info("autoretraind starting: state %s, runtime %s, symbols %s %s, source %s",
                 self.config.state_dir, self.config.runtime_dir, ", ".join(self.config.market.symbols),
                 self.config.market.timeframe, self.config.market.source)
        code = 0
        try:
            while not self.stopping:
                if not self.ready_notified:
                    self._start_next_child()
                ready = dict(poller.poll(POLL_MS))
                if self.events.sock in ready:
                    self._handle_events()
                if self.control.sock in ready:
                    self.control.handle_pending()
                self.children.kill_hung()
                self.children.reap()
                self.children.start_due()
                self._notify_state()
                self._heartbeat()
                self._checkpoint()
                self._check_start_deadline()
        except GiveUp as exc:
            log.error("%s", exc)
            code = exc.exit_code
        finally:
            self.shutdown()
        return code

    def shutdown(self) -> None:
        sd_notify.notify("STOPPING=1", "STATUS=stopping")
        log.info("stopping children")
        self.children.stop_all(self.config.supervisor.stop_timeout)
        self.board.close()
        self._close_runtime()
        log.info("autoretraind stopped")
