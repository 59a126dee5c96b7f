"""`autoretraind`: validate the configuration, open the supervisor, run it; every start-up error is one line.

A configuration error is exit 78 (systemd's unit does not retry it: RestartPreventExitStatus); a
second daemon on the same state or runtime directory is exit 75; a directory the daemon cannot create
or a socket it cannot bind is exit 71.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import zmq

from autoretrain.daemon.foundation.config import load_config
from autoretrain.daemon.foundation.errors import EX_OSERR, USER_ERRORS, exit_code
from autoretrain.daemon.foundation.logs import log_uncaught, setup_logging
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
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exit_code(exc)
    log = setup_logging("supervisor", config.logging.level, config.logging.file)
    log_uncaught(log)
    supervisor = Supervisor(config)
    try:
        supervisor.open()
    except USER_ERRORS as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except (OSError, zmq.ZMQError) as exc:
        print(f"{PROG}: error: cannot start with state {config.state_dir} and runtime {config.runtime_dir}: "
              f"{exc}", file=sys.stderr)
        return EX_OSERR
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
