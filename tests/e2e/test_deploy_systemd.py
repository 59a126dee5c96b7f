"""README's "Run under systemd", verbatim, under a real systemd (../shared/tools/systemd-box), then faults.

The blocks marked `<!-- deploy: NAME -->` in README.md are extracted and run as written (`sudo` is a no-op
inside the box, where the test is root; `<this repository>` is this checkout's file:// URL), so README and this test
cannot drift apart. Where README tells the operator to edit the configuration, the test writes the
simulated market into it: no exchange is reachable here. Then, as an operator of group autoretrain:
status, journal by priority and by process, SIGSTOP of each child (replaced by the supervisor, the
service never restarted, no candle or signal lost), SIGSTOP of the supervisor (systemd's watchdog
restarts the service), a clean stop, upgrade in place and uninstall.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.data import ROOT
from tests.support.memory_cgroup import MemoryCgroup
from tests.support.systemd_box import Box

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
OPERATOR = "alice"
CTL = "/opt/autoretrain/.venv/bin/autoretrainctl --config /etc/autoretrain/config.yaml"
PYTHON = "/opt/autoretrain/.venv/bin/python"
DB = "/var/lib/autoretrain/autoretrain.db"
#: the pip settings of this machine (a local torch CPU wheel, the package mirrors), passed into the box
PIP_ENV = {name: value for name, value in os.environ.items() if name.startswith("PIP_")}
#: what the operator writes into /etc/autoretrain/config.yaml here: the simulated market, fast
SIMULATED = {"market": {"source": "simulated", "symbols": ["BTC/USDT"], "timeframe": "1h", "backfill_days": 60,
                        "simulated": {"seed": 7, "speed": 3600, "history_candles": 1000}},
             "training": {"epochs": 3, "days": 25, "min_candles": 400},
             # an evaluation window that 25 days of candles can hold beside the training samples
             "promotion": {"eval_candles": 100, "min_eval_samples": 20},
             "heartbeat_interval": 2,
             "supervisor": {"child_timeout": 10}}


def readme_block(name: str) -> str:
    """The bash block after `<!-- deploy: NAME -->` in README.md."""
    found = re.search(rf"<!-- deploy: {name} -->\n```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert found, f"README.md has no deploy block {name!r}"
    return found.group(1)


def as_script(block: str) -> str:
    """The block as a script the box runs as root: `sudo` a no-op, this checkout as the repository.

    The checkout is named by a file:// URL, as a remote would be: a plain path makes git hardlink its
    objects, which fails on the box's overlay when the checkout is itself a clone sharing them by hardlink
    (git: "hardlink different from source"), as CI's is."""
    return "sudo() { \"$@\"; }\n" + block.replace("<this repository>", ROOT.as_uri())


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    machine = Box(tmp_path / "box")
    try:
        yield machine.boot("--host-net")
    finally:
        machine.halt()


def status(box: Box) -> dict:
    return json.loads(box.sh(f"{CTL} status --json", user=OPERATOR).stdout)


def children(box: Box) -> dict[str, dict]:
    return {p["name"]: p for p in status(box)["processes"]}


def store_counts(box: Box) -> tuple[int, int, int]:
    """(candles, gaps between consecutive candles, closed candles since the first signal without a signal)."""
    script = (f"{PYTHON} -c \"import sqlite3, json; db = sqlite3.connect('file:{DB}?mode=ro', uri=True); "
              "q = lambda s: db.execute(s).fetchone()[0]; "
              "print(json.dumps([q('SELECT COUNT(*) FROM candles'), "
              "q('SELECT COUNT(*) FROM (SELECT ts - LAG(ts) OVER (ORDER BY ts) AS step FROM candles) WHERE step != 3600000'), "
              "q('SELECT COUNT(*) FROM candles c WHERE c.ts > (SELECT MIN(candle_ts) FROM signals) AND c.ts <= "
              "(SELECT MAX(candle_ts) FROM signals) AND NOT EXISTS (SELECT 1 FROM signals g WHERE g.candle_ts = c.ts)')]))\"")
    return tuple(json.loads(box.sh(script).stdout))  # type: ignore[return-value]


def journal(box: Box, *options: str) -> str:
    return box.sh("journalctl --no-pager -u autoretrain " + " ".join(options), user=OPERATOR).stdout


