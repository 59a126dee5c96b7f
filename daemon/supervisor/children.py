"""The supervisor's view of its children: spawn by exec, restart with backoff, detect flapping, stop.

Children are started with `subprocess.Popen` (fork+exec), never a bare fork: a ZeroMQ context or a
CUDA context does not survive fork. Each gets the resolved configuration file and its own process
group-free environment without NOTIFY_SOCKET (only the supervisor talks to systemd).
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoretrain.daemon.foundation.config_schema import SupervisorConfig
from autoretrain.daemon.foundation.errors import EX_CONFIG, EX_TEMPFAIL
from autoretrain.daemon.supervisor.oom import MemoryMount, OomWatch, memory_mounts

log = logging.getLogger("autoretrain.supervisor")
#: the module each child runs (`python -m MODULE --config-json PATH`), in start order
PROCESS_MODULES = {
    "ingest": "autoretrain.daemon.processes.ingest",
    "inference": "autoretrain.daemon.processes.inference",
    "trainer": "autoretrain.daemon.processes.trainer",
}
# How long a child's main loop may go without progress before it counts as hung (kill_hung replaces it).
STALL_LIMIT_S = {"ingest": 180.0, "inference": 180.0, "trainer": 900.0}


class GiveUp(Exception):
    """A child keeps failing: the supervisor stops everything and exits non-zero (systemd takes over)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class ChildProcess:
    name: str
    module: str
    process: subprocess.Popen | None = None
    state: str = "not started"
    ready: bool = False
    started_at: float | None = None
    last_report: float | None = None  # monotonic time of the newest liveness report
    stalled_s: float = 0.0  # how long ago the child's main loop last made progress (its own report)
    progress_at: float | None = None  # monotonic time the child's reported state or detail last changed
    detail: dict[str, Any] = field(default_factory=dict)
    exits: collections.deque = field(default_factory=collections.deque)  # monotonic times of unexpected exits
    restarts: int = 0
    next_start: float | None = None  # monotonic time a pending (re)start is due
    last_exit_code: int | None = None
    oom: OomWatch = field(default_factory=OomWatch)  # its memory cgroup's OOM-kill count, while it lives
    hung: str | None = None  # why kill_hung killed it (None: not killed by the supervisor)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass(frozen=True)
class ChildExit:
    """An unexpected exit, as `Children.on_exit` hears of it: what the child was doing and why it died."""

    name: str
    pid: int
    code: int  # negative: the signal that killed it
    detail: dict[str, Any]  # the child's last report (the trainer's `training`: the job it had)
    oom_evidence: str | None  # SIGKILL with its memory cgroup's oom_kill count risen (None: no such evidence)
    hung: str | None = None  # the supervisor killed it as hung, for this reason

    @property
    def how(self) -> str:
        return f"signal {-self.code}" if self.code < 0 else f"code {self.code}"

    @property
    def cause(self) -> str:
        """What killed it, in words: the OOM killer where its cgroup says so."""
        if self.oom_evidence:
            return f"killed by the kernel's OOM killer ({self.oom_evidence})"
        if self.hung:
            return f"killed by the supervisor as hung ({self.hung})"
        if self.code == -signal.SIGKILL:
            return "killed by signal 9 (SIGKILL: kill -9, or the OOM killer where no memory cgroup can be read)"
        return f"exited with {self.how}"


