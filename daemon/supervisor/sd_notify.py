"""systemd notification (sd_notify) without a C dependency: one datagram to $NOTIFY_SOCKET.

A no-op when NOTIFY_SOCKET is unset (not under systemd, or a child process: the supervisor removes
it from their environment). Tests bind their own AF_UNIX datagram socket and point NOTIFY_SOCKET at it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def notify(*assignments: str, env: Mapping[str, str] | None = None) -> bool:
    """Send e.g. notify("READY=1", "STATUS=running"); returns whether a message was sent."""
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET")
    if not address or not assignments:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    message = "\n".join(assignments).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            # never block the supervisor: if the receiver's queue is full the update is dropped
            sock.send(message, socket.MSG_DONTWAIT)
    except OSError:
        return False
    return True


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when no watchdog is set."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
