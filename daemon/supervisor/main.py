"""`autoretraind`: validate the configuration, open the supervisor, run it; every start-up error is one line.

A configuration error is exit 78 (systemd's unit does not retry it: RestartPreventExitStatus); a
second daemon on the same state or runtime directory, or a store that is damaged, unreadable or read-only
(checked before any child starts), is exit 75 (not retried either); a directory the daemon cannot create
or a socket it cannot bind is exit 71.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import zmq

from autoretrain.daemon.foundation.config import load_config
from autoretrain.daemon.foundation.errors import EX_OSERR, USER_ERRORS, exit_code
from autoretrain.daemon.foundation.logs import error_line, log_uncaught, setup_logging
from autoretrain.daemon.supervisor.arbiter import Supervisor

PROG = "autoretraind"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Run the autoretrain daemon in the foreground.")
    parser.add_argument("--config", default=None, metavar="PATH",
                        help="configuration file (default: $AUTORETRAIN_CONFIG, then ./config.yaml)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except USER_ERRORS as exc:
        error_line(PROG, str(exc))
        return exit_code(exc)
    log = setup_logging("supervisor", config.logging.level, config.logging.file)
    log_uncaught(log)
    supervisor = Supervisor(config)
    try:
        supervisor.open()
    except USER_ERRORS as exc:  # at error priority under journald: a damaged store, a second daemon
        error_line(PROG, str(exc))
        return exit_code(exc)
    except (OSError, zmq.ZMQError) as exc:
        error_line(PROG, f"cannot start with state {config.state_dir} and runtime {config.runtime_dir}: {exc}")
        return EX_OSERR
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
