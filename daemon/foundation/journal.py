"""Log records sent to journald over its native protocol, so each process is its own identifier.

Under systemd every process of the unit shares one stderr stream and one `SYSLOG_IDENTIFIER`; sent as
native datagrams instead, a record carries `SYSLOG_IDENTIFIER=autoretrain-<process>` (filter with
`journalctl -u autoretrain -t autoretrain-trainer`), `AUTORETRAIN_PROCESS`, its `PRIORITY` and the
logger and code location, and a traceback stays one record with its real line breaks. journald still
files them under the unit (it reads the sender's cgroup). Where the socket cannot be reached the
caller keeps the stderr stream (the `<N>` prefixed lines).
"""

from __future__ import annotations

import logging
import socket
import struct
from pathlib import Path

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
#: well under the datagram limit journald's socket accepts by default; longer messages are cut
MAX_MESSAGE_BYTES = 48 * 1024


def _field(name: str, value: str) -> bytes:
    """One field of the native protocol; the binary form, which allows line breaks in the value."""
    data = value.encode("utf-8", "replace")
    return name.encode("ascii") + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"


def encode(record: logging.LogRecord, message: str, process: str) -> bytes:
    if len(message.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
        message = message.encode("utf-8", "replace")[:MAX_MESSAGE_BYTES].decode("utf-8", "ignore") + " [cut]"
    fields = {
        "MESSAGE": message,
        "PRIORITY": str(PRIORITY.get(record.levelno, 6)),
        "SYSLOG_IDENTIFIER": f"autoretrain-{process}",
        "AUTORETRAIN_PROCESS": process,
        "LOGGER": record.name,
        "CODE_FILE": record.pathname,
        "CODE_LINE": str(record.lineno),
        "CODE_FUNC": record.funcName,
    }
    return b"".join(_field(name, value) for name, value in fields.items())


class JournalHandler(logging.Handler):
    """Sends each record as one datagram; on a send error falls back to `fallback` (the stderr handler)."""

    def __init__(self, process: str, fallback: logging.Handler, path: Path = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.process, self.fallback, self.path = process, fallback, path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.connect(str(path))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            self.sock.send(encode(record, message.rstrip("\n"), self.process))
        except OSError:
            self.fallback.handle(record)
        except Exception:  # noqa: BLE001 - logging's contract: a handler never raises
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def journal_handler(process: str, fallback: logging.Handler, path: Path = JOURNAL_SOCKET) -> logging.Handler:
    """A JournalHandler when journald's socket answers, else `fallback` itself."""
    try:
        return JournalHandler(process, fallback, path)
    except OSError:
        return fallback
