"""The state and runtime directories as the supervisor holds them: exclusive locks and the daemon's runtime files.

A second daemon on the same state directory, or sharing the runtime directory, refuses with exit 75
(`AlreadyRunning`) instead of deleting the first one's sockets and rings as "stale".
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import EX_TEMPFAIL, AutoretrainError
from autoretrain.daemon.market.clock import EXCHANGE_CLOCK_FILE
from autoretrain.daemon.processes.child import RESOLVED_CONFIG_NAME
from autoretrain.ipc.bus import bus_endpoints
from autoretrain.ipc.control import ipc_path
from autoretrain.ipc.ring import ring_path

LOCK_NAME = "autoretraind.lock"


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
    return [*rings, *(path for path in sockets if path is not None), runtime / RESOLVED_CONFIG_NAME,
            runtime / EXCHANGE_CLOCK_FILE]


def clear_runtime(config: Config) -> None:
    """Remove the daemon's runtime files, and rings or temporary files an earlier run left (call with the
    runtime directory locked)."""
    runtime = config.runtime_dir
    for path in [*runtime_files(config), *runtime.glob("ring-*.bin"), *runtime.glob("*.tmp")]:
        path.unlink(missing_ok=True)
