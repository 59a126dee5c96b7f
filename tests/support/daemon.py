"""Running the real daemon in tests: a subprocess, our own NOTIFY_SOCKET, the control socket, the store."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from autoretrain.daemon.foundation.config import load_config
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.ipc.control import ControlClient
from tests.support.data import ROOT


class NotifyListener:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET, read continuously by a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.closed.is_set():
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except (TimeoutError, OSError):
                continue

    def seen(self, assignment: str) -> bool:
        return any(assignment in message.split("\n") for message in list(self.messages))

    def close(self) -> None:
        time.sleep(0.3)  # let the last messages in
        self.closed.set()
        self.thread.join(2)
        self.sock.close()


class Daemon:
    """`autoretraind` as a real subprocess with its own NOTIFY_SOCKET."""

    def __init__(self, tmp_path: Path, config: dict[str, Any], name: str = "config.yaml") -> None:
        self.config_path = tmp_path / name
        # the HTTP listeners stay off unless a test asks for them (port 0: any free port; status names it),
        # so daemons of consecutive tests never meet on a fixed port
        config = {"metrics": {"endpoint": None}, "dashboard": {"endpoint": None}, **config}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.notify = NotifyListener(tmp_path / f"notify-{name}.sock")
        self.stderr_path = tmp_path / f"daemon-{name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def config(self) -> Config:
        return load_config(self.config_path, env={})

    def start(self, **extra_env: str) -> Daemon:
        env = {k: v for k, v in os.environ.items() if k not in ("AUTORETRAIN_CONFIG", "STATE_DIRECTORY",
                                                                "RUNTIME_DIRECTORY", "JOURNAL_STREAM")}
        env.update({"PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": str(self.notify.path), **extra_env})
        self._log = open(self.stderr_path, "w")
        self.process = subprocess.Popen([sys.executable, "-m", "autoretrain.daemon.supervisor.main", "--config", str(self.config_path)],
                                        env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        self.wait_for(lambda: self.notify.seen("READY=1"), timeout, "READY=1")

    def wait_for(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited with {self.process.returncode} while waiting for {what}:\n"
                                     f"{self.log()[-4000:]}")
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""

    def request(self, command: str, **args: Any) -> dict[str, Any]:
        client = ControlClient(self.config.control_endpoint, timeout_ms=5000, retries=2)
        try:
            return client.request(command, **args)
        finally:
            client.close()

    def status(self) -> dict[str, Any]:
        return self.request("status")

    def child_pid(self, name: str) -> int | None:
        return next(p["pid"] for p in self.status()["processes"] if p["name"] == name)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the daemon's store (a short-lived connection, closed at once)."""
        conn = sqlite3.connect(self.config.db_path, timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            self._log.close()
            self.notify.close()
        return code

    def wait_exit(self, timeout: float = 60.0) -> int:
        """The exit code of a daemon expected to stop by itself (a refusal, a give-up); nothing outlives the test."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.kill_everything()
            self._log.close()
            self.notify.close()

    def shutdown(self, timeout: float = 30.0) -> int:
        """SIGTERM and its exit code; whatever still runs afterwards is killed, so nothing outlives the test."""
        try:
            return self.stop(timeout)
        finally:
            self.kill_everything()

    def kill_everything(self) -> None:
        """Test clean-up: make sure nothing of this daemon outlives the test."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)


def signal_coverage(daemon: Daemon, exchange: str, symbol: str, timeframe: str,
                    after_ts: int) -> tuple[int, int, int, int]:
    """(closed candles after `after_ts` up to the newest signal, signals for them, candles without one,
    candles stored after the newest signal: a stalled inference shows up there)."""
    key = (exchange, symbol, timeframe)
    newest = daemon.query("SELECT MAX(candle_ts) FROM signals WHERE exchange = ? AND symbol = ? AND timeframe = ?",
                          *key)[0][0]
    if newest is None:
        return 0, 0, 0, 0
    in_range = " AND s.exchange = ? AND s.symbol = ? AND s.timeframe = ? AND c.ts > ? AND c.ts <= ?"
    candles = daemon.query("SELECT COUNT(*) FROM candles c JOIN series s ON s.id = c.series_id WHERE 1" + in_range,
                           *key, after_ts, newest)[0][0]
    signals = daemon.query("SELECT COUNT(*) FROM signals WHERE exchange = ? AND symbol = ? AND timeframe = ?"
                           " AND candle_ts > ? AND candle_ts <= ?", *key, after_ts, newest)[0][0]
    missing = daemon.query(
        "SELECT COUNT(*) FROM candles c JOIN series s ON s.id = c.series_id WHERE NOT EXISTS (SELECT 1 FROM signals g"
        " WHERE g.exchange = s.exchange AND g.symbol = s.symbol AND g.timeframe = s.timeframe AND g.candle_ts = c.ts)"
        + in_range, *key, after_ts, newest)[0][0]
    lag = daemon.query("SELECT COUNT(*) FROM candles c JOIN series s ON s.id = c.series_id WHERE s.exchange = ?"
                       " AND s.symbol = ? AND s.timeframe = ? AND c.ts > ?", *key, newest)[0][0]
    return int(candles), int(signals), int(missing), int(lag)
