"""Shared-memory candle rings: one file per symbol/timeframe, one writer (ingest), many readers.

The ring is an `np.memmap` of a file in the runtime directory (tmpfs under systemd), not a
`multiprocessing.shared_memory` segment: on Python 3.11 a reader attaching to a SharedMemory and
exiting makes the resource tracker destroy the writer's segment. Layout (little endian):

    header (64 bytes): magic u64 | version u32 | capacity u32 | record size u32 | pad u32
                       | sequence u64 | head u64 | last open time i64 | pad
    records: capacity x CANDLE_DTYPE (48 bytes each)

`head` counts every candle ever written; record `head % capacity` is the next slot. Readers never see
a torn candle thanks to a seqlock: the writer makes `sequence` odd before it touches the records
and even again afterwards; a reader copies what it needs and retries if the sequence was odd or
changed meanwhile. The writer must write candles in increasing open time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from autoretrain.ipc.candles import CANDLE_DTYPE

MAGIC = 0x474E495243524155  # "UARCRING" little endian
VERSION = 1
HEADER_DTYPE = np.dtype([
    ("magic", "<u8"), ("version", "<u4"), ("capacity", "<u4"), ("record_size", "<u4"), ("pad0", "<u4"),
    ("sequence", "<u8"), ("head", "<u8"), ("last_ts", "<i8"), ("pad1", "<u8", (3,)),
])
HEADER_SIZE = HEADER_DTYPE.itemsize


class RingError(Exception):
    """The ring file is missing, of another layout, or could not be read consistently."""


class TornRead(RingError):
    """The writer kept the ring busy for the whole retry budget."""


def ring_path(runtime_dir: Path, symbol: str, timeframe: str) -> Path:
    safe = symbol.replace("/", "_").replace(":", "_")
    return Path(runtime_dir) / f"ring-{safe}-{timeframe}.bin"


class CandleRing:
    """A view of one ring file; `create` (supervisor) makes it, `attach` (ingest, inference) opens it."""

    def __init__(self, path: Path, memory: np.memmap) -> None:
        self.path = path
        self._memory = memory
        self._header = np.ndarray((), dtype=HEADER_DTYPE, buffer=memory, offset=0)
        capacity = int(self._header["capacity"])
        self.capacity = capacity
        self._records = np.ndarray((capacity,), dtype=CANDLE_DTYPE, buffer=memory, offset=HEADER_SIZE)

    @classmethod
    def create(cls, path: str | Path, capacity: int) -> CandleRing:
        """A new, empty ring file (replacing a stale one), world-unreadable (0640)."""
        path = Path(path)
        size = HEADER_SIZE + capacity * CANDLE_DTYPE.itemsize
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        memory = np.memmap(temporary, dtype=np.uint8, mode="r+", shape=(size,))
        header = np.ndarray((), dtype=HEADER_DTYPE, buffer=memory, offset=0)
        header["version"] = VERSION
        header["capacity"] = capacity
        header["record_size"] = CANDLE_DTYPE.itemsize
        header["last_ts"] = -1
        header["magic"] = MAGIC
        memory.flush()
        os.replace(temporary, path)
        return cls(path, memory)

    @classmethod
    def attach(cls, path: str | Path, *, writable: bool = False) -> CandleRing:
        path = Path(path)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise RingError(f"no ring at {path}") from None
        if size < HEADER_SIZE:
            raise RingError(f"{path}: too small to be a candle ring")
        memory = np.memmap(path, dtype=np.uint8, mode="r+" if writable else "r", shape=(size,))
        header = np.ndarray((), dtype=HEADER_DTYPE, buffer=memory, offset=0)
        if int(header["magic"]) != MAGIC or int(header["version"]) != VERSION:
            raise RingError(f"{path}: not a version {VERSION} candle ring")
        if int(header["record_size"]) != CANDLE_DTYPE.itemsize or \
                size != HEADER_SIZE + int(header["capacity"]) * CANDLE_DTYPE.itemsize:
            raise RingError(f"{path}: layout does not match this version")
        return cls(path, memory)

    # -- writer ----------------------------------------------------------------------------------------

    def write(self, candles: np.ndarray) -> None:
        """Append candles (increasing open times, newer than what the ring holds; older ones are skipped)."""
        candles = np.asarray(candles, dtype=CANDLE_DTYPE)
        last_ts = int(self._header["last_ts"])
        candles = candles[candles["ts"] > last_ts][-self.capacity:]
        if len(candles) == 0:
            return
        self._header["sequence"] += 1  # odd: writing
        head = int(self._header["head"])
        slots = (head + np.arange(len(candles))) % self.capacity
        self._records[slots] = candles
        self._header["head"] = head + len(candles)
        self._header["last_ts"] = int(candles["ts"][-1])
        self._header["sequence"] += 1  # even: consistent

    def reset(self, candles: np.ndarray) -> None:
        """Replace the whole content (ingest resynchronising from the store after a restart)."""
        candles = np.asarray(candles, dtype=CANDLE_DTYPE)[-self.capacity:]
        self._header["sequence"] += 1
        head = int(self._header["head"]) + self.capacity  # readers see a jump, never a stale mix
        self._records[:] = np.zeros(self.capacity, dtype=CANDLE_DTYPE)
        slots = (head - len(candles) + np.arange(len(candles))) % self.capacity
        self._records[slots] = candles
        self._header["head"] = head
        self._header["last_ts"] = int(candles["ts"][-1]) if len(candles) else -1
        self._header["sequence"] += 1

    # -- readers ---------------------------------------------------------------------------------------

    def state(self) -> tuple[int, int]:
        """(head, last open time) without copying records."""
        return int(self._header["head"]), int(self._header["last_ts"])

    def read_latest(self, count: int, *, budget_s: float = 2.0) -> np.ndarray:
        """The newest min(count, available) candles, oldest first, consistent under concurrent writes.

        Retries while the writer is mid-write (backing off from spinning to short sleeps); raises
        TornRead only if the writer kept the ring busy for the whole `budget_s`.
        """
        count = min(count, self.capacity)
        deadline = None
        attempt = 0
        while True:
            before = int(self._header["sequence"])
            if before % 2 == 0:
                head = int(self._header["head"])
                available = min(count, head, self.capacity)
                slots = (head - available + np.arange(available)) % self.capacity
                copy = self._records[slots].copy()
                if int(self._header["sequence"]) == before:
                    return copy[copy["ts"] > 0] if available else copy
            attempt += 1
            if attempt > 20:
                deadline = deadline or time.monotonic() + budget_s
                if time.monotonic() > deadline:
                    raise TornRead(f"{self.path}: writer kept the ring busy for {budget_s:.1f} s")
                time.sleep(0.00005 * min(attempt - 20, 20))

    def close(self) -> None:
        memory = getattr(self._memory, "_mmap", None)
        self._records = None  # type: ignore[assignment]
        self._header = None  # type: ignore[assignment]
        if memory is not None:
            try:
                memory.close()
            except (BufferError, ValueError):
                pass
