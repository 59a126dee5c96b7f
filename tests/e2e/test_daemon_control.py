"""A running daemon: readiness, the control socket under fuzz, a second daemon refused, commands, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoretrain.daemon.supervisor.runtime import runtime_files
from autoretrain.ipc.control import socket_mode
from autoretrain.models.registry import Registry
from autoretrain.models.runtime import ModelRejected, ModelRunner
from tests.support.cli import run_ctl
from tests.support.config import simulated_config
from tests.support.daemon import Daemon
from tests.support.models import register_copy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp_path = tmp_path_factory.mktemp("control")
    config = simulated_config(tmp_path / "state", market={"simulated": {"seed": 11, "speed": 3600,
                                                                        "history_candles": 1000}},
                              auto_training={"enabled": False})
    running = Daemon(tmp_path, config).start(WATCHDOG_USEC="1000000")
    try:
        running.wait_ready()
        yield running
    finally:
        running.kill_everything()


def test_ready_only_when_every_child_reports_ready(daemon: Daemon) -> None:
    status = daemon.status()
    assert status["daemon"]["ready"] is True
    children = [p for p in status["processes"] if p["name"] != "supervisor"]
    assert {p["name"] for p in children} == {"ingest", "inference", "trainer"}
    assert all(p["ready"] and p["state"] == "ready" for p in children)
    assert any(m.startswith("STATUS=3/3 processes ready") for m in daemon.notify.messages for m in m.split("\n"))
    assert "autoretraind ready: ingest pid" in daemon.log()


def test_watchdog_is_pinged_while_every_child_reports(daemon: Daemon) -> None:
    daemon.wait_for(lambda: sum(m.split("\n").count("WATCHDOG=1") for m in daemon.notify.messages) >= 3, 10,
                    "three WATCHDOG=1 pings (WatchdogSec=1s)")


def test_control_socket_permissions(daemon: Daemon) -> None:
    endpoint = daemon.config.control_endpoint
    assert socket_mode(endpoint) == 0o660
    assert os.stat(daemon.config.runtime_dir).st_mode & 0o777 == 0o750


MALFORMED_CLIENT = """
import json, random, sys
import zmq
endpoint, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
context = zmq.Context()
bodies = [b"", b"{", b"null", b"[]", b'{"command": 5}', b'{"command": "status", "args": "x"}',
          b'{"command": "retrain"}', b'{"command": "retrain", "args": {"symbol": "NOPE/USDT"}}',
          b'{"command": "promote", "args": {"symbol": "BTC/USDT"}}', b'{"command": "run", "args": {"id": "x"}}',
          b'{"command": "run", "args": {"id": 99999}}', b'{"command": "rm -rf /"}', "\u00fc".encode() * 50,
          b"x" * 100_000]
replies = 0
for index in range(300):
    kind = rng.choice([zmq.REQ, zmq.DEALER, zmq.PUSH, zmq.PUB])
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    body = rng.choice(bodies) if index % 3 else bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
    try:
        sock.send_multipart([body] * (1 if kind == zmq.REQ else rng.randint(1, 3)), zmq.NOBLOCK)
        if kind == zmq.REQ and sock.poll(200):
            reply = json.loads(sock.recv())
            assert reply["ok"] is False and "\\n" not in reply["error"], reply
            replies += 1
    except zmq.ZMQError:
        pass
    sock.close(0)
