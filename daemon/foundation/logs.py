"""Logging shared by every command and process: one event per line on stderr (and optionally a file).

Under systemd (stderr is the journal stream named by `$JOURNAL_STREAM`) records go to journald's
native socket, one identifier per process (foundation/journal.py); where that socket cannot be reached
each stderr line starts with a `<N>` syslog priority so journald records the level. Everywhere
else a line reads `2025-12-19 23:55:00 | INFO | ingest | message`. Multi-line messages and
tracebacks are folded into one line (newlines written as a literal `\\n`), so `journalctl` and
`grep` always see a whole record.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import IO

from autoretrain.daemon.foundation.journal import PRIORITY, journal_handler

_NOISY_LIBRARIES = ("ccxt", "urllib3", "requests", "asyncio", "onnxscript", "onnx_ir", "torch")


def _fold(text: str) -> str:
    return text.rstrip("\n").replace("\r", "").replace("\n", "\\n")


def stream_is_journal(stream: IO[str], env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """True when `stream` is the journald stream systemd connected (see systemd.exec JOURNAL_STREAM)."""
    expected = env.get("JOURNAL_STREAM")
    if not expected:
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{info.st_dev}:{info.st_ino}"


class OneLineFormatter(logging.Formatter):
    """`time | LEVEL | process | message`, or `<N>process | message` for journald; always one line."""

    def __init__(self, process: str, journal: bool) -> None:
        super().__init__(datefmt="%Y-%m-%d %H:%M:%S")
        self.process = process
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        elif record.exc_text:
            message = f"{message}\n{record.exc_text}"
        message = _fold(message)
        if self.journal:
            priority = PRIORITY.get(record.levelno, 6)
            return f"<{priority}>{self.process} | {message}"
        return f"{self.formatTime(record, self.datefmt)} | {record.levelname} | {self.process} | {message}"


def error_line(prog: str, message: str, stream: IO[str] | None = None) -> None:
    """`prog: error: message` as one line; under journald with the `<3>` prefix, so an error that comes
    before logging is set up (a config systemd's user cannot read, a missing dependency) still shows
    in `journalctl -p err`."""
    stream = stream or sys.stderr
    prefix = f"<{PRIORITY[logging.ERROR]}>" if stream_is_journal(stream) else ""
    print(f"{prefix}{prog}: error: {_fold(message)}", file=stream, flush=True)


def setup_logging(process: str, level: str = "INFO", log_file: str | os.PathLike[str] | None = None,
                  stream: IO[str] | None = None) -> logging.Logger:
    """Configure the root logger for this process; safe to call again (handlers are replaced)."""
    stream = stream or sys.stderr
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    journal = stream_is_journal(stream)
    console: logging.Handler = logging.StreamHandler(stream)
    console.setFormatter(OneLineFormatter(process, journal=journal))
    if journal:  # under systemd: native records, one identifier per process (stderr stays the fallback)
        console = journal_handler(process, console)
    root.addHandler(console)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(OneLineFormatter(process, journal=False))
        root.addHandler(file_handler)
    root.setLevel(level)
    for name in _NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)
    return logging.getLogger("autoretrain")


def log_uncaught(logger: logging.Logger) -> None:
    """Route uncaught exceptions through logging, so even a crash is one folded record."""

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        logger.critical("unhandled %s: %s", kind.__name__, value, exc_info=(kind, value, tb))

    sys.excepthook = hook
