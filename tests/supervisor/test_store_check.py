"""autoretraind on a damaged, unreadable or read-only store: one line at error priority, exit 75, no child started;
a child whose store fails under it: one line, exit 75, and the supervisor gives up instead of restarting it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from autoretrain.daemon.foundation.config import load_config
from autoretrain.daemon.foundation.config_schema import SupervisorConfig
from autoretrain.daemon.processes.child import write_resolved_config
from autoretrain.daemon.store.health import inspect_store
from autoretrain.daemon.supervisor.children import Children, GiveUp
from autoretrain.ipc.ring import CandleRing, ring_path
from tests.store.damage import (
    build_store,
    middle_candle_leaf,
    overwrite,
    page_size,
    read_only,
    truncate_candles,
    unprivileged,
)
from tests.support.cli import run_ctl
from tests.support.config import simulated_config
from tests.support.daemon import Daemon
from tests.support.data import ROOT

EX_TEMPFAIL = 75


def overwrite_middle_page(db: Path) -> None:
    page = middle_candle_leaf(db)
    overwrite(db, (page.number - 1) * page_size(db), page_size(db))


DAMAGE: dict[str, Callable[[Path], object]] = {
    "truncated": truncate_candles,
    "cut to nothing": lambda db: os.truncate(db, 0),
    "garbage header": lambda db: overwrite(db, 0, 100),
    "garbage page one": lambda db: overwrite(db, 100, page_size(db) - 100),
    "garbage middle page": overwrite_middle_page,
}


def journal_daemon(tmp_path: Path) -> tuple[Daemon, Path]:
    """A daemon whose stderr is 'the journal' (JOURNAL_STREAM names its log file), and its store, built."""
    daemon = Daemon(tmp_path, simulated_config(tmp_path / "state"))
    db = daemon.config.db_path
    db.parent.mkdir(parents=True)
    build_store(db, candles=1200)
    return daemon, db


def start_as_journal(daemon: Daemon) -> Daemon:
    daemon.stderr_path.touch()
    info = daemon.stderr_path.stat()  # start() reopens the same file: the same device and inode
    return daemon.start(JOURNAL_STREAM=f"{info.st_dev}:{info.st_ino}")


def assert_refused_at_error_priority(daemon: Daemon, db: Path, *fragments: str) -> str:
    code = daemon.wait_exit(timeout=60)
    log = daemon.log()
    lines = log.strip().splitlines()
    assert code == EX_TEMPFAIL, log
    assert len(lines) == 1 and "Traceback" not in log, log
    assert lines[0].startswith(f"<3>autoretraind: error: store {db} "), log  # <3>: err in journald
    for fragment in fragments:
        assert fragment in lines[0], log
    assert "started ingest" not in log and daemon.notify.messages == []  # no child, not even READY or STATUS
    return lines[0]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_store_stops_the_daemon_before_any_child(tmp_path: Path, damage: str) -> None:
    daemon, db = journal_daemon(tmp_path)
    DAMAGE[damage](db)
    start_as_journal(daemon)
    assert_refused_at_error_priority(daemon, db, "is damaged", "autoretrainctl store check", "autoretrainctl store recover")


def test_a_read_only_store_stops_the_daemon_before_any_child(tmp_path: Path) -> None:
    daemon, db = journal_daemon(tmp_path)
    with read_only(db):
        start_as_journal(daemon)
        assert_refused_at_error_priority(daemon, db, "is read-only", "readonly database", "mounted read-only")


def test_a_directory_in_place_of_the_store(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, simulated_config(tmp_path / "state"))
    daemon.config.db_path.mkdir(parents=True)
    start_as_journal(daemon)
    assert_refused_at_error_priority(daemon, daemon.config.db_path, "cannot be opened", "not a regular file")


def test_an_unreadable_store_stops_the_daemon(tmp_path: Path) -> None:
    with unprivileged() as (folder, command):
        state = folder / "state"
        state.mkdir()
        build_store(state / "autoretrain.db", candles=300)
        (state / "autoretrain.db").chmod(0)
        if os.geteuid() == 0:
            os.chown(state, 65534, 65534)
        config = folder / "config.yaml"
        config.write_text(yaml.safe_dump(simulated_config(state)))
        config.chmod(0o644)
        env = {k: v for k, v in os.environ.items() if k not in ("AUTORETRAIN_CONFIG", "STATE_DIRECTORY",
                                                                "RUNTIME_DIRECTORY", "JOURNAL_STREAM", "NOTIFY_SOCKET")}
        done = subprocess.run(command([sys.executable, "-m", "autoretrain.daemon.supervisor.main", "--config", str(config)]),
                              capture_output=True, text=True, timeout=60, cwd=folder, env={**env, "PYTHONPATH": str(ROOT)})
        assert done.returncode == EX_TEMPFAIL, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot be opened" in lines[0] and "Permission denied" in lines[0], done.stderr
        assert "started ingest" not in done.stderr


def test_a_healthy_store_starts_the_children_and_recover_refuses_beside_them(tmp_path: Path) -> None:
    """The other side of the tests above: the same store undamaged does start the children (so 'no child started'
    means something), and `store recover` next to the running daemon is refused by its lock."""
    daemon, db = journal_daemon(tmp_path)
    daemon.start()
    try:
        daemon.wait_for(lambda: "started ingest" in daemon.log(), 60, "started ingest")
        refused = run_ctl("--config", str(daemon.config_path), "store", "recover")
        assert refused.returncode == EX_TEMPFAIL
        assert "already running" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
        assert not list(db.parent.glob("*.damaged-*"))
    finally:
        assert daemon.shutdown() == 0


def test_a_child_whose_store_fails_under_it_ends_with_one_line_and_75(tmp_path: Path) -> None:
    """The real ingest process on a store damaged in the middle (the start check would have refused it; here the
    damage comes after): no traceback, exit 75."""
    state = tmp_path / "state"
    db = state / "autoretrain.db"
    state.mkdir()
    build_store(db, candles=1200, exchange="simulated")  # the series ingest reads first
    overwrite_middle_page(db)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(simulated_config(state)))
    config = load_config(config_file, env={})
    config.runtime_dir.mkdir(parents=True, exist_ok=True)
    rings = [CandleRing.create(ring_path(config.runtime_dir, symbol, config.market.timeframe), config.ingest.ring_capacity)
             for symbol in config.market.symbols]  # what the supervisor makes before it starts ingest
    resolved = write_resolved_config(config, config.runtime_dir)
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    try:
        done = subprocess.run([sys.executable, "-m", "autoretrain.daemon.processes.ingest", "--config-json", str(resolved)],
                              capture_output=True, text=True, timeout=120, env={**env, "PYTHONPATH": str(ROOT)})
    finally:
        for ring in rings:
            ring.close()
    assert done.returncode == EX_TEMPFAIL, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if "| ERROR |" in line]
    assert len(errors) == 1 and f"ingest cannot run: store {db} is damaged" in errors[0], done.stderr


def exits_with(code: int) -> Callable[..., subprocess.Popen]:
    """A child process (real) that exits with `code` at once, in place of the module the table would run."""
    def popen(args: list[str], **kwargs: object) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"], **kwargs)
    return popen


def reap_when_exited(children: Children) -> None:
    for child in children.table.values():
        assert child.process is not None
        child.process.wait(timeout=30)
    children.reap()


def test_the_supervisor_gives_up_on_a_child_exiting_75_over_a_damaged_store(tmp_path: Path) -> None:
    db = tmp_path / "autoretrain.db"
    build_store(db, candles=600)
    overwrite(db, 0, 100)
    children = Children(("ingest",), tmp_path / "config.json", SupervisorConfig(), popen=exits_with(EX_TEMPFAIL))
    children.store_problem = lambda: inspect_store(db, count_rows=False).message() or None
    children.spawn(children.table["ingest"])
    with pytest.raises(GiveUp) as gave_up:
        reap_when_exited(children)
    assert gave_up.value.exit_code == EX_TEMPFAIL
    assert str(gave_up.value).startswith("ingest exited with code 75: store ") and "is damaged" in str(gave_up.value)


def test_a_child_exiting_75_over_a_healthy_store_is_restarted(tmp_path: Path) -> None:
    db = tmp_path / "autoretrain.db"
    build_store(db, candles=600)  # a busy store, say: the store itself is fine, so a restart may well help
    children = Children(("ingest",), tmp_path / "config.json", SupervisorConfig(), popen=exits_with(EX_TEMPFAIL))
    children.store_problem = lambda: inspect_store(db, count_rows=False).message() or None
    children.spawn(children.table["ingest"])
    reap_when_exited(children)
    assert children.table["ingest"].restarts == 1 and children.table["ingest"].next_start is not None
