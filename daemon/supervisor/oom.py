"""Whether a child that died by SIGKILL was the kernel's OOM killer's victim, from its memory cgroup.

A SIGKILL alone does not say who sent it: `kill -9`, the supervisor's own hang kill, or the kernel when a
cgroup's memory limit (systemd's `MemoryMax=`) or the machine's memory runs out. The memory cgroup
counts its OOM kills: `oom_kill` in `memory.events` (cgroup v2) or in `memory.oom_control` (cgroup v1).
`OomWatch` finds a child's counter from `/proc/PID/cgroup` while the child lives (a dead process has
no cgroup to read) and remembers its value; a higher value after the child's SIGKILL is the evidence.
Where no memory controller is mounted or readable (a container, a box without one) there is no
evidence either way, and the exit says only "signal 9".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class MemoryMount:
    """A mounted memory hierarchy: v2 (`cgroup2`) or v1 (`cgroup` with the memory controller)."""

    version: int
    root: str  # the hierarchy's path at the mount point (mountinfo's root field)
    mount_point: Path

    @property
    def counter_file(self) -> str:
        return "memory.events" if self.version == 2 else "memory.oom_control"


def memory_mounts(mountinfo: Path = PROC / "self" / "mountinfo") -> list[MemoryMount]:
    """The memory hierarchies this process can read, v2 first (mountinfo(5): root is field 4, the mount
    point field 5, the file system type and super options follow the ' - ' separator)."""
    mounts = []
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, point = _unescape(fields[3]), Path(_unescape(fields[4]))
        if tail[0] == "cgroup2" and "memory" in _read(point / "cgroup.controllers").split():
            mounts.append(MemoryMount(2, root, point))
        elif tail[0] == "cgroup" and "memory" in tail[2].split(","):
            mounts.append(MemoryMount(1, root, point))
    return sorted(set(mounts), key=lambda mount: mount.version, reverse=True)


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    for code in ("040", "011", "012", "134"):
        text = text.replace("\\" + code, chr(int(code, 8)))
    return text


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def oom_kill_count(counter: Path) -> int | None:
    """The `oom_kill` line of a memory.events or memory.oom_control file (None: absent or unreadable)."""
    for line in _read(counter).splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def oom_counter(pid: int, mounts: list[MemoryMount]) -> Path | None:
    """The file that counts OOM kills in process `pid`'s memory cgroup, or None where none can be read."""
    membership = _read(PROC / str(pid) / "cgroup")
    for mount in mounts:
        for line in membership.splitlines():
            _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
            if (mount.version == 2 and controllers == "") or (mount.version == 1 and "memory" in controllers.split(",")):
                relative = os.path.relpath(path, mount.root) if path.startswith(mount.root) else None
                if relative is None or relative.startswith(".."):
                    continue  # outside what this mount shows (another cgroup namespace)
                counter = mount.mount_point / relative / mount.counter_file
                if oom_kill_count(counter) is not None:
                    return counter
    return None


@dataclass
class OomWatch:
    """One child's OOM counter and its value when last looked at (while the child lived)."""

    counter: Path | None = None
    seen: int | None = None

    def look(self, pid: int, mounts: list[MemoryMount]) -> None:
        """Follow the child's cgroup (it may be moved) and take the counter's value now."""
        counter = oom_counter(pid, mounts)
        if counter != self.counter:
            self.counter, self.seen = counter, None
        if counter is not None:
            self.seen = oom_kill_count(counter)

    def evidence(self) -> str | None:
        """After a SIGKILL: the counter's rise, if there was one ('oom_kill 0 -> 1 in PATH')."""
        if self.counter is None or self.seen is None:
            return None
        now = oom_kill_count(self.counter)
        if now is None or now <= self.seen:
            return None
        return f"oom_kill {self.seen} -> {now} in {self.counter}"
