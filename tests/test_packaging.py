"""The wheel installs under one name, autoretrain.*, and lives beside python-daemon (whose import name is `daemon`)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.cli import clean_env
from tests.support.data import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("autoretrain-*.whl")
    return built


def test_the_wheel_holds_only_the_autoretrain_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"autoretrain"}
    for module in ("autoretrain/daemon/supervisor/commands/__init__.py", "autoretrain/ipc/messages.py",
                   "autoretrain/models/runtime.py", "autoretrain/daemon/store/database.py"):
        assert module in names
    assert "autoretrain/__init__.py" not in names  # an implicit namespace package
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "autoretraind = autoretrain.daemon.cli.entry:autoretraind" in entry_points
    assert "autoretrainctl = autoretrain.daemon.cli.entry:autoretrainctl" in entry_points


def test_installed_beside_python_daemon_both_import(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                             str(wheel)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    script = (
        "import daemon, daemon.pidfile, autoretrain.daemon, autoretrain.daemon.cli.main, autoretrain.models.registry\n"
        "print(daemon.__file__)\nprint(autoretrain.daemon.__file__)\n"
        "assert hasattr(daemon, 'DaemonContext')\n"
    )
    # run away from the checkout, with the wheel's copy first on the path
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env=clean_env(PYTHONPATH=str(site)), timeout=120)
    assert result.returncode == 0, result.stderr
    python_daemon, ours = result.stdout.split()
    assert "site-packages" in python_daemon and not python_daemon.startswith(str(ROOT / "daemon"))
    assert ours.startswith(str(site))
    help_text = subprocess.run([sys.executable, "-m", "autoretrain.daemon.cli.main", "--help"], capture_output=True,
                               text=True, cwd=tmp_path, env=clean_env(PYTHONPATH=str(site)), timeout=120)
    assert help_text.returncode == 0 and "autoretrainctl" in help_text.stdout
