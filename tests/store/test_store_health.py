"""inspect_store and verify_store on real files, each damaged the way a power cut or a full disk leaves it."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.errors import EX_TEMPFAIL, StoreError
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.store.failures import BUSY, DAMAGED, FULL, READ_ONLY, UNREADABLE, classify, describe_failure
from autoretrain.daemon.store.health import inspect_store, verify_store
from autoretrain.daemon.store.schema import MIGRATIONS
from tests.store.damage import TABLES, build_store, middle_candle_leaf, overwrite, page_size, read_only, truncate_candles


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "autoretrain.db"
    build_store(path, candles=1500)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_healthy_store_reports_integrity_schema_rows_and_space(store: Path) -> None:
    before = digest(store)
    health = inspect_store(store)
    assert health.healthy and health.problem is None and health.message() == ""
    assert health.integrity == ["ok"] and health.integrity_complete
    assert health.schema_version == len(MIGRATIONS) == health.expected_version
    assert health.tables == {"series": 2, "candles": 3000, "retrain_runs": 1, "signals": 200, "outcomes": 200,
                             "model_activations": 1}
    assert health.writable is True
    assert health.file_bytes == store.stat().st_size == health.page_count * health.page_size
    assert health.free_pages == 0 and health.disk_free_bytes > 0
    assert digest(store) == before  # looking changed nothing
    verify_store(store)  # and the daemon would start


def test_a_missing_store_is_no_problem_at_start(tmp_path: Path) -> None:
    health = verify_store(tmp_path / "autoretrain.db")
    assert not health.exists and not (tmp_path / "autoretrain.db").exists()


def assert_refused(path: Path, kind: str, *fragments: str) -> str:
    health = inspect_store(path)
    assert not health.healthy and health.problem is not None and health.problem.kind == kind, health
    with pytest.raises(StoreError) as refused:
        verify_store(path)
    line = str(refused.value)
    assert refused.value.exit_code == EX_TEMPFAIL
    assert "\n" not in line and line.startswith(f"store {path} ") and line == health.message()
    for fragment in fragments:
        assert fragment in line
    return line


def test_a_truncated_store_says_it_was_cut_short_and_counts_what_is_left(store: Path) -> None:
    truncate_candles(store)
    line = assert_refused(store, DAMAGED, "is damaged", "shorter than its header says", "truncated",
                          "autoretrainctl store check", "autoretrainctl store recover")
    assert "malformed" not in line
    health = inspect_store(store)
    assert health.tables["signals"] == 200 and health.tables["candles"] is None  # what is left is still counted


def test_a_store_cut_to_less_than_a_page(store: Path) -> None:
    os.truncate(store, 50)
    assert_refused(store, DAMAGED, "shorter than its header says")


def test_an_empty_file_is_damage_not_a_fresh_store(store: Path) -> None:
    os.truncate(store, 0)
    assert_refused(store, DAMAGED, "empty (0 bytes)")
    assert store.stat().st_size == 0  # not turned into a new, empty store by looking at it


def test_garbage_in_the_header(store: Path) -> None:
    overwrite(store, 0, 100)
    assert_refused(store, DAMAGED, "not SQLite's", "file is not a database")


def test_garbage_in_the_rest_of_page_one(store: Path) -> None:
    overwrite(store, 100, page_size(store) - 100)  # the header is intact, the schema table is not
    assert_refused(store, DAMAGED, "malformed")


def test_garbage_in_a_candle_page_in_the_middle(store: Path) -> None:
    page = middle_candle_leaf(store)
    overwrite(store, (page.number - 1) * page_size(store), page_size(store))
    line = assert_refused(store, DAMAGED, "quick_check found", "candles")
    health = inspect_store(store)
    assert health.tables["candles"] is None and health.tables["signals"] == 200, line


def test_a_read_only_store(store: Path) -> None:
    with read_only(store):
        health = inspect_store(store)
        assert health.writable is False and health.tables["candles"] == 3000  # readable, not writable
        assert_refused(store, READ_ONLY, "is read-only", "readonly")


def test_a_directory_where_the_store_should_be(tmp_path: Path) -> None:
    path = tmp_path / "autoretrain.db"
    path.mkdir()
    assert_refused(path, UNREADABLE, "cannot be opened", "not a regular file (a directory)")


def test_an_unreadable_store(store: Path) -> None:
    store.chmod(0)
    try:
        if os.access(store, os.R_OK):
            pytest.skip("running as root: a file of mode 000 is still readable (tests/supervisor/test_store_check.py runs it as nobody)")
        assert_refused(store, UNREADABLE, "cannot be opened", "Permission denied")
    finally:
        store.chmod(0o644)


def test_the_start_check_is_bounded_in_time(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    Database(path).close()
    conn = sqlite3.connect(path)
    with conn:  # ~30 MB of candles: a check takes far longer than the bound below
        conn.execute("INSERT INTO series (id, exchange, symbol, timeframe) VALUES (1, 'binance', 'BTC/USDT', '1m')")
        conn.executemany("INSERT INTO candles VALUES (1, ?, 1.0, 2.0, 0.5, 1.5, 10.0)", ((i * 60_000,) for i in range(600_000)))
    conn.close()
    # interrupted after 50 ms of a ~200 ms check: what it read had no damage, the daemon starts (three tries: a
    # loaded machine may start the check only after the bound, and an interrupt before it starts does nothing)
    tries = [verify_store(path, time_limit_s=0.05) for _ in range(3)]
    health = next((h for h in tries if not h.integrity_complete), tries[-1])
    assert health.problem is None and not health.integrity_complete
    assert any("stopped after" in note for note in health.notes)
    assert inspect_store(path, count_rows=False).integrity_complete  # without a bound (store check) it reads it all


def test_the_full_check_also_compares_indexes(store: Path) -> None:
    health = inspect_store(store, full=True)
    assert health.healthy and health.integrity == ["ok"]


def test_a_schema_from_a_newer_version_is_noted_not_refused(store: Path) -> None:
    conn = sqlite3.connect(store)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 3}")
    conn.close()
    health = verify_store(store)
    assert health.schema_version == len(MIGRATIONS) + 3 and any("newer autoretrain" in n for n in health.notes)


def test_a_table_missing_from_its_schema_version_is_damage(store: Path) -> None:
    conn = sqlite3.connect(store)
    conn.execute("DROP TABLE model_activations")
    conn.close()
    assert_refused(store, DAMAGED, "tables missing: model_activations")


@pytest.mark.parametrize(("make", "kind"), [
    (lambda: sqlite3.DatabaseError("database disk image is malformed"), DAMAGED),
    (lambda: sqlite3.DatabaseError("file is not a database"), DAMAGED),
    (lambda: sqlite3.OperationalError("attempt to write a readonly database"), READ_ONLY),
    (lambda: sqlite3.OperationalError("unable to open database file"), UNREADABLE),
    (lambda: sqlite3.OperationalError("database is locked"), BUSY),
    (lambda: sqlite3.OperationalError("database or disk is full"), FULL),
])
def test_every_sqlite_failure_is_one_line_with_what_to_do(make: Callable[[], sqlite3.DatabaseError], kind: str) -> None:
    problem = classify(make())
    assert problem.kind == kind
    line = describe_failure("/var/lib/autoretrain/autoretrain.db", make())
    assert line.startswith("store /var/lib/autoretrain/autoretrain.db ") and "\n" not in line and "; " in line


def test_the_result_code_decides_where_sqlite_gives_one(store: Path) -> None:
    overwrite(store, 0, 100)
    with pytest.raises(sqlite3.DatabaseError) as raised:
        sqlite3.connect(store).execute("SELECT 1 FROM candles").fetchall()
    assert raised.value.sqlite_errorname == "SQLITE_NOTADB" and classify(raised.value).kind == DAMAGED
    assert set(TABLES) >= set(inspect_store(store).tables)


def test_a_checkpoint_cut_short_by_a_full_disk_is_not_truncation(tmp_path: Path) -> None:
    """A checkpoint writes page 1 (the new page count) first; a full disk stops it before the pages past the end
    of the file, which stay in the WAL: SQLite reads them there, so the store is whole, not truncated."""
    path = tmp_path / "autoretrain.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (x BLOB)")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.executemany("INSERT INTO t VALUES (?)", [(os.urandom(3000),) for _ in range(20)])
    size = page_size(path)
    wal = (path.with_name(path.name + "-wal")).read_bytes()
    frames = [wal[32 + i * (24 + size):32 + (i + 1) * (24 + size)] for i in range((len(wal) - 32) // (24 + size))]
    page_one = [frame[24:] for frame in frames if int.from_bytes(frame[:4], "big") == 1][-1]
    with open(path, "r+b") as handle:  # what the cut-short checkpoint wrote: page 1 alone
        handle.write(page_one)
    assert int.from_bytes(page_one[28:32], "big") * size > path.stat().st_size
    health = inspect_store(path)
    assert health.problem is None and health.integrity == ["ok"], health
    conn.close()  # its checkpoint completes the file
    assert inspect_store(path).healthy


def test_a_short_file_whose_pages_no_wal_holds_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "autoretrain.db"
    build_store(path, candles=1500)
    path.with_name(path.name + "-wal").write_bytes(b"")
    truncate_candles(path)
    assert inspect_store(path).problem.kind == DAMAGED
