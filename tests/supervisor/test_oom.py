"""OOM evidence: the memory cgroup's oom_kill count read while a child lives, compared after its SIGKILL.

Parsing and the bookkeeping run on scripted /proc and cgroup files; one test makes the kernel's OOM
killer really fire in a memory cgroup with a 64 MiB limit (root with a memory controller, else skipped)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.config_schema import SupervisorConfig
from autoretrain.daemon.supervisor import oom
from autoretrain.daemon.supervisor.children import ChildExit, Children
from autoretrain.daemon.supervisor.oom import MemoryMount, OomWatch, memory_mounts, oom_kill_count
from tests.supervisor.test_children import Clock, FakeProcess, process
from tests.support.memory_cgroup import MemoryCgroup

V2_EVENTS = "low 0\nhigh 0\nmax 3\noom {n}\noom_kill {n}\noom_group_kill 0\n"
V1_CONTROL = "oom_kill_disable 0\nunder_oom 0\noom_kill {n}\n"


def test_memory_mounts_finds_v2_with_the_memory_controller_and_v1_memory(tmp_path: Path) -> None:
    with_memory, without = tmp_path / "unified with", tmp_path / "unified-without"
    for path, controllers in ((with_memory, "cpu io memory pids"), (without, "cpu pids")):
        path.mkdir()
        (path / "cgroup.controllers").write_text(controllers + "\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        f"30 1 0:26 / {str(with_memory).replace(' ', chr(92) + '040')} rw,nosuid shared:4 - cgroup2 cgroup2 rw\n"
        f"31 1 0:27 / {without} rw shared:5 - cgroup2 cgroup2 rw\n"
        f"32 1 0:28 /lxc/box {tmp_path}/memory rw shared:6 - cgroup cgroup rw,memory\n"
        f"33 1 0:29 / {tmp_path}/cpu rw shared:7 - cgroup cgroup rw,cpu,cpuacct\n"
        "34 1 0:30 / /proc rw - proc proc rw\n"
        "garbage\n")
    assert memory_mounts(mountinfo) == [MemoryMount(2, "/", with_memory),
                                        MemoryMount(1, "/lxc/box", tmp_path / "memory")]
    assert memory_mounts(tmp_path / "absent") == []


@pytest.fixture
def proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(oom, "PROC", tmp_path / "proc")
    return tmp_path / "proc"


def member(proc: Path, pid: int, text: str) -> None:
    (proc / str(pid)).mkdir(parents=True, exist_ok=True)
    (proc / str(pid) / "cgroup").write_text(text)


def counter(path: Path, template: str, n: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template.format(n=n))
    return path


def test_a_rise_of_oom_kill_after_the_last_look_is_the_evidence(tmp_path: Path, proc: Path) -> None:
    mounts = [MemoryMount(2, "/", tmp_path / "v2")]
    member(proc, 7, "0::/system.slice/autoretrain.service\n")
    events = counter(tmp_path / "v2/system.slice/autoretrain.service/memory.events", V2_EVENTS, 2)
    watch = OomWatch()
    watch.look(7, mounts)
    assert (watch.counter, watch.seen) == (events, 2)
    assert watch.evidence() is None  # killed, but not by the OOM killer: the count stands
    counter(events, V2_EVENTS, 3)
    assert watch.evidence() == f"oom_kill 2 -> 3 in {events}"


def test_a_child_moved_to_another_cgroup_is_followed_there(tmp_path: Path, proc: Path) -> None:
    mounts = [MemoryMount(1, "/", tmp_path / "memory")]
    member(proc, 8, "4:memory:/a\n3:cpu,cpuacct:/\n0::/\n")
    first = counter(tmp_path / "memory/a/memory.oom_control", V1_CONTROL, 5)
    second = counter(tmp_path / "memory/a/limited/memory.oom_control", V1_CONTROL, 0)
    watch = OomWatch()
    watch.look(8, mounts)
    assert (watch.counter, watch.seen) == (first, 5)
    member(proc, 8, "4:memory:/a/limited\n3:cpu,cpuacct:/\n0::/\n")
    watch.look(8, mounts)
    counter(first, V1_CONTROL, 6)  # another process of the old group: not this child's evidence
    counter(second, V1_CONTROL, 1)
    assert watch.evidence() == f"oom_kill 0 -> 1 in {second}"


def test_no_evidence_where_nothing_can_be_read(tmp_path: Path, proc: Path) -> None:
    member(proc, 9, "0::/box/inner\n")
    outside = [MemoryMount(2, "/other", tmp_path / "v2")]  # a mount of another part of the hierarchy
    counter(tmp_path / "v2/box/inner/memory.events", V2_EVENTS, 0)
    watch = OomWatch()
    watch.look(9, outside)
    assert watch.counter is None and watch.evidence() is None
    watch.look(9, [MemoryMount(2, "/", tmp_path / "v2")])
    (tmp_path / "v2/box/inner/memory.events").unlink()
    assert watch.evidence() is None  # the counter went away: no evidence, no exception
    watch.look(404, [MemoryMount(2, "/", tmp_path / "v2")])  # no such process
    assert watch.counter is None and oom_kill_count(tmp_path / "nothing") is None


def test_the_supervisor_hears_of_an_oom_killed_child_with_its_last_report(
        tmp_path: Path, proc: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    table = Children(("trainer",), tmp_path / "config.json", SupervisorConfig(), clock=clock, popen=FakeProcess,
                     mounts=[MemoryMount(2, "/", tmp_path / "v2")])
    exits: list[ChildExit] = []
    table.on_exit = exits.append
    FakeProcess.next_pid = 499
    member(proc, 500, "0::/svc\n")
    events = counter(tmp_path / "v2/svc/memory.events", V2_EVENTS, 0)
    table.spawn(table.table["trainer"])
    job = {"run_id": 4, "symbol": "BTC/USDT", "epoch": 2, "epochs": 8}
    table.on_report("trainer", "training", {"training": job}, 500)
    counter(events, V2_EVENTS, 1)
    process(table, "trainer").kill()
    with caplog.at_level(logging.ERROR, logger="autoretrain.supervisor"):
        table.reap()
    [death] = exits
    assert (death.name, death.pid, death.code, death.detail["training"]) == ("trainer", 500, -9, job)
    assert death.cause == f"killed by the kernel's OOM killer (oom_kill 0 -> 1 in {events})"
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.getMessage().startswith(
        "trainer exited with signal 9; restarting in 1.0 s (restart 1); killed by the kernel's OOM killer")


def test_other_deaths_are_named_for_what_is_known() -> None:
    assert "kill -9, or the OOM killer" in ChildExit("trainer", 1, -9, {}, None).cause
    assert ChildExit("trainer", 1, -9, {}, None, hung="no report for 61 s").cause == \
        "killed by the supervisor as hung (no report for 61 s)"
    assert ChildExit("ingest", 1, 1, {}, None).cause == "exited with code 1"
    assert ChildExit("ingest", 1, -signal.SIGSEGV, {}, None).cause == "exited with signal 11"


ALLOCATE = "import sys; sys.stdin.readline(); block = bytearray(512 * 2**20); print('survived', flush=True)"


@pytest.mark.skipif(bool(MemoryCgroup.unavailable()), reason=MemoryCgroup.unavailable() or "")
def test_the_kernels_oom_killer_in_a_real_memory_cgroup_is_recognised() -> None:
    group = MemoryCgroup.create(64 * 2**20)
    child = subprocess.Popen([sys.executable, "-c", ALLOCATE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        group.add(child.pid)
        watch = OomWatch()
        watch.look(child.pid, memory_mounts())
        assert watch.counter is not None and watch.counter.parent == group.path, watch
        assert watch.seen == 0
        out, _ = child.communicate("go\n", timeout=60)
        assert child.returncode == -signal.SIGKILL and "survived" not in out
        assert group.oom_kills() == 1
        assert watch.evidence() == f"oom_kill 0 -> 1 in {watch.counter}"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        group.remove()
