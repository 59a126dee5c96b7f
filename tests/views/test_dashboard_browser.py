"""The dashboard in a real browser: headless Chromium loads the page of a running daemon and of a scripted one.

One daemon for the module (a pre-trained, promoted model, so both PnL lines and a version segment exist; one
retrain asked for, so the timeline has a run with its result). The page's headline numbers must be the values
`status --json` reports. They move with every candle, so the market is stopped while the page is read: the
ingest process is SIGSTOPped (well inside `supervisor.child_timeout`), the status is read until two reads a
cache period apart agree, then the browser loads the page and the status is read again; the two reads must be
equal (else the freeze failed, and the test says so), and every number on the page must equal them exactly.
A second, scripted server (the real handler and static files, a fake status source) shows what a live daemon
rarely does: training in progress, an unreadable symbol, an empty history, and the status failing after the
first render (the error banner, with the last data kept).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from autoretrain.daemon.supervisor.symbol_state import SymbolState
from autoretrain.daemon.views.dashboard import dashboard_handler
from autoretrain.daemon.views.history import trade_series
from autoretrain.ipc.control import DaemonUnavailable
from tests.support.cli import run_ctl
from tests.support.config import simulated_config
from tests.support.daemon import Daemon

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs Debian's "
                                                          "chromium; apt-get install chromium)")
SYMBOL = "BTC/USDT"
PANELS = ("headline", "training", "price", "win-rate", "pnl", "timeline")
VIRTUAL_TIME_MS = 8000
#: settled trades of the combined signal before the page is read: more than auto_training.rolling_window (30)
MIN_SIGNALS = 45
WINDOW = (1280, 1800)
#: the headline numbers: data-field -> how to read it from the symbol's status
HEADLINE: dict[str, Callable[[dict[str, Any]], Any]] = {
    "price": lambda s: s["price"],
    "candles": lambda s: s["candles"],
    "signals": lambda s: s["signals"],
    "win_rate": lambda s: s["win_rate"],
    "win_rate_scope": lambda s: s["win_rate_scope"],
    "pnl_pct": lambda s: s["pnl_pct"],
    "promoted_version": lambda s: s["promoted_version"],
    "model_version": lambda s: s["model_version"],
    "model_direction_accuracy": lambda s: (s["model_record"] or {}).get("direction_accuracy"),
    "model_predictions": lambda s: (s["model_record"] or {}).get("predictions"),
    "needs_retrain": lambda s: s["needs_retrain"],
    "retrain_reason": lambda s: s["retrain_reason"],
    "last_retrain_status": lambda s: (s["last_retrain"] or {}).get("status"),
    "last_retrain_trigger": lambda s: (s["last_retrain"] or {}).get("trigger"),
    "last_retrain_market_time": lambda s: (s["last_retrain"] or {}).get("market_time"),
    "last_candle": lambda s: s["last_candle"],
    "timeframe": lambda s: s["timeframe"],
}


# -- a small DOM from Chromium's --dump-dom ------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self) -> Iterator[Node]:
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.walk()

    def find_all(self, tag: str | None = None, **attrs: str | None) -> list[Node]:
        """Descendants with `tag` whose attributes equal `attrs` (None: present with any value); `data_x` is
        `data-x`."""
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [node for node in self.walk() if (tag is None or node.tag == tag) and all(
            name in node.attrs and (value is None or node.attrs[name] == value) for name, value in wanted.items())]

    def one(self, tag: str | None = None, **attrs: str | None) -> Node:
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag or '*'} {attrs}>, found {len(found)}"
        return found[0]

    @property
    def hidden(self) -> bool:
        return "hidden" in self.attrs


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {name: value or "" for name, value in attrs}, parent=self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, {name: value or "" for name, value in attrs}, parent=self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse_dom(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def value_of(node: Node) -> Any:
    """The raw status value the page put in `data-value` (JSON)."""
    return json.loads(node.attrs["data-value"])


def path_points(d: str) -> int:
    return len(re.findall(r"[ML]", d))


# -- the browser ---------------------------------------------------------------------------------------

def chromium(profile: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a profile of its own under the test's tmp_path (stderr is noise: dbus etc.)."""
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--no-default-browser-check", "--disable-extensions", "--mute-audio", f"--user-data-dir={profile}",
               f"--crash-dumps-dir={profile / 'crashes'}", f"--virtual-time-budget={VIRTUAL_TIME_MS}", *args]
    # its configuration and caches (crashpad's settings among them) under tmp_path too, not in the user's home
    env = {**os.environ, "XDG_CONFIG_HOME": str(profile / "config"), "XDG_CACHE_HOME": str(profile / "cache")}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=profile, env=env)


