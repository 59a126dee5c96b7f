"""The console scripts' first step: a missing or broken dependency is one line at error priority, exit 72."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoretrain.daemon.cli.entry import EX_OSFILE, missing_dependencies


def run_entry(tmp_path: Path, entry: str, hide: str, *args: str) -> tuple[int, str]:
    """Run an entry point with module `hide` made unimportable; stderr is a file named by JOURNAL_STREAM,
    as systemd sets it, so the line must carry journald's `<3>` prefix."""
    stderr_path = tmp_path / "stderr"
    code = (f"import sys; sys.modules[{hide!r}] = None; sys.argv = ['x', *{list(args)!r}]; "
            f"from autoretrain.daemon.cli.entry import {entry}; sys.exit({entry}())")
    with stderr_path.open("w") as stderr:
        info = os.fstat(stderr.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        done = subprocess.run([sys.executable, "-c", code], stderr=stderr, stdout=subprocess.DEVNULL, env=env,
                              timeout=120)
    return done.returncode, stderr_path.read_text()


@pytest.mark.parametrize(("entry", "hide"), [("autoretraind", "zmq"), ("autoretrainctl", "yaml"),
                                             ("autoretraind", "onnxruntime")])
def test_a_missing_dependency_is_one_error_line_and_exit_72(tmp_path: Path, entry: str, hide: str) -> None:
    code, stderr = run_entry(tmp_path, entry, hide, "--help")
    assert code == EX_OSFILE, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.startswith(f"<3>{entry}: error: a Python dependency is missing or broken: ")
    assert hide in stderr and "bin/pip install" in stderr


def test_the_check_finds_what_is_installed_and_names_what_is_not() -> None:
    assert missing_dependencies() == []
    assert missing_dependencies(["numpy", "no_such_module_autoretrain"]) == ["no_such_module_autoretrain"]
