"""Running `autoretrainctl` as a real subprocess, with none of the environment that changes where it looks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.data import ROOT

#: environment that changes where the daemon looks; tests set these explicitly when they mean to
DAEMON_ENV = {"AUTORETRAIN_CONFIG", "STATE_DIRECTORY", "RUNTIME_DIRECTORY", "JOURNAL_STREAM", "NOTIFY_SOCKET"}


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in DAEMON_ENV}, **extra}


def run_ctl(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `autoretrainctl` (python -m autoretrain.daemon.cli.main) and capture its output."""
    return subprocess.run([sys.executable, "-m", "autoretrain.daemon.cli.main", *args], capture_output=True,
                          text=True, env=clean_env(**(env or {})), cwd=cwd or ROOT, timeout=timeout)
