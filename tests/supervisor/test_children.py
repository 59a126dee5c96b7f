"""The child table in-process, on a fake clock with fake processes: backoff, flap detection, give-up, health."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from autoretrain.daemon.foundation.config_schema import SupervisorConfig
from autoretrain.daemon.foundation.errors import EX_CONFIG
from autoretrain.daemon.supervisor.children import PROCESS_MODULES, STALL_LIMIT_S, Children, GiveUp


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeProcess:
    """Stands in for subprocess.Popen: alive until told to exit, or until a signal it obeys."""

    next_pid = 100

    def __init__(self, args: list[str], **_: Any) -> None:
        self.args = args
        FakeProcess.next_pid += 1
        self.pid = FakeProcess.next_pid
        self.returncode: int | None = None
        self.signals: list[int] = []
        self.obeys_term = True

    def poll(self) -> int | None:
        return self.returncode

    def exit(self, code: int) -> None:
        self.returncode = code

    def send_signal(self, number: int) -> None:
        self.signals.append(number)
        if number == signal.SIGTERM and self.obeys_term:
            self.returncode = 0

    def kill(self) -> None:
        self.signals.append(signal.SIGKILL)
        self.returncode = -signal.SIGKILL

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode


POLICY = SupervisorConfig(restart_backoff_initial=1.0, restart_backoff_max=8.0, max_restarts=3, restart_window=60.0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def table(clock: Clock, tmp_path: Path) -> Children:
    return Children(tuple(PROCESS_MODULES), tmp_path / "config.json", POLICY, python="python3", clock=clock,
                    popen=FakeProcess, mounts=[])


def process(table: Children, name: str) -> FakeProcess:
    child = table.table[name]
    assert isinstance(child.process, FakeProcess)
    return child.process


def test_children_are_spawned_by_the_table_of_modules(table: Children) -> None:
    for child in table.table.values():
        table.spawn(child)
    assert [process(table, name).args[:3] for name in PROCESS_MODULES] == [
        ["python3", "-m", module] for module in PROCESS_MODULES.values()]
    assert all(child.state == "starting" and child.pid for child in table.table.values())


def test_a_dead_child_restarts_with_exponential_backoff_capped(table: Children, clock: Clock) -> None:
    ingest = table.table["ingest"]
    table.spawn(ingest)
    delays = []
    for _ in range(3):
        process(table, "ingest").exit(1)
        table.reap()
        delays.append(ingest.next_start - clock.now)
        table.start_due()
        assert ingest.process is None  # not before its time
        clock.now = ingest.next_start
        table.start_due()
        assert ingest.process is not None and ingest.state == "starting"
        clock.now += 5  # up for a few seconds, then it dies again: every exit is within the 60 s window
    assert delays == [1.0, 2.0, 4.0] and ingest.restarts == 3 and ingest.last_exit_code == 1


def test_flapping_past_the_limit_gives_up(table: Children, clock: Clock) -> None:
    trainer = table.table["trainer"]
    table.spawn(trainer)
    for _ in range(POLICY.max_restarts):
        process(table, "trainer").exit(-9)
        table.reap()
        clock.now = trainer.next_start
        table.start_due()
    process(table, "trainer").exit(-9)
    with pytest.raises(GiveUp, match=r"trainer keeps failing \(4 exits in 60 s, last with signal 9\)") as caught:
        table.reap()
    assert caught.value.exit_code == 1


def test_exits_spread_wider_than_the_window_never_give_up(table: Children, clock: Clock) -> None:
    child = table.table["inference"]
    table.spawn(child)
    for _ in range(10):
        process(table, "inference").exit(1)
        table.reap()
        assert len(child.exits) <= 2
        clock.now += 61
        table.start_due()
    assert child.restarts == 10


def test_a_configuration_error_gives_up_at_once_with_78(table: Children) -> None:
    table.spawn(table.table["ingest"])
    process(table, "ingest").exit(EX_CONFIG)
    with pytest.raises(GiveUp, match="configuration error") as caught:
        table.reap()
    assert caught.value.exit_code == EX_CONFIG


def test_reports_from_a_process_that_is_not_ours_are_ignored(table: Children, clock: Clock) -> None:
    child = table.table["ingest"]
    table.spawn(child)
    table.on_report("ingest", "ready", {}, pid=child.pid + 1000)
    table.on_report("nobody", "ready", {}, pid=1)
    assert not child.ready and child.state == "starting"


def test_a_child_whose_ready_report_was_overtaken_is_ready(table: Children, tmp_path: Path) -> None:
    """The trainer reports "ready" and claims a queued job at once: its report thread may send "training" first.
    The sticky `ready` in the report's detail still makes it ready (READY=1 is not held for a whole retrain)."""
    from autoretrain.daemon.processes.child import Child
    from tests.support.config import fast_config

    reporter = Child("trainer", fast_config(tmp_path / "state"))
    reporter.report("ready", force=True)
    reporter.report("training", force=True, training={"run_id": 1})
    assert reporter.state == "training" and reporter.detail["ready"] is True
    child = table.table["trainer"]
    table.spawn(child)
    table.on_report("trainer", reporter.state, dict(reporter.detail), child.pid)
    assert child.ready and child.state == "training"


def test_stop_all_terms_in_order_and_kills_what_does_not_stop(table: Children) -> None:
    for child in table.table.values():
        table.spawn(child)
    stubborn = process(table, "inference")
    stubborn.obeys_term = False
    processes = [process(table, name) for name in PROCESS_MODULES]
    table.stop_all(timeout=0.3)
    assert [p.signals for p in processes] == [[signal.SIGTERM], [signal.SIGTERM, signal.SIGKILL], [signal.SIGTERM]]
    assert all(child.process is None and child.state == "stopped" for child in table.table.values())


def test_a_silent_child_is_killed_after_child_timeout_and_restarted(table: Children, clock: Clock,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    for child in table.table.values():
        table.spawn(child)
        table.on_report(child.name, "ready", {}, child.pid)
    ingest_pid = table.table["ingest"].pid
    clock.now += POLICY.child_timeout - 1
    for name in ("inference", "trainer"):  # these two keep reporting; ingest (SIGSTOPped, say) does not
        table.on_report(name, "ready", {}, table.table[name].pid)
    assert table.kill_hung() == []  # not silent long enough yet
    clock.now += 2
    assert table.kill_hung() == ["ingest"]
    assert f"ingest (pid {ingest_pid}) is hung: no report for {POLICY.child_timeout + 1:.0f} s (supervisor.child_timeout" \
        in caplog.text
    table.reap()
    assert table.table["ingest"].restarts == 1 and table.table["inference"].alive and table.table["trainer"].alive
    clock.now += POLICY.restart_backoff_initial
    table.start_due()
    assert table.table["ingest"].alive and table.table["ingest"].pid != ingest_pid


def test_a_child_whose_loop_stalls_is_killed_although_its_reporter_still_reports(table: Children) -> None:
    child = table.table["trainer"]
    table.spawn(child)
    table.on_report("trainer", "training", {}, child.pid, stalled_s=STALL_LIMIT_S["trainer"] - 1)
    assert table.kill_hung() == []
    table.on_report("trainer", "training", {}, child.pid, stalled_s=STALL_LIMIT_S["trainer"] + 1)
    assert table.kill_hung() == ["trainer"]
    assert process_signals(child) == [signal.SIGKILL]


def process_signals(child: Any) -> list[int]:
    return child.process.signals
