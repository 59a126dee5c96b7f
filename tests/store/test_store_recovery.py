"""recover_store on real damaged files: every row on an intact page is kept, nothing is invented, the damaged
store is kept byte for byte beside the new one, and what was lost is counted."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.errors import NoInputError
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.store.health import inspect_store
from autoretrain.daemon.store.recovery import recover_store
from tests.store.damage import (
    TABLES,
    build_store,
    candle_rows_on,
    is_one_run,
    middle_candle_leaf,
    overwrite,
    page_size,
    pages,
    rows,
    truncate_candles,
)
from tests.support.market_script import EX, SYM, TF, rising


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, dict[str, set[tuple]]]:
    path = tmp_path / "autoretrain.db"
    return path, build_store(path)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recovered(path: Path) -> dict[str, set[tuple]]:
    assert inspect_store(path).healthy  # the new store is whole, with the project's schema
    return rows(path)


def test_garbage_in_a_middle_page_loses_that_page_and_nothing_else(store: tuple[Path, dict[str, set[tuple]]]) -> None:
    path, before = store
    page = middle_candle_leaf(path)
    overwrite(path, (page.number - 1) * page_size(path), page_size(path))
    damaged = digest(path)
    result = recover_store(path)

    after = recovered(path)
    for table in TABLES:
        assert after[table] <= before[table], table  # nothing invented, every value as it was
        if table != "candles":
            assert after[table] == before[table], table
    lost = before["candles"] - after["candles"]
    assert len(lost) == page.cells and is_one_run(lost, after["candles"])  # exactly the rows of the damaged page
    kept = Path(result.kept_as)
    assert kept.name.startswith("autoretrain.db.damaged-") and digest(kept) == damaged  # kept, untouched
    candles = next(t for t in result.tables if t.name == "candles")
    assert candles.recovered == len(after["candles"]) and candles.damaged_regions == 1 and candles.rejected == 0
    btc = next(s for s in result.candle_series if s["symbol"] == SYM)
    assert btc["holes"] == 1 and btc["missing"] == page.cells  # what `download` can refill


def test_a_truncated_store_keeps_every_candle_on_the_pages_that_are_left(store: tuple[Path, dict[str, set[tuple]]]) -> None:
    path, before = store
    layout = pages(path)
    keep = truncate_candles(path)
    result = recover_store(path)

    after = recovered(path)
    for table in TABLES:
        assert after[table] <= before[table], table
        if table != "candles":
            assert after[table] == before[table], table  # all their pages lie before the cut
    assert len(after["candles"]) == candle_rows_on(layout, keep)  # read off the leaves the B-tree no longer reaches
    candles = next(t for t in result.tables if t.name == "candles")
    assert candles.before is None and candles.found_on_pages > 0 and candles.lost is None


@pytest.mark.parametrize("damage", ["header", "page one"])
def test_an_unreadable_first_page_is_rebuilt_and_every_row_comes_back(store: tuple[Path, dict[str, set[tuple]]],
                                                                     damage: str) -> None:
    path, before = store
    start, length = (0, 100) if damage == "header" else (100, page_size(path) - 100)
    overwrite(path, start, length)
    result = recover_store(path)
    assert result.schema_page_rebuilt
    assert recovered(path) == before
    assert all(table.lost == 0 for table in result.tables)
    assert not list(path.parent.glob("*.scratch*")) and not list(path.parent.glob("*.recovering*"))


def test_rows_still_in_the_wal_are_recovered_and_the_wal_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "autoretrain.db"
    build_store(path, candles=600)
    writer = Database(path, autocheckpoint=False)  # like ingest: commits stay in the WAL until a checkpoint
    writer.candles.upsert(EX, SYM, TF, rising(600, 50))
    snapshot = tmp_path / "crash"
    snapshot.mkdir()
    for name in ("autoretrain.db", "autoretrain.db-wal"):  # the files as a power cut leaves them
        shutil.copyfile(tmp_path / name, snapshot / name)
    writer.close()
    crashed = snapshot / "autoretrain.db"
    wal = digest(snapshot / "autoretrain.db-wal")
    result = recover_store(crashed)
    assert next(t for t in result.tables if t.name == "candles").recovered == 1200 + 50
    assert digest(Path(result.kept_as + "-wal")) == wal


def test_a_healthy_store_comes_through_whole(store: tuple[Path, dict[str, set[tuple]]]) -> None:
    path, before = store
    result = recover_store(path)
    assert recovered(path) == before and all(t.lost == 0 and t.damaged_regions == 0 for t in result.tables)


def test_a_child_row_whose_parent_was_lost_is_refused(store: tuple[Path, dict[str, set[tuple]]]) -> None:
    path, before = store
    series_page = next(p for p in pages(path) if p.table == "series")
    overwrite(path, (series_page.number - 1) * page_size(path), page_size(path))  # both series rows gone
    result = recover_store(path)
    by_name = {t.name: t for t in result.tables}
    assert by_name["series"].recovered == 0
    assert by_name["candles"].recovered == 0 and by_name["candles"].rejected == len(before["candles"])
    assert recovered(path)["signals"] == before["signals"]  # other tables do not depend on series


def test_nothing_readable_gives_an_empty_store_with_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "autoretrain.db"
    path.write_bytes(b"\x00" * 50)
    result = recover_store(path)
    assert all(t.recovered == 0 for t in result.tables) and inspect_store(path).healthy


def test_no_store_no_recovery(tmp_path: Path) -> None:
    with pytest.raises(NoInputError):
        recover_store(tmp_path / "autoretrain.db")


def test_a_second_recovery_keeps_both_damaged_stores(store: tuple[Path, dict[str, set[tuple]]]) -> None:
    path, _ = store
    first = recover_store(path, now=1_700_000_000.0)
    second = recover_store(path, now=1_700_000_000.0)
    assert first.kept_as != second.kept_as and Path(first.kept_as).exists() and Path(second.kept_as).exists()
    conn = sqlite3.connect(first.kept_as)
    assert conn.execute("SELECT COUNT(*) FROM signals").fetchone()[0] == 200
    conn.close()
    assert os.path.getsize(path) > 0
