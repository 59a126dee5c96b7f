"""`autoretrainctl`: the operator's command line, offline commands and (later) the daemon's control socket.

Every failure ends in one line on stderr, `autoretrainctl: error: ...`, and a sysexits-style code:
78 for configuration, 65 for bad data, 66 for a missing file, 69 for an unreachable exchange,
2 for a bad command line, 75 for a store that is busy, damaged, unreadable or read-only (any
`sqlite3.DatabaseError`: never reported as a bug). Results go to stdout, as text or, with `--json`,
as one JSON document.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from autoretrain.daemon.cli import backtest as backtest_commands
from autoretrain.daemon.cli import data as data_commands
from autoretrain.daemon.cli import live as live_commands
from autoretrain.daemon.cli import model as model_commands
from autoretrain.daemon.cli import performance as performance_commands
from autoretrain.daemon.cli import report as report_commands
from autoretrain.daemon.cli import store as store_commands
from autoretrain.daemon.foundation.config import load_config
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import EX_SOFTWARE, EX_TEMPFAIL, USER_ERRORS, exit_code
from autoretrain.daemon.foundation.logs import error_line, setup_logging
from autoretrain.daemon.store.failures import describe_failure, is_store_failure

PROG = "autoretrainctl"
EX_BAD_COMMAND_LINE = 2


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit 2), not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EX_BAD_COMMAND_LINE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand accepts, before or after its name."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, metavar="PATH",
                        help="configuration file (default: $AUTORETRAIN_CONFIG, then ./config.yaml)")
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="log progress (-v) or debug detail (-vv) to stderr")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog=PROG, description="Control and feed the autoretrain daemon.")
    parser.add_argument("--config", default=None, metavar="PATH",
                        help="configuration file (default: $AUTORETRAIN_CONFIG, then ./config.yaml)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log progress (-v) or debug detail (-vv) to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineArgumentParser)
    commands.required = True
    for area in (data_commands, model_commands, performance_commands, live_commands, backtest_commands, report_commands,
                 store_commands):
        area.register(commands, common_options())
    return parser


def _log_level(verbose: int) -> str:
    return "DEBUG" if verbose >= 2 else "INFO" if verbose == 1 else "WARNING"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("ctl", _log_level(args.verbose))
    config: Config | None = None
    try:
        config = load_config(args.config)
        return int(args.handler(args, config) or 0)
    except USER_ERRORS as exc:
        error_line(PROG, str(exc))
        return exit_code(exc)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        logging.getLogger("autoretrain").debug("failed", exc_info=True)
        if is_store_failure(exc):
            # the store failed under the command (damaged, unreadable, read-only, busy): not a bug
            error_line(PROG, describe_failure(config.db_path if config else "the store", exc))
            return EX_TEMPFAIL
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc} (run with -vv for details)", file=sys.stderr)
        return EX_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
