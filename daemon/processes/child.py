"""What every child process (ingest, inference, trainer) shares: start-up, stop signal, bus, liveness.

A child is started by the supervisor with `python -m autoretrain.daemon.processes.<name> --config-json
PATH`: the configuration the supervisor validated and resolved, so every process sees exactly the
same one. It creates its own ZeroMQ context (never inherited across fork), stops cleanly on
SIGTERM/SIGINT, and reports its state on the bus every second (`process` events) from a thread of its
own, so a long epoch or a slow backfill page never looks like a dead process. Each report also says
how long ago the main loop last showed progress (`stalled_s`, from `beat()`), which is what tells a
busy process from a hung one: the supervisor's readiness, watchdog and `status` all come from these
reports, and a lost report is simply repeated.

`Child(name, config)` only holds state; `start()` does everything with a side effect (death signal,
signal handlers, sockets, the reporter thread), so a body can be built and driven in a test without
any of them.

A full disk (SQLITE_FULL, ENOSPC) or a state directory turned read-only under a running child is a transient
fault, not damage: `run_child` logs one error line for the episode, closes the body, waits with the
supervisor's restart backoff (reporting all the while, so it never looks hung) and builds the body again,
which resumes from the store as after any restart (no gap, no missing signal). The child never exits 75 for
it, so the supervisor neither counts it as flapping nor takes it for a damaged store.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import zmq

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import EX_TEMPFAIL, USER_ERRORS, StoreError, exit_code
from autoretrain.daemon.foundation.logs import log_uncaught, setup_logging
from autoretrain.daemon.store.failures import FULL, READ_ONLY, classify, describe_failure, is_store_failure
from autoretrain.ipc import messages
from autoretrain.ipc.bus import Publisher, Subscriber, bus_endpoints
from autoretrain.models.durable import write_atomic

REPORT_INTERVAL_S = 1.0
PR_SET_PDEATHSIG = 1
RESOLVED_CONFIG_NAME = "config.resolved.json"
#: what an OSError says when the state directory's filesystem is full or read-only (a transient fault)
_TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def write_resolved_config(config: Config, runtime_dir: Path) -> Path:
    """The supervisor's validated configuration, for its children (written atomically, 0640)."""
    path = Path(runtime_dir) / RESOLVED_CONFIG_NAME
    write_atomic(path, config.model_dump_json().encode(), mode=0o640)
    return path


def read_resolved_config(path: Path) -> Config:
    """What `write_resolved_config` wrote: UTF-8 whatever the locale (a C locale would read it as ASCII)."""
    return Config.model_validate_json(Path(path).read_bytes())


