"""The simulated market: deterministic, valid candles, an accelerated clock, regimes that change statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autoretrain.daemon.foundation import candles as candle_ops
from autoretrain.daemon.foundation.config_schema import SimulatedConfig
from autoretrain.daemon.foundation.timeframes import HOUR_MS, parse_iso_ms
from autoretrain.daemon.market.clock import MarketClock
from autoretrain.daemon.market.simulated import SimulatedSource
from tests.support.cli import run_ctl

START = parse_iso_ms("2024-01-01T00:00:00Z")


def all_candles(source: SimulatedSource, symbol: str = "BTC/USDT", timeframe: str = "1h") -> np.ndarray:
    return np.concatenate([b.candles for b in source.fetch(symbol, timeframe, 0)])


def frozen_clock(config: SimulatedConfig, candles_after_start: int) -> MarketClock:
    return MarketClock(origin_ms=START + candles_after_start * HOUR_MS, speed=config.speed, anchor_wall=0.0,
                       wall=lambda: 0.0)


def test_same_seed_same_candles_and_another_seed_differs() -> None:
    config = SimulatedConfig(history_candles=3000)
    a = all_candles(SimulatedSource(config, "1h", clock=frozen_clock(config, 3000)))
    b = all_candles(SimulatedSource(config, "1h", clock=frozen_clock(config, 3000)))
    c = all_candles(SimulatedSource(config.model_copy(update={"seed": 8}), "1h", clock=frozen_clock(config, 3000)))
    assert len(a) == 3000
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a["close"], c["close"])


def test_regime_switches_are_named_for_live_steps_only() -> None:
    config = SimulatedConfig(history_candles=100, regimes=[
        {"kind": "momentum", "candles": 100, "strength": 0.5},
        {"kind": "random_walk", "candles": 50, "strength": 0.5, "volatility": 0.02}])
    source = SimulatedSource(config, "1h", clock=frozen_clock(config, 200))
    at = lambda index: START + index * HOUR_MS  # noqa: E731
    assert source.market_notes("BTC/USDT", "1h", at(98), at(99)) == []
    assert source.market_notes("BTC/USDT", "1h", at(99), at(100)) == [
        "simulated market: BTC/USDT 1h switches from momentum to random_walk (autocorrelation +0.00, "
        "volatility 0.0200) at candle 2024-01-05T04:00:00Z"]
    both = source.market_notes("BTC/USDT", "1h", at(90), at(160))  # a catch-up over two switches
    assert [note.split(" switches ")[1].split(" (")[0] for note in both] == [
        "from momentum to random_walk", "from random_walk to momentum"]
    assert source.market_notes("BTC/USDT", "1h", at(0), at(20_000)) == []  # a backfill announces nothing


def test_any_range_regenerates_identically() -> None:
    config = SimulatedConfig(history_candles=10_000)
    whole = SimulatedSource(config, "1h").series("BTC/USDT", "1h").candles(0, 9000)
    part = SimulatedSource(config, "1h").series("BTC/USDT", "1h").candles(8000, 8100)
    np.testing.assert_array_equal(part, whole[8000:8101])


def test_candles_are_valid_closed_aligned_and_continuous() -> None:
    config = SimulatedConfig()
    source = SimulatedSource(config, "1h", clock=frozen_clock(config, 2000))
    candles = all_candles(source)
    valid, rejected = candle_ops.validate(candles, "1h", now_ms=source.now_ms())
    assert rejected == [] and len(valid) == 2000
    assert candles["ts"][0] == START and candles["ts"][-1] == START + 1999 * HOUR_MS
    np.testing.assert_array_equal(candles["open"][1:], candles["close"][:-1])
    other = all_candles(source, "ETH/USDT")
    assert not np.array_equal(other["close"], candles["close"])


def test_the_clock_releases_candles_at_the_configured_speed() -> None:
    config = SimulatedConfig(speed=3600.0, history_candles=100)
    wall = [1000.0]
    clock = MarketClock(origin_ms=START + 100 * HOUR_MS, speed=3600.0, anchor_wall=1000.0, wall=lambda: wall[0])
    source = SimulatedSource(config, "1h", clock=clock)
    assert len(all_candles(source)) == 100  # at the origin the history candles have just closed
    wall[0] += 0.5
    assert len(all_candles(source)) == 100  # the next one is half-way
    wall[0] += 0.5  # one real second = one market hour
    assert len(all_candles(source)) == 101
    wall[0] += 10.0
    assert len(all_candles(source)) == 111
    assert source.wall_seconds_until(START + 120 * HOUR_MS) == pytest.approx(9.0)


def persistence(returns: np.ndarray) -> float:
    """Share of candles whose return has the same sign as the previous one."""
    return float((np.sign(returns[1:]) == np.sign(returns[:-1])).mean())


def test_regime_switch_flips_return_autocorrelation_as_documented() -> None:
    config = SimulatedConfig(regimes=[{"kind": "momentum", "candles": 1500, "strength": 0.5},
                                      {"kind": "mean_reversion", "candles": 1500, "strength": 0.5},
                                      {"kind": "random_walk", "candles": 1500}])
    source = SimulatedSource(config, "1h", clock=frozen_clock(config, 9000))
    series = source.series("BTC/USDT", "1h")
    candles = all_candles(source)
    returns = np.log(candles["close"] / candles["open"])
    bounds = series.regime_boundaries(9000)
    assert [(i, r.kind) for i, r in bounds[:4]] == [(0, "momentum"), (1500, "mean_reversion"), (3000, "random_walk"),
                                                    (4500, "momentum")]
    for start, regime in bounds:
        segment = returns[start + 1:start + regime.candles]
        lag1 = float(np.corrcoef(segment[1:], segment[:-1])[0, 1])
        if regime.kind == "momentum":
            assert persistence(segment) >= 0.60 and lag1 > 0.35
        elif regime.kind == "mean_reversion":
            assert persistence(segment) <= 0.40 and lag1 < -0.35
        else:
            assert 0.45 <= persistence(segment) <= 0.55 and abs(lag1) < 0.1


def test_an_edge_learned_in_one_regime_is_lost_after_the_switch() -> None:
    """'Next move repeats the last', fitted on momentum, predicts >= 60 % there and < 50 % after the switch."""
    config = SimulatedConfig()
    source = SimulatedSource(config, "1h", clock=frozen_clock(config, 3000))
    candles = all_candles(source)
    returns = np.log(candles["close"] / candles["open"])
    predicted_up = returns[:-1] > 0
    actually_up = returns[1:] > 0
    hits = predicted_up == actually_up
    assert hits[100:1499].mean() >= 0.60
    assert hits[1500:2999].mean() < 0.45


def test_download_command_works_offline_on_the_simulated_market(write_config) -> None:
    config = write_config({"market": {"source": "simulated", "symbols": ["BTC/USDT", "ETH/USDT"],
                                      "simulated": {"history_candles": 1500}}})
    result = run_ctl("--config", str(config), "download", "ETH/USDT", "--days", "30", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["exchange"] == "simulated" and 30 * 24 - 1 <= report["inserted"] <= 30 * 24
    assert report["complete"] and report["last"] == "2024-03-03T11:00:00Z"  # 1500 hourly candles after 2024-01-01
    summary = json.loads(run_ctl("--config", str(config), "candles", "ETH/USDT", "--json").stdout)
    assert summary["count"] == report["inserted"] and summary["gaps"] == 0


@pytest.mark.parametrize(("arguments", "code", "message"), [
    (["--days", "inf"], 2, "argument --days: expected a number greater than 0 and at most 3650 "
                           "(as market.backfill_days in the configuration), got 'inf'"),
    (["--days", "-1"], 2, "argument --days: out of range: expected a number greater than 0 and at most 3650 "
                          "(as market.backfill_days in the configuration), got '-1'"),
    (["--since", "2024-02-01", "--until", "2024-01-01"], 64,
     "--until 2024-01-01T00:00:00Z is before --since 2024-02-01T00:00:00Z"),
])
def test_download_refuses_impossible_ranges_in_one_line(write_config, arguments: list[str], code: int,
                                                        message: str) -> None:
    config = write_config({"market": {"source": "simulated", "symbols": ["BTC/USDT"]}})
    result = run_ctl("--config", str(config), "download", "BTC/USDT", *arguments)
    assert result.returncode == code and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_download_shows_a_progress_bar_on_a_terminal_only(write_config) -> None:
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    from tests.support.data import ROOT

    config = write_config({"market": {"source": "simulated", "simulated": {"history_candles": 3000}}})
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal has a size
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    process = subprocess.Popen([sys.executable, "-m", "autoretrain.daemon.cli.main", "--config", str(config), "download", "BTC/USDT",
                                "--days", "120"], stdout=subprocess.PIPE, stderr=terminal, env=env)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    out, _ = process.communicate(timeout=60)
    os.close(main)
    assert process.returncode == 0
    assert b"candle" in shown and b"100%" in shown and b"2.88k/2.88k" in shown  # tqdm's bar on the terminal
    assert b" candles fetched (" in out and b"candle" not in shown.split(b"\n")[-1]  # the result goes to stdout


def test_the_wall_clock_jumping_does_not_move_the_market() -> None:
    """The wall clock is read once (downtime since the anchor); the market then moves with the monotonic clock."""
    wall, ticks = [1000.0 + 10.0], [500.0]
    clock = MarketClock(origin_ms=START, speed=3600.0, anchor_wall=1000.0, wall=lambda: wall[0],
                        ticker=lambda: ticks[0])
    assert clock.now_ms() == START + 10 * HOUR_MS  # ten wall seconds since the anchor: ten hours of market
    wall[0] += 86_400  # NTP or `date -s` moves the wall clock a day forward...
    assert clock.now_ms() == START + 10 * HOUR_MS
    wall[0] -= 2 * 86_400  # ...or back
    assert clock.now_ms() == START + 10 * HOUR_MS
    ticks[0] += 2.0  # two real seconds pass
    assert clock.now_ms() == START + 12 * HOUR_MS
    assert clock.wall_seconds_until(START + 13 * HOUR_MS) == 1.0
