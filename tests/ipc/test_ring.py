"""Shared-memory candle rings: layout checks, wrap-around, resets, and no torn reads across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from autoretrain.daemon.foundation.timeframes import HOUR_MS
from autoretrain.ipc.candles import CANDLE_DTYPE
from autoretrain.ipc.ring import CandleRing, RingError, ring_path
from tests.support.data import ROOT, random_walk_candles


def test_write_and_read_latest_with_wrap_around(tmp_path: Path) -> None:
    ring = CandleRing.create(ring_path(tmp_path, "BTC/USDT", "1h"), capacity=64)
    candles = random_walk_candles(200)
    ring.write(candles[:10])
    np.testing.assert_array_equal(ring.read_latest(5), candles[5:10])
    np.testing.assert_array_equal(ring.read_latest(100), candles[:10])
    for start in range(10, 200, 7):
        ring.write(candles[start:start + 7])
    np.testing.assert_array_equal(ring.read_latest(64), candles[-64:])
    assert ring.state() == (200, int(candles["ts"][-1]))
    ring.write(candles[150:160])  # older than what the ring holds: ignored
    assert ring.state()[0] == 200
    reader = CandleRing.attach(ring.path)
    np.testing.assert_array_equal(reader.read_latest(3), candles[-3:])
    assert (tmp_path / "ring-BTC_USDT-1h.bin").exists()
    assert oct(os.stat(ring.path).st_mode & 0o777) == oct(0o640)


def test_reset_replaces_the_content(tmp_path: Path) -> None:
    ring = CandleRing.create(tmp_path / "r.bin", capacity=16)
    ring.write(random_walk_candles(30, seed=1))
    fresh = random_walk_candles(5, seed=2, start_ms=1_800_000_000_000 // HOUR_MS * HOUR_MS)
    ring.reset(fresh)
    np.testing.assert_array_equal(ring.read_latest(16), fresh)
    ring.reset(np.empty(0, dtype=CANDLE_DTYPE))
    assert len(ring.read_latest(16)) == 0 and ring.state()[1] == -1


def test_attach_refuses_what_is_not_a_ring(tmp_path: Path) -> None:
    with pytest.raises(RingError, match="no ring"):
        CandleRing.attach(tmp_path / "missing.bin")
    bogus = tmp_path / "bogus.bin"
    bogus.write_bytes(b"\0" * 4096)
    with pytest.raises(RingError, match="not a version 1 candle ring"):
        CandleRing.attach(bogus)


WRITER = r"""
import sys, time, numpy as np
from autoretrain.ipc.ring import CandleRing
from autoretrain.ipc.candles import CANDLE_DTYPE
ring = CandleRing.attach(sys.argv[1], writable=True)
deadline = time.monotonic() + float(sys.argv[2])
ts = 1
while time.monotonic() < deadline:
    batch = np.empty(17, dtype=CANDLE_DTYPE)
    batch["ts"] = np.arange(ts, ts + 17)
    for name in ("open", "high", "low", "close", "volume"):
        batch[name] = batch["ts"] * 2.0
    ring.write(batch)
    ts += 17
    time.sleep(0.0002)  # ~5000 writes a second: far more than any market, with gaps a reader can use
print(ts - 1)
"""


def test_a_reader_never_sees_a_torn_candle_while_another_process_writes(tmp_path: Path) -> None:
    ring = CandleRing.create(tmp_path / "r.bin", capacity=256)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(ring.path), "2.0"], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    reader = CandleRing.attach(ring.path)
    reads = 0
    newest_seen = 0
    deadline = time.monotonic() + 1.8
    while time.monotonic() < deadline:
        window = reader.read_latest(200)
        if len(window) == 0:
            continue
        reads += 1
        ts = window["ts"]
        assert (np.diff(ts) == 1).all(), "a window mixes two generations of the ring"
        for name in ("open", "high", "low", "close", "volume"):
            assert (window[name] == ts * 2.0).all(), "a candle was read half-written"
        assert ts[-1] >= newest_seen
        newest_seen = int(ts[-1])
    out, _ = writer.communicate(timeout=30)
    assert writer.returncode == 0
    assert reads > 50 and newest_seen > 1000
    assert reader.state()[1] == int(out)
