"""Errors that end a command with one clear line and a sysexits-style exit code.

Every failure a user can cause (bad config, bad CSV, unreachable exchange, bad arguments) is raised as
an `AutoretrainError` subclass; the command-line entry points print `str(error)` and exit with
`error.exit_code`, so no user mistake ever surfaces as a traceback.
"""

from __future__ import annotations

from autoretrain.models.errors import (
    ChampionChanged,
    DeviceUnavailable,
    InvalidVersion,
    ModelError,
    ModelRejected,
    NothingToRollBack,
    RegistryError,
    TrainingAborted,
    VersionNotFound,
)

EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_OSERR = 71
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_CONFIG = 78


class AutoretrainError(Exception):
    """Base class: a message meant for the operator, one line, and the exit code that goes with it."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(" ".join(message.split("\n")))
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(AutoretrainError):
    """The configuration is invalid; `key_path` names the offending key."""

    exit_code = EX_CONFIG

    def __init__(self, message: str, key_path: str = "") -> None:
        self.key_path = key_path
        super().__init__(message)


class UsageError(AutoretrainError):
    """A command was called with arguments that make no sense."""

    exit_code = EX_USAGE


class DataError(AutoretrainError):
    """Input data (a CSV file, a candle batch) is malformed; nothing was stored."""

    exit_code = EX_DATAERR


class NoInputError(AutoretrainError):
    """A file the user named does not exist or cannot be read."""

    exit_code = EX_NOINPUT


class SourceUnavailable(AutoretrainError):
    """The market source (an exchange) could not be reached after every retry."""

    exit_code = EX_UNAVAILABLE


class StoreError(AutoretrainError):
    """The state store is unusable (locked for too long, corrupt, unwritable)."""

    exit_code = EX_TEMPFAIL


#: the exit code of each error the model library raises, where a command or process ends
_MODEL_EXIT_CODES: dict[type[ModelError], int] = {
    ModelRejected: EX_DATAERR, RegistryError: EX_DATAERR, InvalidVersion: EX_USAGE, VersionNotFound: EX_NOINPUT,
    NothingToRollBack: EX_USAGE, ChampionChanged: EX_TEMPFAIL, TrainingAborted: EX_TEMPFAIL,
    DeviceUnavailable: EX_CONFIG,
}
#: what the edges catch: every error that is the user's or the environment's, never a bug
class TrainingTimedOut(AutoretrainError):
    """A retrain job ran past `training.timeout`: a failed run (the champion stays, the cooldown applies)."""

    exit_code = EX_TEMPFAIL


USER_ERRORS = (AutoretrainError, ModelError)


def exit_code(error: BaseException) -> int:
    """The sysexits-style code for an error of USER_ERRORS (1 for any other)."""
    if isinstance(error, AutoretrainError):
        return error.exit_code
    for kind in type(error).__mro__:
        if kind in _MODEL_EXIT_CODES:
            return _MODEL_EXIT_CODES[kind]
    return 1
