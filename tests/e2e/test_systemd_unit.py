"""The systemd unit: verified by systemd-analyze, sandboxed, and wired to the daemon's contract."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.data import ROOT

UNIT = ROOT / "deploy" / "systemd" / "autoretrain.service"
needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def unit_with_existing_binary(tmp_path: Path) -> Path:
    """systemd-analyze verify checks that ExecStart exists; point it at a real executable."""
    copy = tmp_path / "autoretrain.service"
    copy.write_text(UNIT.read_text().replace("/opt/autoretrain/.venv/bin/autoretraind", "/bin/true"))
    return copy


def service_section() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = None
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


def test_unit_states_the_daemon_contract() -> None:
    service = service_section()
    assert service["Type"] == ["notify"]
    # a configuration error (78) and an unusable store or a second daemon (75) are not retried
    assert {"75", "78"} <= set(" ".join(service["RestartPreventExitStatus"]).split())
    assert service["StateDirectory"] == ["autoretrain"] and service["RuntimeDirectory"] == ["autoretrain"]
    assert service["RuntimeDirectoryMode"] == ["0750"]
    assert "autoretraind --config /etc/autoretrain/config.yaml" in service["ExecStart"][0]
    assert service["KillMode"] == ["mixed"] and int(service["TimeoutStopSec"][0]) > 20  # > supervisor.stop_timeout
    assert "WatchdogSec" in service
    # the trainer nices itself: nice/setpriority (@resources) must not be filtered out
    assert not any("@resources" in rule for rule in service["SystemCallFilter"] if rule.startswith("~"))


@needs_analyze
def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", "--recursive-errors=no", str(unit_with_existing_binary(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@needs_analyze
def test_sandbox_exposure_is_low(tmp_path: Path) -> None:
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit_with_existing_binary(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for autoretrain.service: ([0-9.]+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0