context.destroy(linger=0)
print(replies)
"""


def test_hundreds_of_malformed_requests_then_status_still_answers(daemon: Daemon) -> None:
    # The hostile client runs in a process of its own: twice in this suite's history the pytest process itself
    # aborted inside libzmq while this loop opened and dropped its 300 sockets (a client-side abort; the daemon
    # never restarted). Such an abort is retried once with another seed and shown; anything else fails.
    for seed in (12, 13):
        client = subprocess.run([sys.executable, "-c", MALFORMED_CLIENT, daemon.config.control_endpoint, str(seed)],
                                capture_output=True, text=True, timeout=240)
        if client.returncode != -signal.SIGABRT:
            break
        print(f"the malformed-request client aborted in libzmq (seed {seed}): {client.stderr[-1500:]}")
    assert client.returncode == 0, client.stderr[-3000:]
    assert int(client.stdout.strip()) > 0  # the REQ sockets got their refusals back
    status = daemon.status()
    assert status["daemon"]["ready"] is True
    assert all(p["restarts"] == 0 for p in status["processes"])


def test_errors_from_the_daemon_are_one_line_for_the_operator(daemon: Daemon) -> None:
    result = run_ctl("--config", str(daemon.config_path), "retrain", "ETH/USDT")
    assert result.returncode == 1
    assert result.stderr.strip() == ("autoretrainctl: error: 'ETH/USDT' is not a configured symbol "
                                     "(configured: BTC/USDT)")


def test_retrain_command_queues_once_and_wait_follows_it(daemon: Daemon) -> None:
    first = run_ctl("--config", str(daemon.config_path), "retrain", "BTC/USDT", "--json")
    assert first.returncode == 0, first.stderr
    queued = json.loads(first.stdout)
    assert queued["symbol"] == "BTC/USDT"
    waited = run_ctl("--config", str(daemon.config_path), "retrain", "BTC/USDT", "--wait", "--json", timeout=240)
    assert waited.returncode == 0, waited.stderr
    run = json.loads(waited.stdout)
    assert run["status"] in ("promoted", "rejected") and run["trigger"] == "manual"
    assert "Starting background retrain for BTC/USDT" in daemon.log()
    models = daemon.request("models", symbol="BTC/USDT")
    assert [v["version"] for v in models["versions"]]


def test_a_broken_promoted_model_is_refused_and_the_served_one_stays(daemon: Daemon) -> None:
    trained = run_ctl("--config", str(daemon.config_path), "train", "BTC/USDT", "--epochs", "2", "--promote",
                      "always", "--json", timeout=300)
    assert trained.returncode == 0, trained.stderr
    good = json.loads(trained.stdout)["version"]
    daemon.wait_for(lambda: daemon.status()["symbols"][0]["model_version"] == good, 30, f"inference serving {good}")

    registry = Registry(daemon.config.models_dir)
    broken = stage_truncated_copy(registry, good)
    registry.promote("BTC/USDT", "1h", broken)  # behind the daemon's back, bypassing verification
    newest = daemon.query("SELECT MAX(candle_ts) FROM signals")[0][0]
    daemon.wait_for(lambda: f"refused model {broken} for BTC/USDT" in daemon.log(), 30, "the refusal")
    daemon.wait_for(lambda: daemon.query("SELECT MAX(candle_ts) FROM signals")[0][0] > newest + 3 * 3_600_000, 30,
                    "signals after the refusal")
    symbol = daemon.status()["symbols"][0]
    assert symbol["promoted_version"] == broken and symbol["model_version"] == good
    served = daemon.query("SELECT DISTINCT model_version FROM signals WHERE candle_ts > ?", newest)
    assert {row[0] for row in served} == {good}
    assert "sha256" in daemon.log().split(f"refused model {broken} for BTC/USDT:")[1].split("\n")[0]
    registry.rollback("BTC/USDT", "1h")  # back to the good one for the tests that follow


def stage_truncated_copy(registry: Registry, version: str) -> str:
    """A new version of BTC/USDT 1h: `version` with its model.onnx cut in half (its sha256 no longer matches)."""
    return register_copy(registry, "BTC/USDT", "1h", registry.version_dir("BTC/USDT", "1h", version), truncated=True)


def test_promote_and_rollback_go_through_a_running_daemon(daemon: Daemon) -> None:

    def usable_and_broken() -> tuple[list[str], list[str]]:
        usable, broken = [], []
        for info in Registry(daemon.config.models_dir).versions("BTC/USDT", "1h"):
            try:
                ModelRunner.load(info.path)
                usable.append(info.version)
            except ModelRejected:
                broken.append(info.version)
        return usable, broken

    while len(usable_and_broken()[0]) < 2:
        trained = run_ctl("--config", str(daemon.config_path), "train", "BTC/USDT", "--epochs", "2", "--promote",
                          "never", timeout=300)
        assert trained.returncode == 0, trained.stderr
    usable, broken = usable_and_broken()
    promoted = daemon.request("models", symbol="BTC/USDT")["promoted"]
    if promoted is None:  # this test alone, on a fresh daemon: serve one version first
        promoted = usable[0]
        first = run_ctl("--config", str(daemon.config_path), "promote", "BTC/USDT", promoted)
        assert first.returncode == 0, first.stderr
        daemon.wait_for(lambda: daemon.status()["symbols"][0]["model_version"] == promoted, 30, f"serving {promoted}")
    if not broken:
        broken = [stage_truncated_copy(Registry(daemon.config.models_dir), usable[0])]
    other = next(v for v in reversed(usable) if v != promoted)
    done = run_ctl("--config", str(daemon.config_path), "promote", "BTC/USDT", other, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"symbol": "BTC/USDT", "timeframe": "1h", "promoted": other,
                                       "previous": promoted, "via": "daemon"}
    daemon.wait_for(lambda: daemon.status()["symbols"][0]["model_version"] == other, 30, f"serving {other}")
    back = run_ctl("--config", str(daemon.config_path), "rollback", "BTC/USDT", "--json")
    assert back.returncode == 0 and json.loads(back.stdout) == {
        "symbol": "BTC/USDT", "timeframe": "1h", "promoted": promoted, "previous": other, "via": "daemon"}
    refused = run_ctl("--config", str(daemon.config_path), "promote", "BTC/USDT", broken[-1])
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1
    assert f"{broken[-1]} refused" in refused.stderr
    assert daemon.request("models", symbol="BTC/USDT")["promoted"] == promoted


def test_a_second_daemon_on_the_same_state_refuses(daemon: Daemon, tmp_path: Path) -> None:
    import yaml

    second = Daemon(tmp_path, yaml.safe_load(daemon.config_path.read_text()), name="second.yaml").start()
    assert second.wait_exit() == 75
    lines = second.log().strip().splitlines()
    assert len(lines) == 1 and "another autoretraind (pid" in lines[0] and "is already running" in lines[0]
    assert daemon.status()["daemon"]["ready"] is True  # the first one is untouched


def test_a_second_daemon_sharing_only_the_runtime_directory_refuses(daemon: Daemon, tmp_path: Path) -> None:
    import yaml

    config = yaml.safe_load(daemon.config_path.read_text())
    config["paths"] = {"state_dir": str(tmp_path / "other-state"), "runtime_dir": str(daemon.config.runtime_dir)}
    live_files = sorted(p for p in runtime_files(daemon.config) if p.exists())
    second = Daemon(tmp_path, config, name="other.yaml").start()
    assert second.wait_exit() == 75
    lines = second.log().strip().splitlines()
    assert len(lines) == 1 and f"already using runtime directory {daemon.config.runtime_dir}" in lines[0]
    assert sorted(p for p in runtime_files(daemon.config) if p.exists()) == live_files  # nothing of the first removed
    assert daemon.status()["daemon"]["ready"] is True


def test_sigterm_stops_everything_and_leaves_nothing_behind(daemon: Daemon) -> None:
    pids = [p["pid"] for p in daemon.status()["processes"]]
    started = time.monotonic()
    code = daemon.stop(timeout=daemon.config.supervisor.stop_timeout + 10)
    assert code == 0 and time.monotonic() - started < daemon.config.supervisor.stop_timeout + 5
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert [p for p in runtime_files(daemon.config) if p.exists()] == []
    assert list(daemon.config.runtime_dir.glob("*")) == []
    assert daemon.notify.seen("STOPPING=1")
    assert "autoretraind stopped" in daemon.log()
    offline = run_ctl("--config", str(daemon.config_path), "status")
    assert offline.returncode == 69
    assert offline.stderr.strip().startswith("autoretrainctl: error: autoretraind is not running")


def test_a_killed_supervisor_takes_its_children_along_and_a_new_daemon_starts(tmp_path: Path) -> None:
    config = simulated_config(tmp_path / "state", auto_training={"enabled": False})
    first = Daemon(tmp_path, config, name="first.yaml").start()
    try:
        first.wait_ready()
        pids = [p["pid"] for p in first.status()["processes"] if p["name"] != "supervisor"]
        assert first.process is not None
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)

        def gone() -> bool:
            for pid in pids:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    continue
                if open(f"/proc/{pid}/stat").read().split()[2] != "Z":
                    return False
            return True

        deadline = time.monotonic() + 20
        while not gone() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert gone(), "children outlived their supervisor"
        # the killed daemon left its socket, rings and lock behind: none of it blocks a new one
        assert Path(first.config.control_endpoint[len("ipc://"):]).exists()
        second = Daemon(tmp_path, config, name="second.yaml").start()
        try:
            second.wait_ready()
            assert second.status()["daemon"]["ready"] is True
        finally:
            assert second.shutdown() == 0
    finally:
        first.kill_everything()
        first.notify.close()


def test_bad_config_exits_78_with_the_key_path(tmp_path: Path) -> None:
    broken = Daemon(tmp_path, {"paths": {"state_dir": str(tmp_path / "s")}, "training": {"epochs": 0}})
    assert broken.start().wait_exit() == 78
    assert broken.log().strip().splitlines() == [
        f"autoretraind: error: {broken.config_path}: training.epochs: Input should be greater than or equal to 1 (got 0)"]


def test_a_child_that_crashes_on_start_makes_the_supervisor_give_up(tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text("timestamp,open,high\n1704067200000,1,1\n")  # exists, so the config is valid; unusable
    config = simulated_config(tmp_path / "state", market={"source": "csv", "csv": {"BTC/USDT": str(broken)}},
                              supervisor={"max_restarts": 3, "restart_backoff_initial": 0.2, "restart_window": 60})
    crashing = Daemon(tmp_path, config).start()
    started = time.monotonic()
    code = crashing.wait_exit()
    log = crashing.log()
    assert code == 1
    assert time.monotonic() - started < 30
    assert log.count("ingest cannot run:") == 4 and "missing column 'low'" in log
    assert "ingest keeps failing (4 exits in 60 s, last with code 65); giving up" in log
    assert not crashing.notify.seen("READY=1")
    assert list(crashing.config.runtime_dir.glob("*")) == []


def test_a_missing_csv_file_is_a_configuration_error(tmp_path: Path) -> None:
    config = simulated_config(tmp_path / "state", market={"source": "csv", "csv": {"BTC/USDT": "gone.csv"}})
    daemon = Daemon(tmp_path, config).start()
    assert daemon.wait_exit() == 78
    assert daemon.log().strip() == (f"autoretraind: error: {daemon.config_path}: market.csv.BTC/USDT: no such file: "
                                    f"{tmp_path / 'gone.csv'}")


def test_a_symbol_the_exchange_does_not_list_stops_the_daemon_with_78(tmp_path: Path) -> None:
    from tests.support.fake_exchange import FakeBinance

    now = 1_747_000_000_000
    with FakeBinance(now_ms=now, history_start_ms=now - 40 * 86_400_000) as fake:
        config = simulated_config(tmp_path / "state", market={
            "source": "ccxt", "symbols": ["BTC/USDT", "NOPE/USDT"], "backfill_days": 2,
            "exchange_params": fake.exchange_params(), "retry": {"attempts": 2, "base_delay": 0.01}})
        daemon = Daemon(tmp_path, config).start()
        code = daemon.wait_exit()
    log = daemon.log()
    assert code == 78, log[-2000:]
    assert "ingest cannot run: market.symbols: binance has no market 'NOPE/USDT'" in log
    assert "(configuration error); not restarting" in log


def test_the_exchange_going_down_does_not_take_the_daemon_down(tmp_path: Path) -> None:
    from tests.support.fake_exchange import FakeBinance, Fault

    now = 1_747_000_000_000 // 3_600_000 * 3_600_000 + 60_000
    with FakeBinance(now_ms=now, history_start_ms=now - 40 * 86_400_000) as fake:
        config = simulated_config(tmp_path / "state", market={
            "source": "ccxt", "backfill_days": 2, "poll_interval": 0.2, "exchange_params": fake.exchange_params(),
            "retry": {"attempts": 2, "base_delay": 0.01, "max_delay": 0.02}}, auto_training={"enabled": False})
        daemon = Daemon(tmp_path, config).start()
        try:
            daemon.wait_ready()
            fake.faults = {n: Fault("status", status=502) for n in range(fake.klines_requests + 1, 10_000)}
            fake.now_ms = now + 3 * 3_600_000  # three candles close while the exchange answers 502
            daemon.wait_for(lambda: daemon.log().count("fetching BTC/USDT failed") >= 2, 30, "failed fetches")
            status = daemon.status()
            assert all(p["restarts"] == 0 for p in status["processes"]) and status["daemon"]["ready"]
            fake.faults = {}
            newest_closed = now // 3_600_000 * 3_600_000 + 2 * 3_600_000  # at the exchange's time now + 3 h
            daemon.wait_for(lambda: daemon.query("SELECT MAX(ts) FROM candles")[0][0] == newest_closed, 30,
                            "the missed candles once the exchange is back")
        finally:
            code = daemon.shutdown()
    assert code == 0