def _stop_with_parent() -> None:
    """Ask Linux for SIGTERM when the supervisor dies (even by SIGKILL): no orphan keeps running."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: systemd's KillMode=mixed still cleans up the unit's processes


class Child:
    """The running child: config, logger, bus sockets, stop flag and liveness reports."""

    def __init__(self, name: str, config: Config) -> None:
        self.name = name
        self.config = config
        self.log = logging.getLogger(f"autoretrain.{name}")
        self.stopping = False
        self.state = "starting"
        self.detail: dict[str, Any] = {}
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._beat = time.monotonic()
        self.paused_since: float | None = None  # monotonic time a full or read-only state directory paused the body
        self._wake = threading.Event()
        self._closing = threading.Event()
        self.context: zmq.Context | None = None
        self.publisher: Publisher | None = None
        self._reporter: threading.Thread | None = None
        self.publish_endpoint, self.subscribe_endpoint = bus_endpoints(config.runtime_dir)

    def start(self, parent_pid: int | None = None) -> None:
        """Become a child process: die with the supervisor, stop on SIGTERM, open the bus, start reporting."""
        _stop_with_parent()
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        if parent_pid is not None and os.getppid() != parent_pid:
            self.stopping = True  # the supervisor died before we could ask to be told
        self.context = zmq.Context()
        self.publisher = Publisher(self.context, self.publish_endpoint, self.name)
        self._reporter = threading.Thread(target=self._report_loop, name="liveness", daemon=True)
        self._reporter.start()

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def subscribe(self, *topics: messages.Topic | str) -> Subscriber:
        assert self.context is not None, "start() the child first"
        return Subscriber(self.context, self.subscribe_endpoint, topics)

    def publish(self, message: messages.Message) -> None:
        if self.publisher is not None:  # not started (a body driven in-process): nobody listens
            self.publisher.publish(message)

    def beat(self) -> None:
        """The main loop made progress (an iteration, a page, a training batch)."""
        self._beat = time.monotonic()

    def report(self, state: str | None = None, *, force: bool = False, **detail: Any) -> None:
        """Update what the liveness reports say (a state change or `force` is reported at once); beats."""
        self.beat()
        if state == "ready" and self.paused_since is not None:  # the body built again got through its start
            self.log.info("%s resumed: the state directory is writable again (paused %.0f s)", self.name,
                          time.monotonic() - self.paused_since)
            self.paused_since = None
            detail.update(store_fault=None, store_retry_s=None)
        with self._lock:
            changed = state is not None and state != self.state
            if state is not None:
                self.state = state
            if state == "ready":
                # sticky: a state that follows at once (the trainer claiming a queued job) may replace "ready"
                # before the report thread sends it; the supervisor must still learn that this child got ready
                detail["ready"] = True
            self.detail.update(detail)
        if changed or force:
            self._wake.set()

    def _report_loop(self) -> None:
        """Thread: one `process` event a second (sooner after a state change), on a socket of its own."""
        assert self.context is not None
        publisher = Publisher(self.context, self.publish_endpoint, self.name)
        try:
            while True:
                self._wake.wait(REPORT_INTERVAL_S)
                self._wake.clear()
                with self._lock:
                    state, detail = self.state, dict(self.detail)
                publisher.publish(messages.ProcessReport(
                    name=self.name, pid=os.getpid(), state=state, started_at=self.started_at, detail=detail,
                    stalled_s=round(time.monotonic() - self._beat, 1)))
                if self._closing.is_set():
                    break
        finally:
            time.sleep(0.05)  # let the last report leave before LINGER 0 drops it
            publisher.close()

    def sleep(self, seconds: float, step: float = 0.2) -> None:
        """Sleep, staying responsive to a stop signal and keeping the liveness reports going."""
        deadline = time.monotonic() + max(0.0, seconds)
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(step, left))
            self.report()

    def close(self) -> None:
        self._closing.set()
        self.report("stopped", force=True)
        if self._reporter is not None:
            self._reporter.join(5)
        if self.publisher is not None:
            self.publisher.close()
        if self.context is not None:
            self.context.destroy(linger=0)


class ChildBody(Protocol):
    def run(self) -> int: ...

    def close(self) -> None: ...


def transient_fault(config: Config, exc: BaseException) -> str | None:
    """One line when `exc` is the state directory full or read-only (wait for it to pass), else None. A StoreError
    raised in place of SQLite's or the OS's error (`raise ... from None`) is judged by that error."""
    if isinstance(exc, StoreError) and isinstance(exc.__context__, (sqlite3.DatabaseError, OSError)):
        return transient_fault(config, exc.__context__)
    if is_store_failure(exc):
        return describe_failure(config.db_path, exc) if classify(exc).kind in (FULL, READ_ONLY) else None
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        where = exc.filename or config.state_dir
        return f"cannot write {where} (filesystem of {config.state_dir}): {exc.strerror or exc}"
    return None


def _run_body(child: Child, make: Callable[[Child], ChildBody]) -> int:
    """Build and run the body until it returns; a transient fault (full or read-only state directory) is waited
    out with backoff, logged once per episode, and the body built again (it resumes from the store; its next
    `ready` ends the episode)."""
    policy = child.config.supervisor
    delay = policy.restart_backoff_initial
    while True:
        try:
            body = make(child)
            try:
                code = body.run()
            finally:
                body.close()
        except Exception as exc:
            fault = transient_fault(child.config, exc)
            if fault is None or child.stopping:
                raise
            if child.paused_since is None:  # a new episode: one error line, the backoff from the start
                child.paused_since, delay = time.monotonic(), policy.restart_backoff_initial
                child.log.error("%s paused, retrying with backoff: %s", child.name, fault)
            else:
                child.log.debug("%s still paused: %s", child.name, fault)
            child.report("waiting for the store", force=True, store_fault=fault, store_retry_s=round(delay, 1))
            child.sleep(delay)
            delay = min(policy.restart_backoff_max, delay * 2)
            if child.stopping:
                return 0
            continue
        return code


def run_child(name: str, make: Callable[[Child], ChildBody], argv: Sequence[str] | None = None) -> int:
    """Start the child, build its body with `make(child)`, run it, always close both; the exit code."""
    parent = os.getppid()
    parser = argparse.ArgumentParser(prog=f"autoretrain-{name}")
    parser.add_argument("--config-json", required=True, type=Path)
    args = parser.parse_args(argv)
    config = read_resolved_config(args.config_json)
    log = setup_logging(name, config.logging.level, config.logging.file)
    log_uncaught(log)
    child = Child(name, config)
    child.start(parent_pid=parent)
    try:
        code = _run_body(child, make)
    except USER_ERRORS as exc:
        child.log.error("%s cannot run: %s", name, exc)
        code = exit_code(exc)
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.ProgrammingError):  # the sqlite3 module misused: a bug, with its traceback
            child.log.exception("%s failed", name)
            code = 1
        else:  # the store failed under it: one line, no traceback; the supervisor checks the store again
            child.log.error("%s cannot run: %s", name, describe_failure(config.db_path, exc))
            code = EX_TEMPFAIL
    except Exception:
        child.log.exception("%s failed", name)
        code = 1
    finally:
        child.close()
    return int(code or 0)