class Children:
    """The child table: who runs, who is ready, when a dead one restarts, when to give up.

    `clock` and `popen` are the only ways it reads time or starts a process, so its backoff, flap
    detection and give-up can be driven in a test with a fake clock and fake processes; `mounts` are
    the memory cgroup hierarchies it reads OOM kills from."""

    def __init__(self, names: tuple[str, ...], config_json: Path, policy: SupervisorConfig,
                 python: str = sys.executable, *, clock: Callable[[], float] = time.monotonic,
                 popen: Callable[..., Any] = subprocess.Popen, mounts: list[MemoryMount] | None = None) -> None:
        self.table = {name: ChildProcess(name, PROCESS_MODULES[name]) for name in names}
        self.config_json = config_json
        self.policy = policy
        self.python = python
        self.clock = clock
        self.popen = popen
        self.env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        #: asked when a child exits with 75 (its store failed): what is wrong with the store now, or None
        self.store_problem: Callable[[], str | None] | None = None
        #: told of every unexpected exit before its restart is scheduled (the trainer's job to mark failed)
        self.on_exit: Callable[[ChildExit], None] | None = None
        self._memory_mounts = mounts  # None: read from /proc/self/mountinfo on first use

    @property
    def memory_mounts(self) -> list[MemoryMount]:
        if self._memory_mounts is None:
            self._memory_mounts = memory_mounts()
        return self._memory_mounts

    def spawn(self, child: ChildProcess) -> None:
        child.process = self.popen(
            [self.python, "-m", child.module, "--config-json", str(self.config_json)],
            env=self.env, stdin=subprocess.DEVNULL, close_fds=True,
        )
        child.state = "starting"
        child.ready = False
        child.started_at = time.time()
        child.last_report = child.progress_at = self.clock()
        child.stalled_s = 0.0
        child.next_start = None
        child.oom, child.hung = OomWatch(), None
        child.oom.look(child.process.pid, self.memory_mounts)
        log.info("started %s (pid %d)", child.name, child.process.pid)

    def on_report(self, name: str, state: str, detail: dict[str, Any], pid: int | None,
                  stalled_s: float = 0.0) -> None:
        child = self.table.get(name)
        if child is None or child.pid is None or (pid is not None and pid != child.pid):
            return  # a report from a process that is gone (or not ours)
        child.last_report = self.clock()
        if state != child.state or detail != child.detail:
            child.progress_at = child.last_report
        child.state = state
        child.detail = detail
        child.stalled_s = float(stalled_s or 0.0)
        child.oom.look(child.pid, self.memory_mounts)  # it may have been moved to another cgroup
        if (state == "ready" or detail.get("ready") is True) and not child.ready:
            log.info("%s is ready", name)
            child.ready = True

    def reap(self) -> None:
        """Collect children that exited; schedule their restarts or raise GiveUp."""
        for child in self.table.values():
            if child.process is None or child.process.poll() is None:
                continue
            code, pid = child.process.returncode, child.process.pid
            child.last_exit_code = code
            child.process = None
            child.ready = False
            child.state = "exited"
            death = ChildExit(child.name, pid, code, dict(child.detail),
                              child.oom.evidence() if code == -signal.SIGKILL else None, child.hung)
            try:
                self._schedule_restart(child, death)  # its log line first, then what follows from the exit
            finally:
                if self.on_exit is not None:
                    self.on_exit(death)

    def _schedule_restart(self, child: ChildProcess, death: ChildExit) -> None:
        now, code, how = self.clock(), death.code, death.how
        if code == EX_CONFIG:
            raise GiveUp(f"{child.name} exited with {how} (configuration error); not restarting", EX_CONFIG)
        problem = self.store_problem() if code == EX_TEMPFAIL and self.store_problem else None
        if problem:  # a damaged or read-only store: a restart cannot mend it
            raise GiveUp(f"{child.name} exited with {how}: {problem}; not restarting", EX_TEMPFAIL)
        child.exits.append(now)
        while child.exits and now - child.exits[0] > self.policy.restart_window:
            child.exits.popleft()
        if len(child.exits) > self.policy.max_restarts:
            raise GiveUp(f"{child.name} keeps failing ({len(child.exits)} exits in "
                         f"{self.policy.restart_window:.0f} s, last with {how}); giving up")
        delay = min(self.policy.restart_backoff_max,
                    self.policy.restart_backoff_initial * 2 ** (len(child.exits) - 1))
        child.next_start = now + delay
        child.restarts += 1
        child.state = f"restarting in {delay:.1f}s"
        why = f"; {death.cause}" if death.oom_evidence else ""
        log.error("%s exited with %s; restarting in %.1f s (restart %d)%s", child.name, how, delay, child.restarts, why)

    def start_due(self) -> None:
        now = self.clock()
        for child in self.table.values():
            if child.process is None and child.next_start is not None and child.next_start <= now:
                self.spawn(child)

    def kill_hung(self) -> list[str]:
        """SIGKILL every started child that has been silent for `child_timeout` (SIGSTOPped, stuck in a
        call its reporter shares) or whose main loop has stalled past its limit; `reap` then restarts it
        with the usual backoff and flap limit. The names killed (gunicorn's worker timeout)."""
        now, killed = self.clock(), []
        for child in self.table.values():
            if not child.alive or child.last_report is None:
                continue
            silent = now - child.last_report
            stall_limit = max(self.policy.child_timeout, STALL_LIMIT_S.get(child.name, 180.0))
            if silent < self.policy.child_timeout and child.stalled_s < stall_limit:
                continue
            why = (f"no report for {silent:.0f} s (supervisor.child_timeout {self.policy.child_timeout:g} s)"
                   if silent >= self.policy.child_timeout else
                   f"its main loop made no progress for {child.stalled_s:.0f} s (limit {stall_limit:.0f} s)")
            assert child.process is not None
            log.warning("%s (pid %d) is hung: %s; killing it to restart it", child.name, child.process.pid, why)
            child.process.kill()
            child.hung = why
            killed.append(child.name)
        return killed

    def all_ready(self) -> bool:
        return all(child.ready for child in self.table.values())

    def stop_all(self, timeout: float) -> None:
        """SIGTERM each child in start order and wait; SIGKILL whatever is left at the deadline. Reaps all."""
        share = timeout / max(1, len(self.table))
        for name, child in self.table.items():
            if not child.alive:
                continue
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(timeout=share)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.1f s; killing it", name, share)
                child.process.kill()
                child.process.wait(timeout=5)
            log.info("stopped %s (exit %s)", name, child.process.returncode)
        for child in self.table.values():
            if child.process is not None and child.process.poll() is None:
                child.process.kill()
                child.process.wait(timeout=5)
            child.process = None
            child.ready = False
            child.state = "stopped"
