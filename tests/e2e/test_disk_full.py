"""The state directory's filesystem full under the running daemon (a 3 MiB tmpfs, filled by a file the test
writes): a transient fault, not damage. One error line per paused child, no traceback, the daemon keeps
running; once the filler is deleted ingest catches up with no gap, every candle gets its signal, and the store
passes quick_check."""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.config import simulated_config
from tests.support.daemon import Daemon, signal_coverage

pytestmark = pytest.mark.slow
HOUR_MS = 3_600_000
KEY = ("simulated", "BTC/USDT", "1h")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs for the state directory (needs root and a mount namespace that allows it)."""
    mount_point = tmp_path / "state"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> int:
    """Write zeros to `path` until the filesystem refuses (ENOSPC); the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as handle:
        try:
            while True:
                written += handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return written


def gaps(daemon: Daemon, after_ts: int) -> int:
    """Missing hours between consecutive stored candles after `after_ts`."""
    rows = daemon.query("SELECT c.ts FROM candles c JOIN series s ON s.id = c.series_id WHERE s.exchange = ? AND "
                        "s.symbol = ? AND s.timeframe = ? AND c.ts > ? ORDER BY c.ts", *KEY, after_ts)
    ts = [row[0] for row in rows]
    return sum((b - a) // HOUR_MS - 1 for a, b in zip(ts, ts[1:], strict=False))


def newest(daemon: Daemon, sql: str) -> int:
    return daemon.query(sql)[0][0] or 0


def test_a_full_disk_pauses_the_writers_and_they_catch_up_when_space_returns(tmp_path: Path, small_fs: Path) -> None:
    config = simulated_config(small_fs, paths={"state_dir": str(small_fs), "runtime_dir": str(tmp_path / "run")},
                              auto_training={"enabled": False})
    daemon = Daemon(tmp_path, config).start()
    filler = small_fs / "filler"
    try:
        daemon.wait_ready()
        daemon.wait_for(lambda: newest(daemon, "SELECT COUNT(*) FROM signals") >= 10, 60, "the first signals")
        before = newest(daemon, "SELECT MAX(ts) FROM candles")
        fill(filler)
        daemon.wait_for(lambda: "ingest paused" in daemon.log(), 60, "ingest paused on the full disk")
        full_at = newest(daemon, "SELECT MAX(ts) FROM candles")
        time.sleep(3)  # full for a while: the writers wait, nobody gives up
        assert daemon.process is not None and daemon.process.poll() is None, daemon.log()[-3000:]
        assert newest(daemon, "SELECT MAX(ts) FROM candles") == full_at  # nothing stored while full
        assert {p["name"]: p["restarts"] for p in daemon.status()["processes"]} == \
            {"supervisor": 0, "ingest": 0, "inference": 0, "trainer": 0}

        filler.unlink()
        daemon.wait_for(lambda: "ingest resumed" in daemon.log(), 60, "ingest resumed")
        daemon.wait_for(lambda: newest(daemon, "SELECT MAX(candle_ts) FROM signals") > full_at + 30 * HOUR_MS, 60,
                        "signals for 30 candles after the disk had space again")
        candles, signals, missing, _ = signal_coverage(daemon, *KEY, after_ts=before)
    finally:
        code = daemon.shutdown()
    log = daemon.log()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if " | ERROR | " in line]
    assert errors, log[-3000:]
    pattern = re.compile(r"\| ERROR \| (ingest|inference|trainer) \| \1 paused, retrying with backoff: "
                         r"store .*autoretrain\.db cannot grow: its disk is full: database or disk is full; ")
    assert all(pattern.search(line) for line in errors), "\n".join(errors)
    assert sum("ingest paused" in line for line in errors) == 1  # once for the episode, not once per retry
    assert gaps(daemon, before) == 0
    assert candles > 30 and signals == candles and missing == 0, (candles, signals, missing)
    conn = sqlite3.connect(daemon.config.db_path)
    try:
        assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    finally:
        conn.close()