def dump_dom(profile: Path, url: str) -> str:
    result = chromium(profile, "--dump-dom", url)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'data-rendered="1"' in result.stdout, f"the page never rendered:\n{result.stdout[-3000:]}"
    return result.stdout


def screenshot(profile: Path, url: str, path: Path) -> None:
    result = chromium(profile, "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                      f"--screenshot={path}", url)
    assert result.returncode == 0 and path.is_file(), result.stderr[-3000:]


def http(url: str, method: str = "GET", timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# -- the live daemon, read while its market stands still ---------------------------------------------

@dataclass
class Reading:
    url: str
    run_id: int
    before: dict[str, Any]
    after: dict[str, Any]
    history: dict[str, Any]
    dom: Node
    html: str
    served: dict[str, bytes]
    headers: dict[str, dict[str, str]]
    screenshot: Path
    timings: dict[str, float]


def _symbol(status: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in status["symbols"] if s["symbol"] == SYMBOL)


def _busy(status: dict[str, Any]) -> bool:
    training = _symbol(status)["training"]
    return bool(training.get("in_progress") or training.get("queued_or_running"))


def _ready_to_read(daemon: Daemon, run_id: int) -> bool:
    if daemon.request("run", id=run_id)["status"] not in ("promoted", "rejected", "failed"):
        return False
    status = daemon.status()
    state = _symbol(status)
    record = state["model_record"] or {}
    if _busy(status) or state["error"] or not record.get("predictions") or not record.get("trades"):
        return False
    if state["signals"] < MIN_SIGNALS:  # more than the win rate's window: its scope is not all the trades
        return False
    history = daemon.request("history", symbol=SYMBOL)
    return len(history["trades"]["combined"]["ts"]) >= 10 and len(history["trades"]["model"]["ts"]) >= 10 \
        and bool(history["markers"])


def _frozen_status(daemon: Daemon, deadline_s: float = 20.0) -> dict[str, Any] | None:
    """With ingest stopped: the status once two reads, more than the board's cache period apart, agree on every
    symbol (the last batch settled) and no retrain is queued; None if that does not happen by the deadline."""
    end = time.monotonic() + deadline_s
    previous = daemon.status()
    while time.monotonic() < end:
        time.sleep(1.3)  # StatusBoard.SYMBOLS_TTL_S is 1 s
        current = daemon.status()
        if current["symbols"] == previous["symbols"] and not _busy(current):
            return current
        previous = current
    return None


@pytest.fixture(scope="module")
def reading(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reading]:
    tmp_path = tmp_path_factory.mktemp("dashboard")
    started = time.monotonic()
    timings: dict[str, float] = {}
    config = simulated_config(tmp_path / "state", dashboard={"endpoint": "127.0.0.1:0", "refresh_seconds": 1})
    daemon = Daemon(tmp_path, config)
    # a promoted model before the daemon starts (the guide's "start with a pre-trained model"): the model's own
    # trades and a version segment exist from the first candles on
    for args in (["download", SYMBOL, "--days", "60"], ["train", SYMBOL, "--epochs", "3", "--promote", "always"]):
        prepared = run_ctl("--config", str(daemon.config_path), *args, timeout=300)
        assert prepared.returncode == 0, prepared.stderr[-3000:]
    timings["pretrain"] = time.monotonic() - started
    daemon.start()
    ingest_pid: int | None = None
    try:
        daemon.wait_ready()
        timings["ready"] = time.monotonic() - started
        url = daemon.status()["daemon"]["dashboard_url"]
        assert url and url.startswith("http://127.0.0.1:"), url
        queued = daemon.request("retrain", symbol=SYMBOL)
        daemon.wait_for(lambda: _ready_to_read(daemon, queued["run_id"]), 120,
                        "the retrain finished, model trades, settled combined trades and markers")
        timings["data"] = time.monotonic() - started
        before = None
        for _ in range(3):
            daemon.wait_for(lambda: not _busy(daemon.status()), 120, "no retrain queued or running")
            ingest_pid = daemon.child_pid("ingest")
            assert ingest_pid
            os.kill(ingest_pid, signal.SIGSTOP)  # no new candle: the status stands still
            before = _frozen_status(daemon)
            if before is not None:
                break
            os.kill(ingest_pid, signal.SIGCONT)
            ingest_pid = None
        assert before is not None, "the status never stood still with ingest stopped"
        frozen_at = time.monotonic()
        history = daemon.request("history", symbol=SYMBOL)
        profile = tmp_path / "chromium"
        profile.mkdir()
        html = dump_dom(profile, url)
        timings["dump_dom_s"] = time.monotonic() - frozen_at
        shot = tmp_path / "dashboard.png"
        screenshot(profile, url, shot)
        served, headers = {}, {}
        for path in ("", "static/dashboard.js", "static/dashboard.css"):
            code, response_headers, content = http(url + path)
            assert code == 200, (path, code, content[:300])
            served[path or "/"] = content
            headers.setdefault(path or "/", response_headers)
        time.sleep(1.3)
        after = daemon.status()
        timings["frozen_s"] = time.monotonic() - frozen_at
        os.kill(ingest_pid, signal.SIGCONT)
        ingest_pid = None
        timings["total"] = time.monotonic() - started
        print("dashboard browser test timings (s):", {k: round(v, 1) for k, v in timings.items()})
        yield Reading(url, queued["run_id"], before, after, history, parse_dom(html), html, served, headers, shot, timings)
    finally:
        if ingest_pid is not None:
            os.kill(ingest_pid, signal.SIGCONT)
        code = daemon.shutdown()
        assert code == 0, daemon.log()[-3000:]


def test_the_market_stood_still_while_the_page_was_read(reading: Reading) -> None:
    """The precondition of the exact comparisons below: the status before and after the browser's reads agree."""
    assert reading.before["symbols"] == reading.after["symbols"]
    assert reading.timings["frozen_s"] < 45, "ingest stopped for too long: supervisor.child_timeout is 60 s"


def test_the_page_rendered_without_errors(reading: Reading) -> None:
    body = reading.dom.one("body")
    assert body.attrs.get("data-rendered") == "1"
    for flag in ("data-script-error", "data-csp-violation", "data-fetch-error"):
        assert flag not in body.attrs, body.attrs[flag]
    assert reading.dom.one(id="error-banner").hidden
    assert reading.dom.one(id="store-banner").hidden
    assert body.attrs["data-refresh-seconds"] == "1.0"  # {{REFRESH_SECONDS}} replaced: dashboard.refresh_seconds
    assert reading.dom.one(id="refresh-interval").text() == "1"
    assert re.fullmatch(r"last updated \d\d:\d\d:\d\d", reading.dom.one(id="last-updated").text())


def test_every_panel_exists_for_the_symbol(reading: Reading) -> None:
    section = reading.dom.one("section", data_symbol=SYMBOL)
    for panel in PANELS:
        section.one(data_panel=panel, data_symbol=SYMBOL)
    reading.dom.one(data_panel="processes")
    assert section.one(data_field="error").hidden


def test_headline_numbers_are_the_status_values(reading: Reading) -> None:
    state = _symbol(reading.before)
    headline = reading.dom.one(data_panel="headline", data_symbol=SYMBOL)
    for name, read in HEADLINE.items():
        assert value_of(headline.one(data_field=name, data_symbol=SYMBOL)) == read(state), name
    if state["retrain_trigger"] is not None:
        assert value_of(headline.one(data_field="retrain_trigger")) == state["retrain_trigger"]
    # what the operator reads is that value too
    shown = {name: headline.one(data_field=name).text() for name in HEADLINE}
    assert shown["price"] == f"{state['price']:,.2f}"
    assert shown["candles"] == f"{state['candles']:,}"
    assert shown["signals"] == f"{state['signals']:,}"
    assert shown["win_rate"] == f"{100 * state['win_rate']:.1f}%"
    assert shown["pnl_pct"].replace("\u2212", "-").lstrip("+") == f"{state['pnl_pct']:.2f}%"
    assert shown["model_version"] == state["model_version"]
    assert shown["model_predictions"] == f"{state['model_record']['predictions']:,}"
    assert shown["last_retrain_status"] == state["last_retrain"]["status"]
    assert shown["win_rate_scope"] == state["win_rate_scope"]
    assert "combined signal, net of fees, since start" in headline.text()
    training = reading.dom.one(data_panel="training", data_symbol=SYMBOL)
    assert value_of(training.one(data_field="training")) == state["training"]
    assert training.one(data_field="training").text() == "not training"


def test_process_table_is_the_status_processes(reading: Reading) -> None:
    panel = reading.dom.one(data_panel="processes")
    rows = panel.find_all("tr", data_process=None)
    assert [row.attrs["data-process"] for row in rows] == [p["name"] for p in reading.before["processes"]]
    after = {p["name"]: p for p in reading.after["processes"]}
    for process in reading.before["processes"]:
        row = panel.one("tr", data_process=process["name"])
        cells = {cell.attrs["data-field"]: cell for cell in row.find_all("td")}
        assert list(cells) == ["name", "pid", "state", "ready", "restarts", "rss_mb", "cpu_percent", "uptime_s"]
        for name in ("name", "pid", "restarts"):  # the same in both reads
            assert value_of(cells[name]) == process[name] == after[process["name"]][name], name
        assert cells["pid"].text() == str(process["pid"])
        assert value_of(cells["ready"]) == process.get("ready")
        for name in ("rss_mb", "cpu_percent", "uptime_s"):  # they move between reads: the status's kind of value
            assert isinstance(value_of(cells[name]), (int, float)), (process["name"], name)
        low = min(process["uptime_s"], after[process["name"]]["uptime_s"])
        assert low - 1 <= value_of(cells["uptime_s"]) <= after[process["name"]]["uptime_s"] + 1


def test_charts_draw_the_history(reading: Reading) -> None:
    history = reading.history
    section = reading.dom.one("section", data_symbol=SYMBOL)
    price = section.one(data_panel="price").one("svg", data_chart="price")
    assert path_points(price.one("path", data_series="close").attrs["d"]) == len(history["candles"]["ts"]) > 100
    markers = price.find_all("path", data_marker=None)
    assert len(markers) == len(history["markers"]) > 0
    assert {m.attrs["data-marker"] for m in markers} <= {"BUY", "SELL"}
    assert all(m.one("title").text().startswith(m.attrs["data-marker"] + " at 2024-") for m in markers)

    win = section.one(data_panel="win-rate")
    rates = [r for r in history["trades"]["combined"]["win_rate"] if r is not None]
    assert path_points(win.one("path", data_series="win-rate").attrs["d"]) == len(rates) > 0
    win.one("line", data_series="threshold")
    assert f"threshold {100 * history['threshold']:.1f}%" in win.text()
    assert (f"direction right / settled trades, newest {history['rolling_window']} (rolling_window) trades of the "
            "combined signal") in win.text()

    pnl = section.one(data_panel="pnl")
    for key, series in (("pnl-combined", "combined"), ("pnl-model", "model")):
        points = path_points(pnl.one("path", data_series=key).attrs["d"])
        assert points == len(history["trades"][series]["ts"]) > 0, key
    assert "sum of trade returns net of fees, %" in pnl.text()
    assert "combined signal" in pnl.one(data_legend="pnl").text()
    assert "model's own trades" in pnl.one(data_legend="pnl").text()

    timeline = section.one(data_panel="timeline")
    assert len(timeline.find_all("g", data_segment=None)) == len(history["versions"]) > 0
    assert timeline.one("g", data_segment=_symbol(reading.before)["model_version"])
    retrains = [e for e in history["events"] if e["kind"] == "retrain"]
    drawn = timeline.find_all("circle", data_event="retrain")
    assert len(drawn) == len(retrains) > 0
    assert [c.attrs["data-status"] for c in drawn] == [e["status"] for e in retrains]
    for circle, event in zip(drawn, retrains, strict=True):
        hover = circle.one("title").text()
        assert f"trigger: {event['trigger']}" in hover and f"reason: {event['reason']}" in hover
        assert f"result: {event['status']}" in hover and event["result"] in hover
    asked = next(e for e in retrains if e["run_id"] == reading.run_id)  # the one this test asked for
    assert asked["trigger"] == "manual" and asked["status"] in ("promoted", "rejected", "failed")
    row = timeline.one("tr", data_event="retrain", data_run_id=str(reading.run_id))
    assert f"retrain → {asked['status']}" in row.text() and asked["result"] in row.text()
    if asked["status"] == "rejected":  # a rejection shows its reason: the verdict
        assert f"rejected: {asked['result']}" in row.text()
    changes = [e for e in history["events"] if e["kind"] != "retrain"]
    assert len(timeline.find_all("path", data_event=None)) == len(changes)


def test_read_only_and_unknown_paths(reading: Reading) -> None:
    code, _, content = http(reading.url, method="POST")
    assert code == 405 and "read-only" in json.loads(content)["error"]
    code, _, content = http(reading.url + "api/nonexistent")
    assert code == 404 and "no such page" in json.loads(content)["error"]
    code, _, content = http(reading.url + "api/status")
    assert code == 200 and json.loads(content)["daemon"]["dashboard_url"] == reading.url


def test_the_page_references_nothing_outside_its_origin(reading: Reading) -> None:
    for name, content in reading.served.items():
        text = content.decode()
        for needle in ("http://", "https://", "//cdn", "@import", "url("):
            assert needle not in text, f"{name} holds {needle!r}"
    assert "{{REFRESH_SECONDS}}" not in reading.served["/"].decode()
    for node in reading.dom.walk():
        for attribute in ("src", "href", "action", "xlink:href"):
            target = node.attrs.get(attribute)
            if target is not None:
                assert target.startswith(("/", "#")) and not target.startswith("//"), (node.tag, attribute, target)
        assert "style" not in node.attrs, f"inline style on <{node.tag}> (CSP style-src 'self')"
        if node.tag == "script":
            assert node.attrs.get("src") == "/static/dashboard.js" and not node.text().strip()
    assert "script-src 'self'" in reading.headers["/"]["Content-Security-Policy"]


def test_screenshot_is_the_page(reading: Reading) -> None:
    image = pytest.importorskip("matplotlib.image").imread(reading.screenshot)
    assert image.shape[:2] == (WINDOW[1], WINDOW[0])
    pixels = image[..., :3]
    assert float(pixels.std()) > 0.05, "blank screenshot"
    colours = {tuple(p) for p in (pixels[::7, ::7].reshape(-1, 3) * 255).round().astype(int).tolist()}
    assert len(colours) > 50, f"only {len(colours)} colours: not the drawn page"


# -- a scripted server: training, an unreadable symbol, no candles yet, the daemon going away -------------

HOUR_MS = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def _scripted_history(symbol: str) -> dict[str, Any]:
    ts = [T0 + i * HOUR_MS for i in range(48)]
    close = [42_000.0 + 300 * ((i * 7) % 11) - 20 * i for i in range(48)]
    trades = trade_series([], 30)
    settled = ts[2:40:2]
    trades["combined"] = {"ts": settled, "win_rate": [None] * 4 + [0.5 + 0.02 * i for i in range(len(settled) - 4)],
                          "pnl_pct": [0.3 * i - 0.01 * i * i for i in range(len(settled))]}
    trades["model"] = {"ts": settled, "win_rate": trades["combined"]["win_rate"],
                       "pnl_pct": [-0.2 * i for i in range(len(settled))]}
    return {"symbol": symbol, "timeframe": "1h", "threshold": 0.45, "rolling_window": 30, "fee_bps": 10.0,
            "from": "2024-01-01T00:00:00Z", "to": "2024-01-02T23:00:00Z", "candles": {"ts": ts, "close": close},
            "markers": [{"ts": t, "action": "BUY" if i % 2 else "SELL", "price": close[ts.index(t)],
                         "model_version": "v0003"} for i, t in enumerate(settled)],
            "trades": trades,
            "events": [{"kind": "retrain", "ts": ts[30], "time": "2024-01-02T06:00:00Z", "run_id": 7,
                        "trigger": "performance", "reason": "win rate 40.0% under 45.0%", "status": "running",
                        "version": None, "result": ""}],
            "versions": [{"version": "v0003", "from_ts": T0 - 10 * HOUR_MS, "to_ts": ts[-1], "benched": False}]}


def _empty_history(symbol: str) -> dict[str, Any]:
    return {"symbol": symbol, "timeframe": "1h", "threshold": 0.45, "rolling_window": 30, "fee_bps": 10.0,
            "from": None, "to": None, "candles": {"ts": [], "close": []}, "markers": [],
            "trades": trade_series([], 30), "events": [], "versions": []}


def _scripted_status() -> dict[str, Any]:
    training = SymbolState(
        symbol="BTC/USDT", timeframe="1h", candles=1234, last_candle_ts=T0 + 47 * HOUR_MS, price=41_060.5,
        promoted_version="v0003", model_version="v0003", signals=321, win_rate=0.4, pnl_pct=-3.25,
        needs_retrain=True, retrain_reason="win rate 40.0% under 45.0%", retrain_trigger="performance",
        last_retrain={"status": "running", "trigger": "performance", "reason": "win rate 40.0% under 45.0%",
                      "market_time": "2024-01-02T06:00:00Z", "version": None, "finished_at": None, "run_id": 7},
        training={"in_progress": True, "epoch": 3, "epochs": 8, "run_id": 7, "queued_or_running": True},
        performance={}, win_rate_scope="the current model's last 30 settled signals",
        model_record={"version": "v0003", "predictions": 40, "right": 22, "direction_accuracy": 0.55, "trades": 30,
                      "evaluation_accuracy": 0.58, "benched": False})
    unreadable = SymbolState.unreadable("ETH/USDT", "1h", "DatabaseError: database disk image is malformed")
    return {"daemon": {"pid": 1, "ready": True, "source": "simulated", "timeframe": "1h", "uptime_s": 12.0,
                       "market_time": "2024-01-02T23:30:00Z", "dashboard_url": None},
            "processes": [{"name": "supervisor", "pid": 1, "state": "running", "restarts": 0, "uptime_s": 12.0,
                           "rss_mb": 50.0, "cpu_percent": 1.0}],
            "symbols": [training.as_dict(), unreadable.as_dict()],
            "store": {"path": "/nowhere", "error": None}}


class ScriptedStatus:
    """The status source of the real handler: the status once, then the daemon is gone (503)."""

    def __init__(self) -> None:
        self.status_requests = 0

    def request(self, command: str, **args: Any) -> dict[str, Any]:
        if command == "history":
            return _scripted_history(args["symbol"]) if args["symbol"] == "BTC/USDT" else _empty_history(args["symbol"])
        self.status_requests += 1
        if self.status_requests > 1:
            raise DaemonUnavailable("no answer from the daemon's control socket")
        return _scripted_status()


def test_training_unreadable_state_empty_history_and_a_failing_daemon(tmp_path: Path) -> None:
    source = ScriptedStatus()
    handler = dashboard_handler(source, refresh_seconds=1, symbols=["BTC/USDT", "ETH/USDT"])
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        profile = tmp_path / "chromium"
        profile.mkdir()
        dom = parse_dom(dump_dom(profile, f"http://127.0.0.1:{server.server_port}/"))
    finally:
        server.shutdown()
        server.server_close()
    assert source.status_requests >= 2, "the page did not refresh"
    body = dom.one("body")
    assert "503" in body.attrs["data-fetch-error"] and "data-script-error" not in body.attrs
    banner = dom.one(id="error-banner")
    assert not banner.hidden and "cannot update" in banner.text() and "showing the data of" in banner.text()

    # the last data stays on the page
    btc = dom.one("section", data_symbol="BTC/USDT")
    assert value_of(btc.one(data_field="price")) == 41_060.5
    assert value_of(btc.one(data_field="needs_retrain")) is True
    assert value_of(btc.one(data_field="retrain_trigger")) == "performance"
    training = btc.one(data_panel="training")
    assert re.sub(r"\s+", " ", training.one(data_field="training").text()).startswith("epoch 3/8")
    assert value_of(training.one(data_field="training_epoch")) == 3
    assert value_of(training.one(data_field="training_epochs")) == 8
    assert training.one("progress").attrs["value"] == "3"
    assert btc.one(data_panel="price").find_all("path", data_marker=None)
    assert btc.one("circle", data_event="retrain").attrs["data-status"] == "running"
    assert btc.one("g", data_segment="v0003")

    # the unreadable symbol says why; its charts say there is nothing yet
    eth = dom.one("section", data_symbol="ETH/USDT")
    error = eth.one(data_field="error")
    assert not error.hidden and "database disk image is malformed" in error.text()
    assert value_of(eth.one(data_field="price")) is None and eth.one(data_field="price").text() == "—"
    assert value_of(eth.one(data_field="candles")) == 0 and eth.one(data_field="candles").text() == "—"
    assert eth.one(data_field="model_version").text() == "—"
    assert value_of(eth.one(data_field="model_direction_accuracy")) is None
    for panel in ("price", "win-rate", "pnl", "timeline"):
        assert "no candles yet" in eth.one(data_panel=panel).text(), panel
    assert eth.one(data_panel="training").one(data_field="training").text() == "not training"
    assert [row.attrs["data-process"] for row in dom.one(data_panel="processes").find_all("tr", data_process=None)] \
        == ["supervisor"]
