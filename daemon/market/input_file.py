"""Reading a file an operator names (a candle CSV, plain or gzip) with bounds, so no input can hang or exhaust us.

Only regular files are read: a FIFO, a device (`/dev/zero`), a socket or a directory is refused after
`os.stat`, before anything is opened, and the file is then opened with O_NONBLOCK and checked again
with `fstat` (a file swapped for a FIFO in between still cannot block). What is read is bounded: at
most `MAX_INPUT_BYTES` (after decompression, so a gzip bomb stops there) and no line longer than
`MAX_LINE_BYTES` (a candle row is a few dozen bytes; a longer line is not a candle CSV).
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from autoretrain.daemon.foundation.errors import DataError, NoInputError

#: the most a candle file may hold, decompressed: 1 GiB is over ten years of 1m candles in a wide export
MAX_INPUT_BYTES = 1 << 30
#: the longest line: a header with extra columns or a wide exchange export fits many times over
MAX_LINE_BYTES = 8192
CHUNK_BYTES = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _check_regular(path: Path, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise NoInputError(f"{path}: is a directory, not a CSV file")
    if not stat.S_ISREG(mode):
        raise NoInputError(f"{path}: is {_kind(mode)}, not a regular file: only regular files are read")


def _open_regular(path: Path) -> BinaryIO:
    """The file opened for reading, refused unless it is a regular file; never blocks."""
    try:
        _check_regular(path, os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NoInputError(f"{path}: no such file") from None
    except PermissionError:
        raise NoInputError(f"{path}: permission denied") from None
    except NotADirectoryError:
        raise NoInputError(f"{path}: no such file (a part of the path is not a directory)") from None
    except OSError as exc:
        raise NoInputError(f"{path}: cannot open: {exc.strerror or exc}") from None
    try:
        _check_regular(path, os.fstat(fd).st_mode)
    except NoInputError:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


class _LineBound:
    """Follows line lengths across chunks; raises DataError at the first line over MAX_LINE_BYTES."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.current = 0  # bytes of the line still open at the end of the last chunk
        self.lines_before = 0  # line breaks seen in earlier chunks

    def feed(self, chunk: bytes) -> None:
        data = np.frombuffer(chunk, dtype=np.uint8)
        breaks = np.flatnonzero((data == 0x0A) | (data == 0x0D))
        starts = np.concatenate([[-1], breaks])
        lengths = np.diff(np.concatenate([starts, [len(data)]])) - 1
        lengths[0] += self.current
        too_long = np.flatnonzero(lengths > self.limit)
        if len(too_long):
            first = int(too_long[0])
            newlines = int(np.count_nonzero(data[: int(starts[first]) + 1] == 0x0A)) if first else 0
            raise DataError(f"{self.path} line {self.lines_before + newlines + 1}: longer than {self.limit} bytes "
                            "(a candle CSV row is a few dozen): not a candle CSV file")
        self.current = int(lengths[-1])
        self.lines_before += int(np.count_nonzero(data == 0x0A))


def _read_bounded(path: Path, stream: BinaryIO, max_bytes: int, max_line: int) -> bytes:
    lines = _LineBound(path, max_line)
    parts: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            return b"".join(parts)
        total += len(chunk)
        if total > max_bytes:
            raise DataError(f"{path}: more than {max_bytes} bytes ({max_bytes / 2**20:.0f} MiB) of data, the most "
                            "a candle file may hold: split it, or import it in parts")
        lines.feed(chunk)
        parts.append(chunk)


def read_bounded_text(path: Path, *, max_bytes: int | None = None, max_line: int | None = None) -> str:
    """The whole file as UTF-8 text (gunzipped when it starts with the gzip magic), within the bounds;
    NoInputError (66) for what cannot be opened or is no regular file, DataError (65) for the rest."""
    max_bytes = MAX_INPUT_BYTES if max_bytes is None else max_bytes
    max_line = MAX_LINE_BYTES if max_line is None else max_line
    with _open_regular(path) as raw:
        try:
            size = os.fstat(raw.fileno()).st_size
            magic = raw.read(2)
            raw.seek(0)
            if magic == _GZIP_MAGIC:
                with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                    data = _read_bounded(path, unzipped, max_bytes, max_line)  # type: ignore[arg-type]
            else:
                if size > max_bytes:
                    raise DataError(f"{path}: {size} bytes, more than {max_bytes} ({max_bytes / 2**20:.0f} MiB), "
                                    "the most a candle file may hold: split it, or import it in parts")
                data = _read_bounded(path, raw, max_bytes, max_line)
            return data.decode("utf-8")
        except PermissionError:
            raise NoInputError(f"{path}: permission denied") from None
        except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read: {exc}") from None
