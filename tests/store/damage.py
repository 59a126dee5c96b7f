"""Real stores, really damaged: what a power cut, a full disk or a bad sector leaves, for the store, CLI and daemon tests.

`build_store` writes a store through the project's own tables (signals with outcomes, activations, retrain runs,
two candle series) and returns every row; the damage helpers then truncate the file, overwrite bytes of its
header, of page 1 or of one candle page in the middle, or make it read-only or unreadable. Which rows live on
which page comes from SQLite's own `dbstat` table, never from the code under test.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from autoretrain.daemon.signals.vote import BUY, SELL
from autoretrain.daemon.store.database import Database
from tests.support.data import random_walk_candles
from tests.support.market_script import EX, SYM, TF, rising, trade, ts_at

TABLES = ("series", "candles", "retrain_runs", "signals", "outcomes", "model_activations")
GARBAGE = bytes(range(251)) * 40  # not random: the same damage every run


def build_store(path: Path, *, candles: int = 3000, exchange: str = EX) -> dict[str, set[tuple]]:
    """A store as the daemon leaves it; the small tables first, so that their pages lie before the candles'."""
    with Database(path) as db:
        db.candles.upsert(exchange, SYM, TF, rising(0, 201))
        for index in range(200):
            db.signals.record(exchange, SYM, TF, trade(index, BUY if index % 3 else SELL, "v0001" if index > 100 else None))
        db.signals.settle(exchange, SYM, TF, horizon=1, fee_bps=10.0)
        db.signals.record_activation(exchange, SYM, TF, "v0001", ts_at(100))
        db.runs.queue(exchange, SYM, TF, trigger="cli", reason="test")
        db.candles.upsert(exchange, SYM, TF, rising(201, candles - 201))
        db.candles.upsert(exchange, "ETH/USDT", TF, random_walk_candles(candles, seed=5))
        db.checkpoint()
    return rows(path)


def rows(path: Path) -> dict[str, set[tuple]]:
    """Every row of every table (of an intact store)."""
    conn = sqlite3.connect(path)
    try:
        return {table: set(conn.execute(f"SELECT * FROM {table}")) for table in TABLES}
    finally:
        conn.close()


@dataclass(frozen=True)
class Page:
    number: int
    table: str
    kind: str  # 'leaf', 'internal' or 'overflow'
    cells: int


def pages(path: Path) -> list[Page]:
    """Each page of the file with its table and cell count, from SQLite's dbstat (skips the test without it)."""
    conn = sqlite3.connect(path)
    try:
        found = [Page(*row) for row in conn.execute("SELECT pageno, name, pagetype, ncell FROM dbstat ORDER BY pageno")]
    except sqlite3.OperationalError:
        pytest.skip("this SQLite is built without the dbstat table the test counts rows per page with")
    finally:
        conn.close()
    return found


def page_size(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[16:18], "big")


def overwrite(path: Path, offset: int, length: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(GARBAGE[:length])


def middle_candle_leaf(path: Path) -> Page:
    """A candle leaf page well inside the BTC/USDT series (its neighbours intact)."""
    leaves = [page for page in pages(path) if page.table == "candles" and page.kind == "leaf"]
    return leaves[len(leaves) // 4]


def truncate_candles(path: Path) -> int:
    """Cut the file after the small tables and part of the candles; returns the number of pages left."""
    layout = pages(path)
    small = max(page.number for page in layout if page.table != "candles")
    candle_pages = [page.number for page in layout if page.table == "candles"]
    keep = max(small, candle_pages[len(candle_pages) // 2])
    os.truncate(path, keep * page_size(path))
    return keep


def candle_rows_on(layout: list[Page], keep: int) -> int:
    """Candles on the pages that survived a truncation: every cell of a candle page (leaf or interior: the
    interior pages of a WITHOUT ROWID table hold rows too)."""
    return sum(page.cells for page in layout if page.table == "candles" and page.number <= keep)


def is_one_run(lost: set[tuple], kept: set[tuple]) -> bool:
    """Whether the lost candles are one run of consecutive keys of one series (one page's worth)."""
    keys = sorted((row[0], row[1]) for row in lost | kept)
    positions = [index for index, key in enumerate(keys) if key in {(row[0], row[1]) for row in lost}]
    return bool(positions) and positions == list(range(positions[0], positions[0] + len(positions)))


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """The store file made read-only for whoever runs the test: a mode as a user, the immutable flag as root
    (root ignores modes); skipped where neither can be had (chattr missing or the filesystem without it)."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root, which ignores file modes, and chattr (the immutable flag) is not installed")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"running as root, which ignores file modes, and chattr +i is refused here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextmanager
def unprivileged() -> Iterator[tuple[Path, Callable[[list[str]], list[str]]]]:
    """A folder and a way to run commands in it such that a file of mode 000 cannot be read: as is for a user;
    as root through setpriv as nobody (the folder is nobody's), skipped where nobody cannot run this Python."""
    folder = Path(tempfile.mkdtemp(prefix="autoretrain-unreadable-"))
    try:
        if os.geteuid() != 0:
            yield folder, lambda command: command
            return
        if shutil.which("setpriv") is None:
            pytest.skip("running as root, which reads any file, and setpriv (to run as nobody) is not installed")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        probe = subprocess.run([*prefix, sys.executable, "-c", "import autoretrain.daemon.supervisor.main"],
                               capture_output=True, text=True, cwd="/")
        if probe.returncode != 0:
            pytest.skip(f"running as root, which reads any file, and nobody cannot run {sys.executable}: "
                        f"{(probe.stderr.strip().splitlines() or ['?'])[-1]}")
        folder.chmod(0o755)
        os.chown(folder, 65534, 65534)
        yield folder, lambda command: [*prefix, *command]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
