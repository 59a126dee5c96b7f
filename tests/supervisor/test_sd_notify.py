"""sd_notify without libsystemd: datagrams to our own NOTIFY_SOCKET, and a no-op without one."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from autoretrain.daemon.supervisor.sd_notify import notify, watchdog_interval


def test_notify_sends_one_datagram_with_all_assignments(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        assert notify("READY=1", "STATUS=3/3 ready", env={"NOTIFY_SOCKET": str(path)})
        assert listener.recv(4096) == b"READY=1\nSTATUS=3/3 ready"


def test_abstract_namespace_notify_socket(tmp_path: Path) -> None:
    name = f"autoretrain-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        assert notify("STOPPING=1", env={"NOTIFY_SOCKET": "@" + name})
        assert listener.recv(4096) == b"STOPPING=1"


def test_without_notify_socket_nothing_happens(tmp_path: Path) -> None:
    assert notify("READY=1", env={}) is False
    assert notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")}) is False


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None