def test_readme_deploy_works_verbatim_and_faults_are_survived(box: Box) -> None:
    # the install block, as written; the operator exists, and edits the config before the service starts
    box.sh(f"useradd -m -s /bin/bash {OPERATOR}")
    install = as_script(readme_block("install"))
    edit = ("cat > /etc/autoretrain/config.yaml <<'EOF'\n"
            + yaml.safe_dump({**yaml.safe_load((ROOT / "deploy" / "config.yaml").read_text()), **SIMULATED})
            + "EOF\n")
    assert "systemctl enable --now autoretrain" in install
    install = install.replace("sudo systemctl daemon-reload && sudo systemctl enable", edit + "sudo systemctl daemon-reload"
                              " && sudo systemctl enable")
    box.sh(install, env={**PIP_ENV, "USER": OPERATOR}, timeout=900)

    # active means READY=1 was reached (Type=notify); STATUS= is the supervisor's summary
    assert box.sh("systemctl is-active autoretrain").stdout.strip() == "active"
    shown = box.sh("systemctl show -p StatusText -p NRestarts -p User autoretrain").stdout
    assert "User=autoretrain" in shown and "NRestarts=0" in shown and re.search(r"StatusText=\d/3 processes ready", shown)
    assert box.sh("stat -c '%U:%G %a' /etc/autoretrain /etc/autoretrain/config.yaml").stdout.split("\n")[:2] == \
        ["root:autoretrain 750", "root:autoretrain 640"]

    box.wait_for("journalctl -u autoretrain -t autoretrain-trainer -q | grep -q .", 120, "the trainer's first records")

    # the operate block, line by line, as the operator: each does what its comment says
    lines = [line.split("  #")[0].strip() for line in readme_block("operate").splitlines()]
    lines = [line for line in lines if line and not line.endswith(" -f")]  # -f follows forever
    # an alias takes effect from the next line on
    prelude = "shopt -s expand_aliases\n" + next(line for line in lines if line.startswith("alias ")) + "\n"
    outputs = {}
    for line in lines:
        if line.startswith("alias "):
            continue
        done = box.sh(prelude + line, user=OPERATOR, check=False)
        outputs[line] = done
    by = {key: next(done for line, done in outputs.items() if key in line) for key in
          ("is-active", "status", "-p warning", "-t autoretrain-trainer", "--grep", "models", "rollback")}
    assert by["is-active"].stdout.strip() == "active"
    assert by["status"].returncode == 0 and "BTC/USDT 1h: price" in by["status"].stdout and "PROCESS" in by["status"].stdout
    assert by["-p warning"].returncode == 0 and "Heartbeat" not in by["-p warning"].stdout
    assert by["-t autoretrain-trainer"].returncode == 0 and "autoretrain-trainer[" in by["-t autoretrain-trainer"].stdout
    assert "autoretrain-ingest[" not in by["-t autoretrain-trainer"].stdout
    assert by["--grep"].returncode in (0, 1)  # 1: nothing matched yet
    assert by["models"].returncode == 0, by["models"].stderr
    assert by["rollback"].returncode != 0 and by["rollback"].stderr.count("\n") == 1  # one line: nothing to roll back

    # the service's metrics and dashboard on their default loopback ports, inside the unit's sandbox, served
    # from the installed package (not a checkout): the operator reads them as a Prometheus scrape or a browser would
    fetch = ("/usr/bin/python3 -c \"import sys, urllib.request; body = urllib.request.urlopen(sys.argv[1], timeout=10)"
             ".read().decode(); print(body[:20000])\" ")
    metrics = box.sh(fetch + "http://127.0.0.1:9477/metrics", user=OPERATOR).stdout
    assert 'autoretrain_up{process="trainer"} 1.0' in metrics and "autoretrain_candles{" in metrics
    page = box.sh(fetch + "http://127.0.0.1:8477/", user=OPERATOR).stdout
    assert "/static/dashboard.js" in page
    assert '"symbols"' in box.sh(fetch + "http://127.0.0.1:8477/api/status", user=OPERATOR).stdout

    # journald: the heartbeat at info from the supervisor's identifier, every process named, priorities
    box.wait_for("journalctl -u autoretrain -t autoretrain-supervisor --grep 'Heartbeat \\| BTC/USDT' -q", 60,
                 "a heartbeat in the journal")
    records = [json.loads(line) for line in journal(box, "-o json").splitlines() if line.startswith("{")]
    identifiers = {r.get("SYSLOG_IDENTIFIER") for r in records}
    assert {"autoretrain-supervisor", "autoretrain-ingest", "autoretrain-inference", "autoretrain-trainer"} <= identifiers
    heartbeats = [r for r in records if "Heartbeat | BTC/USDT" in str(r.get("MESSAGE"))]
    assert heartbeats and all(r["PRIORITY"] == "6" and r["AUTORETRAIN_PROCESS"] == "supervisor" for r in heartbeats)
    assert not [r for r in records if str(r.get("MESSAGE", "")).startswith("Traceback")]

    # SIGSTOP of each child in turn: the supervisor replaces it; systemd never restarts the service
    candles_before = store_counts(box)[0]
    for name in ("ingest", "inference", "trainer"):
        stopped = children(box)[name]
        box.sh(f"kill -STOP {stopped['pid']}")
        box.wait_for(f"{CTL} status --json | {PYTHON} -c \"import json, sys; p = {{c['name']: c for c in "
                     f"json.load(sys.stdin)['processes']}}['{name}']; sys.exit(0 if p['pid'] not in (None, "
                     f"{stopped['pid']}) and p['ready'] else 1)\"", 90, f"{name} replaced after SIGSTOP")
        assert f"{name} (pid {stopped['pid']}) is hung" in journal(box, "-p warning")
    assert "NRestarts=0" in box.sh("systemctl show -p NRestarts autoretrain").stdout
    box.wait_for(f"test $({PYTHON} -c \"import sqlite3; print(sqlite3.connect('file:{DB}?mode=ro', uri=True)"
                 f".execute('SELECT COUNT(*) FROM candles').fetchone()[0])\") -gt {candles_before + 20}", 60,
                 "candles after the replacements")
    candles, gaps, unsignalled = store_counts(box)
    assert candles > candles_before and gaps == 0 and unsignalled == 0

    # the trainer OOM-killed by the kernel in the middle of a job. The box's cgroup tree has no memory controller,
    # so a MemoryMax= drop-in would not be enforced here: the limit (64 MiB more than the idle trainer holds)
    # is a memory cgroup on this machine that the trainer is moved into. The supervisor restarts the trainer
    # and fails the job; systemd never restarts the service; inference is not interrupted.
    if MemoryCgroup.unavailable() is None:
        before = children(box)
        exits_before = journal(box, "-p err").count("trainer exited with signal 9; restarting in")
        group = MemoryCgroup.create(64 * 2**20)
        try:
            group.add(box.host_pid(before["trainer"]["pid"]))
            deadline, run = time.monotonic() + 240, None
            while group.oom_kills() == 0 and time.monotonic() < deadline:
                # a job refused at once (too few candles unseen by the champion) allocates too little: ask again
                done = box.sh(f"{CTL} retrain BTC/USDT --wait --timeout 180 --json", user=OPERATOR, check=False,
                              timeout=200)
                run = json.loads(done.stdout)
            assert group.oom_kills() >= 1, f"no OOM kill in 240 s of retrains: {run}"
        finally:
            group.remove()
        assert done.returncode == 1 and run is not None  # the CLI: a failed retrain is exit 1
        assert run["status"] == "failed" and run["detail"]["error"].startswith(
            f"interrupted: the trainer (pid {before['trainer']['pid']}) was killed by signal 9"), run
        box.wait_for(f"{CTL} status --json | {PYTHON} -c \"import json, sys; p = {{c['name']: c for c in "
                     "json.load(sys.stdin)['processes']}['trainer']; sys.exit(0 if p['ready'] else 1)\"", 60,
                     "a new trainer")
        after = children(box)
        assert after["inference"]["pid"] == before["inference"]["pid"]
        assert after["trainer"]["restarts"] == before["trainer"]["restarts"] + 1
        assert "NRestarts=0" in box.sh("systemctl show -p NRestarts autoretrain").stdout
        assert journal(box, "-p err").count("trainer exited with signal 9; restarting in") == exits_before + 1
        assert f"retrain run {run['id']} for BTC/USDT was interrupted" in journal(box, "-p warning")

    # SIGSTOP of the supervisor: only systemd's watchdog can act (WatchdogSec shortened by a drop-in)
    box.sh("mkdir -p /etc/systemd/system/autoretrain.service.d && printf '[Service]\\nWatchdogSec=5\\n'"
           " > /etc/systemd/system/autoretrain.service.d/watchdog.conf && systemctl daemon-reload"
           " && systemctl restart autoretrain")
    main_pid = box.sh("systemctl show -p MainPID --value autoretrain").stdout.strip()
    box.sh(f"kill -STOP {main_pid}")
    box.wait_for("test \"$(systemctl show -p NRestarts --value autoretrain)\" -ge 1 && systemctl is-active -q autoretrain",
                 120, "the watchdog restarting the service")
    assert "Watchdog timeout" in box.sh("journalctl --no-pager -u autoretrain -b").stdout

    # a clean stop: exit 0, nothing left in the runtime directory
    box.sh("systemctl stop autoretrain")
    shown = box.sh("systemctl show -p ActiveState -p ExecMainStatus autoretrain").stdout
    assert "ActiveState=inactive" in shown and "ExecMainStatus=0" in shown
    assert box.sh("test ! -e /run/autoretrain || test -z \"$(ls -A /run/autoretrain)\"", check=False).returncode == 0

    # upgrade in place keeps the store; uninstall removes the unit, the code and the user
    box.sh("systemctl start autoretrain")
    box.sh(as_script(readme_block("upgrade")), env=PIP_ENV, timeout=600)
    assert box.sh("systemctl is-active autoretrain").stdout.strip() == "active"
    assert store_counts(box)[0] >= candles
    box.sh(as_script(readme_block("uninstall")))
    assert box.sh("systemctl cat autoretrain", check=False).returncode != 0
    assert box.sh("getent passwd autoretrain", check=False).returncode != 0
    assert box.sh("test -e /opt/autoretrain -o -e /var/lib/autoretrain", check=False).returncode != 0
