"""A real systemd (PID 1, journald, the unit's sandbox) in throwaway namespaces: ../shared/tools/systemd-box.

The box needs root; where it cannot run it exits 77 with the reason, and the test is skipped with it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.data import ROOT

SYSTEMD_BOX = ROOT.parent / "shared" / "tools" / "systemd-box"
SKIP = 77


class Box:
    """One booted box; `halt()` always (a fixture's teardown)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.booted = False

    def boot(self, *options: str) -> Box:
        if not SYSTEMD_BOX.is_file():
            pytest.skip(f"systemd-box not available at {SYSTEMD_BOX}")
        done = subprocess.run([str(SYSTEMD_BOX), "boot", str(self.directory), *options], capture_output=True,
                              text=True, timeout=120)
        if done.returncode == SKIP:
            pytest.skip(done.stderr.strip() or "systemd-box cannot run here")
        assert done.returncode == 0, done.stderr
        self.booted = True
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # basic.target reached: systemctl answers "running" (or degraded)
            state = self.sh("systemctl is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return self
            time.sleep(0.5)
        raise AssertionError(f"the box did not finish booting (state {state!r})")

    def sh(self, script: str, *, check: bool = True, timeout: float = 120, user: str | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a bash script inside (as root, or as `user` through su), its output captured."""
        exports = "".join(f"export {name}={shlex.quote(value)}; " for name, value in (env or {}).items())
        body = f"set -euo pipefail; {exports}{script}"
        command = ["bash", "-c", body] if user is None else ["su", "-", user, "-s", "/bin/bash", "-c", body]
        done = subprocess.run([str(SYSTEMD_BOX), "exec", str(self.directory), *command], capture_output=True,
                              text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, f"{script}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def wait_for(self, script: str, timeout: float, what: str) -> str:
        """Run `script` until it exits 0; its output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.sh(script, check=False)
            if done.returncode == 0:
                return done.stdout
            time.sleep(1)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def host_pid(self, pid: int) -> int:
        """The pid, on this machine, of the box's process `pid` (a memory cgroup on the host takes host pids)."""
        leader = (self.directory / "pid").read_text().strip()
        namespace = os.readlink(f"/proc/{leader}/ns/pid")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "ns" / "pid") != namespace:
                    continue
                nspid = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("NSpid:"))
            except (OSError, StopIteration):
                continue
            if int(nspid.split()[-1]) == pid:
                return int(entry.name)
        raise AssertionError(f"no process {pid} in the box")

    def halt(self) -> None:
        if self.booted or self.directory.exists():
            subprocess.run([str(SYSTEMD_BOX), "halt", str(self.directory)], capture_output=True, timeout=120)
            self.booted = False
