"""`autoretraind`: the supervisor (systemd Type=notify) of the ingest, inference and trainer processes.

Start-up: validate the configuration (exit 78), take an exclusive lock on the state directory and
one on the runtime directory (a second daemon on the same state, or sharing the runtime directory,
refuses with exit 75), clear stale runtime files, create the candle rings, bind
the event bus and the control socket, then start ingest, inference and trainer in that order, each
once the previous one reports ready. `READY=1` goes to systemd when all three are ready.

Running: forward bus events, answer the control socket, restart a dead child with exponential
backoff, give up (exit non-zero, so systemd's own restart logic takes over) when a child keeps
failing, ping the watchdog only while every child is alive and reporting, log a heartbeat per symbol.

SIGTERM/SIGINT: `STOPPING=1`, stop the children in order, reap them all, remove the sockets and
rings, exit 0.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import IO, Sequence

import zmq

from autoretrain.daemon.supervisor import sd_notify
from autoretrain.daemon.processes.child import RESOLVED_CONFIG_NAME, write_resolved_config
from autoretrain.daemon.supervisor.children import PROCESS_MODULES, Children, GiveUp
from autoretrain.daemon.foundation.config import Config, load_config
from autoretrain.daemon.store.connection import checkpoint
from autoretrain.daemon.supervisor.control_commands import ControlCommands
from autoretrain.daemon.foundation.errors import EX_CONFIG, EX_OSERR, EX_TEMPFAIL, AutoretrainError, ConfigError
from autoretrain.daemon.foundation.logs import log_uncaught, setup_logging
from autoretrain.daemon.supervisor.status_board import StatusBoard
from autoretrain.ipc import messages
from autoretrain.ipc.bus import EventBus, Publisher, Subscriber, bus_endpoints
from autoretrain.ipc.control import ControlServer, ipc_path
from autoretrain.ipc.ring import CandleRing, ring_path

LOCK_NAME = "autoretraind.lock"
POLL_MS = 100
CHECKPOINT_EVERY_S = 5.0
#: what the supervisor reads off the bus: liveness reports, training and model events (never candles or signals)
WATCHED_TOPICS = (messages.PROCESS, "retrain.", "model.")


class AlreadyRunning(AutoretrainError):
    exit_code = EX_TEMPFAIL


def lock_state_dir(state_dir: Path) -> IO[str]:
    """An exclusive, non-blocking flock on the state directory's lock file, held for the daemon's life."""
    if not state_dir.exists():
        state_dir.mkdir(mode=0o750, parents=True)  # systemd's StateDirectory= is left as set
    handle = open(state_dir / LOCK_NAME, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyRunning(f"another autoretraind (pid {holder}) is already running on state directory "
                             f"{state_dir}") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def lock_runtime_dir(runtime_dir: Path) -> int:
    """An exclusive flock on the runtime directory itself (no file left behind), held for the daemon's life.

    Two daemons on different state directories could still share `$RUNTIME_DIRECTORY`: without this,
    the second one's clean-up of stale sockets and rings would delete the first one's live files.
    """
    fd = os.open(runtime_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(f"another autoretraind is already using runtime directory {runtime_dir} "
                             "(give each daemon its own paths.runtime_dir or $RUNTIME_DIRECTORY)") from None
    return fd


def runtime_files(config: Config) -> list[Path]:
    """Every file the daemon creates in the runtime directory (removed at start and at stop)."""
    runtime = config.runtime_dir
    rings = [ring_path(runtime, symbol, config.market.timeframe) for symbol in config.market.symbols]
    sockets = [ipc_path(endpoint) for endpoint in (*bus_endpoints(runtime), config.control_endpoint)]
    return [*rings, *(path for path in sockets if path is not None), runtime / RESOLVED_CONFIG_NAME]


def clear_runtime(config: Config) -> None:
    """Remove the daemon's runtime files, and rings or temporary files an earlier run left (call with the
    runtime directory locked)."""
    runtime = config.runtime_dir
    for path in [*runtime_files(config), *runtime.glob("ring-*.bin"), *runtime.glob("*.tmp")]:
        path.unlink(missing_ok=True)


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.log = setup_logging("supervisor", config.logging.level, config.logging.file)
        log_uncaught(self.log)
        self.stopping = False
        self.started_at = time.time()
        self.lock = lock_state_dir(config.state_dir)
        try:
            self._prepare()
        except BaseException:
            self._close_runtime()
            self.lock.close()
            raise

    def _prepare(self) -> None:
        """Everything after the lock: runtime files, sockets, children table (undone if any step fails)."""
        config = self.config
        if not config.runtime_dir.exists():
            config.runtime_dir.mkdir(mode=0o750, parents=True)  # systemd's RuntimeDirectory= is left as set
        self.runtime_lock = lock_runtime_dir(config.runtime_dir)
        clear_runtime(config)
        self.rings = [CandleRing.create(ring_path(config.runtime_dir, symbol, config.market.timeframe),
                                        config.ingest.ring_capacity) for symbol in config.market.symbols]
        self.config_json = write_resolved_config(config, config.runtime_dir)
        self.context = zmq.Context()
        self.bus = EventBus(self.context, config.runtime_dir)
        self.publisher = Publisher(self.context, self.bus.publish_endpoint, "supervisor")
        self.events = Subscriber(self.context, self.bus.subscribe_endpoint, WATCHED_TOPICS)
        self.children = Children(tuple(PROCESS_MODULES), self.config_json, config.supervisor)
        self.board = StatusBoard(config, self.children, started_at=self.started_at)
        self.commands = ControlCommands(config, self.board, publish=self.publish)
        self.control = ControlServer(self.context, config.control_endpoint, self.commands.handle,
                                     max_request_bytes=config.control.max_request_bytes)
        self.ready_notified = False
        self.last_status_line = ""
        self.next_heartbeat = time.monotonic() + config.heartbeat_interval
        self.watchdog_every = sd_notify.watchdog_interval()
        self.next_watchdog = time.monotonic()
        self.next_checkpoint = time.monotonic() + CHECKPOINT_EVERY_S

    def _close_runtime(self) -> None:
        """Close sockets and rings, remove the runtime files, release the runtime lock: after a failed
        start (whatever part of `_prepare` ran) and at stop."""
        for name in ("control", "events", "publisher", "bus"):
            part = getattr(self, name, None)
            if part is not None:
                part.close()
        context = getattr(self, "context", None)
        if context is not None:
            context.destroy(linger=0)
        for ring in getattr(self, "rings", []):
            ring.close()
        runtime_lock = getattr(self, "runtime_lock", None)
        if runtime_lock is not None:  # never clear a runtime directory another daemon holds
            clear_runtime(self.config)
            os.close(runtime_lock)

    def publish(self, topic: str, **payload: object) -> None:
        """Events that originate in the supervisor (promotions from the control socket)."""
        self.publisher.publish(topic, **payload)

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
        for topic, payload in self.events.drain():
            if topic == messages.PROCESS:
                self.children.on_report(str(payload.get("name")), str(payload.get("state")),
                                        dict(payload.get("detail") or {}), payload.get("pid"),
                                        payload.get("stalled_s") or 0.0)
            self.board.on_event(topic, payload)

    def _notify_state(self) -> None:
        if not self.ready_notified and self.children.all_ready():
            self.ready_notified = True
            self.log.info("autoretraind ready: %s", ", ".join(
                f"{c.name} pid {c.pid}" for c in self.children.table.values()))
            sd_notify.notify("READY=1", f"STATUS={self.board.summary_line()}")
        line = self.board.summary_line()
        if line != self.last_status_line:
            self.last_status_line = line
            sd_notify.notify(f"STATUS={line}")
        if self.watchdog_every and time.monotonic() >= self.next_watchdog:
            if self.children.healthy():
                sd_notify.notify("WATCHDOG=1")
            self.next_watchdog = time.monotonic() + self.watchdog_every

    def _heartbeat(self) -> None:
        if time.monotonic() < self.next_heartbeat:
            return
        self.next_heartbeat = time.monotonic() + self.config.heartbeat_interval
        states = self.board.symbol_states()
        for state in states:
            self.log.info("%s", state.heartbeat_line())
        self.publish(messages.HEARTBEAT, symbols=[{key: value for key, value in state.as_dict().items()
                                                   if key != "performance"} for state in states])

    def _checkpoint(self) -> None:
        """Ingest and inference never checkpoint the WAL themselves (latency): the supervisor does."""
        if time.monotonic() < self.next_checkpoint or not self.config.db_path.exists():
            return
        self.next_checkpoint = time.monotonic() + CHECKPOINT_EVERY_S
        checkpoint(self.board.store().conn)

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
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        poller = zmq.Poller()
        poller.register(self.events.sock, zmq.POLLIN)
        poller.register(self.control.sock, zmq.POLLIN)
        self.log.info("autoretraind starting: state %s, runtime %s, symbols %s %s, source %s",
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
                self.children.reap()
                self.children.start_due()
                self._notify_state()
                self._heartbeat()
                self._checkpoint()
                self._check_start_deadline()
        except GiveUp as exc:
            self.log.error("%s", exc)
            code = exc.exit_code
        finally:
            self.shutdown()
        return code

    def shutdown(self) -> None:
        sd_notify.notify("STOPPING=1", "STATUS=stopping")
        self.log.info("stopping children")
        self.children.stop_all(self.config.supervisor.stop_timeout)
        self.board.close()
        self._close_runtime()
        self.lock.close()  # the lock file itself stays: unlinking it would race with a starting daemon
        self.log.info("autoretraind stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autoretraind", description="Run the autoretrain daemon in the foreground.")
    parser.add_argument("--config", default=None, metavar="PATH",
                        help="configuration file (default: $AUTORETRAIN_CONFIG, then ./config.yaml)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"autoretraind: error: {exc}", file=sys.stderr)
        return EX_CONFIG
    try:
        supervisor = Supervisor(config)
    except AutoretrainError as exc:
        print(f"autoretraind: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (OSError, zmq.ZMQError) as exc:
        print(f"autoretraind: error: cannot start with state {config.state_dir} and runtime {config.runtime_dir}: "
              f"{exc}", file=sys.stderr)
        return EX_OSERR
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
