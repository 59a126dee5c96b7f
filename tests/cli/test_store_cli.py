"""`autoretrainctl store check|recover`, and any command on a damaged store, as real subprocesses on real files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.config import load_config
from autoretrain.daemon.supervisor.runtime import lock_state_dir
from tests.store.damage import build_store, middle_candle_leaf, overwrite, page_size, pages, read_only, rows
from tests.support.cli import run_ctl

EX_TEMPFAIL = 75


@pytest.fixture
def store(write_config: Callable[..., Path]) -> tuple[Path, Path]:
    """(config file, store file) with a store as the daemon leaves it."""
    config_path = write_config({"market": {"source": "simulated"}})
    db = load_config(config_path, env={}).db_path
    db.parent.mkdir(parents=True, exist_ok=True)
    build_store(db, candles=1200)
    return config_path, db


def damage_page_of(db: Path, table: str) -> None:
    page = middle_candle_leaf(db) if table == "candles" else next(p for p in pages(db) if p.table == table)
    overwrite(db, (page.number - 1) * page_size(db), page_size(db))


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    assert lines[0].startswith("autoretrainctl: error: ")
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_check_of_a_healthy_store(store: tuple[Path, Path]) -> None:
    config, db = store
    done = run_ctl("--config", str(config), "store", "check")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert f"store {db}: healthy" in done.stdout and "integrity: ok" in done.stdout
    assert "schema version: 5" in done.stdout and "disk free" in done.stdout and "0 free" in done.stdout
    assert "candles            2400" in done.stdout and "signals            200" in done.stdout
    report = json.loads(run_ctl("--config", str(config), "store", "check", "--json").stdout)
    assert report["healthy"] is True and report["tables"]["outcomes"] == 200 and report["writable"] is True
    assert report["file_bytes"] == db.stat().st_size and report["problem"] is None


def test_check_of_a_damaged_store_is_75_with_the_report_and_one_line(store: tuple[Path, Path]) -> None:
    config, db = store
    damage_page_of(db, "candles")
    done = run_ctl("--config", str(config), "store", "check", "--full")
    assert done.returncode == EX_TEMPFAIL
    line = one_error_line(done.stderr)
    assert f"store {db} is damaged" in line and "store recover" in line
    assert "NOT USABLE (damaged)" in done.stdout and "candles            unreadable" in done.stdout
    assert "signals            200" in done.stdout  # the rest is still counted


def test_check_of_a_read_only_store(store: tuple[Path, Path]) -> None:
    config, db = store
    with read_only(db):
        done = run_ctl("--config", str(config), "store", "check", "--json")
    assert done.returncode == EX_TEMPFAIL
    assert f"store {db} is read-only" in one_error_line(done.stderr)
    assert json.loads(done.stdout)["writable"] is False


def test_check_without_a_store(write_config: Callable[..., Path]) -> None:
    done = run_ctl("--config", str(write_config()), "store", "check")
    assert done.returncode == 66 and "no store at" in one_error_line(done.stderr)


@pytest.mark.parametrize(("table", "command"), [
    ("candles", ["candles", "BTC/USDT", "--exchange", "binance"]),
    ("signals", ["signals", "BTC/USDT"]),
    ("outcomes", ["performance", "BTC/USDT"]),
])
def test_a_damaged_page_under_any_command_is_75_never_an_internal_error(store: tuple[Path, Path], table: str,
                                                                        command: list[str]) -> None:
    config, db = store
    config.write_text(config.read_text().replace("source: simulated", "source: ccxt"))  # the store's exchange: binance
    damage_page_of(db, table)
    done = run_ctl("--config", str(config), *command)
    assert done.returncode == EX_TEMPFAIL, done.stderr
    line = one_error_line(done.stderr)
    assert f"store {db} is damaged: database disk image is malformed" in line
    assert "autoretrainctl store check" in line and "autoretrainctl store recover" in line


def test_recover_replaces_a_damaged_store_and_keeps_it(store: tuple[Path, Path]) -> None:
    config, db = store
    before = rows(db)
    damage_page_of(db, "candles")
    damaged = digest(db)
    done = run_ctl("--config", str(config), "store", "recover")
    assert done.returncode == 0, done.stderr
    kept = [path for path in db.parent.iterdir() if path.name.startswith("autoretrain.db.damaged-")
            and not path.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1 and digest(kept[0]) == damaged
    assert f"recovered {db}; the damaged store is kept as {kept[0]}" in done.stdout
    assert "1 damaged region skipped" in done.stdout
    assert "autoretrainctl download BTC/USDT --timeframe 1h --since 2024-" in done.stdout
    after = rows(db)
    assert after["signals"] == before["signals"] and after["candles"] < before["candles"]
    assert run_ctl("--config", str(config), "store", "check").returncode == 0


def test_recover_reports_in_json(store: tuple[Path, Path]) -> None:
    config, db = store
    overwrite(db, 0, 100)
    done = run_ctl("--config", str(config), "store", "recover", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["schema_page_rebuilt"] is True
    assert {t["name"]: (t["before"], t["recovered"], t["lost"]) for t in report["tables"]}["candles"] == (2400, 2400, 0)


def test_recover_refuses_while_the_daemon_holds_the_state_directory(store: tuple[Path, Path]) -> None:
    config, db = store
    damage_page_of(db, "candles")
    damaged = digest(db)
    lock = lock_state_dir(db.parent)  # what a running autoretraind holds for its whole life
    try:
        done = run_ctl("--config", str(config), "store", "recover")
    finally:
        lock.close()
    assert done.returncode == EX_TEMPFAIL
    line = one_error_line(done.stderr)
    assert "already running" in line and "stop it before `store recover`" in line
    assert digest(db) == damaged and not list(db.parent.glob("*.damaged-*")) and not list(db.parent.glob("*.recovering"))


def test_recover_without_a_store(write_config: Callable[..., Path]) -> None:
    done = run_ctl("--config", str(write_config()), "store", "recover")
    assert done.returncode == 66 and "nothing to recover" in one_error_line(done.stderr)
