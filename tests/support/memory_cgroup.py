"""A real memory cgroup with a limit, for tests in which the kernel's OOM killer must really fire.

It is made below this process's own memory cgroup: cgroup v2 where the memory controller is there
(`memory.max`, swap off), else cgroup v1's memory hierarchy (`memory.limit_in_bytes`, with swap
limited alike). Pages a process touched before it was moved stay charged where they were (v1 never
moves charges by default), so the limit bounds what it allocates afterwards. `unavailable()` says why
none can be made here (not root, no memory controller) for pytest.skip.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from autoretrain.daemon.supervisor.oom import oom_kill_count

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_path(controllers: str) -> str | None:
    """This process's cgroup path in the hierarchy whose /proc/self/cgroup line names `controllers`."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if (controllers == "" and names == "") or (controllers and controllers in names.split(",")):
            return path
    return None


def _v2_parent() -> Path | None:
    path = _own_path("")
    controllers = CGROUP_ROOT / "cgroup.controllers"
    if path is None or not controllers.exists() or "memory" not in controllers.read_text().split():
        return None
    return CGROUP_ROOT / path.lstrip("/")


def _v1_parent() -> Path | None:
    path = _own_path("memory")
    mount = CGROUP_ROOT / "memory"
    if path is None or not (mount / "memory.limit_in_bytes").exists():
        return None
    return mount / path.lstrip("/")


class MemoryCgroup:
    def __init__(self, path: Path, version: int) -> None:
        self.path, self.version = path, version

    @classmethod
    def create(cls, limit_bytes: int) -> MemoryCgroup:
        name = f"autoretrain-test-{uuid.uuid4().hex[:8]}"
        v2 = _v2_parent()
        if v2 is not None:
            group = cls(v2 / name, 2)
            group.path.mkdir()
            (group.path / "memory.max").write_text(str(limit_bytes))
            if (group.path / "memory.swap.max").exists():
                (group.path / "memory.swap.max").write_text("0")
            return group
        v1 = _v1_parent()
        if v1 is None:
            raise RuntimeError("no memory cgroup controller")
        group = cls(v1 / name, 1)
        group.path.mkdir()
        (group.path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        if (group.path / "memory.memsw.limit_in_bytes").exists():
            (group.path / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
        return group

    @staticmethod
    def unavailable() -> str | None:
        """Why no memory cgroup can be made here (None: one can)."""
        if os.geteuid() != 0:
            return "a memory cgroup needs root"
        try:
            MemoryCgroup.create(64 * 2**20).remove()
        except (OSError, RuntimeError) as exc:
            return f"cannot make a memory cgroup here: {exc}"
        return None

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def oom_kills(self) -> int:
        counter = self.path / ("memory.events" if self.version == 2 else "memory.oom_control")
        count = oom_kill_count(counter)
        assert count is not None, f"no oom_kill line in {counter}"
        return count

    def remove(self) -> None:
        """Move what is left back to the parent and remove the group."""
        for pid in (self.path / "cgroup.procs").read_text().split():
            try:
                (self.path.parent / "cgroup.procs").write_text(pid)
            except OSError:
                pass  # gone meanwhile
        self.path.rmdir()
