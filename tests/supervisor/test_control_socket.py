"""The supervisor's commands behind the real control socket: out-of-range arguments are the client's error.

A real ROUTER (`ControlServer`) answers with the real command table (`ControlCommands`) over a real
store and registry; a REQ socket sends what the adversarial probe sent, or asks a store damaged under the
running supervisor. Each must come back as a one-line error in strict JSON, log at most one warning and no
traceback, and leave the server serving.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from autoretrain.daemon.foundation.config import build_config
from autoretrain.daemon.store.database import Database
from autoretrain.daemon.supervisor.children import PROCESS_MODULES, Children
from autoretrain.daemon.supervisor.commands import CommandContext, ControlCommands
from autoretrain.daemon.supervisor.status_board import StatusBoard
from autoretrain.ipc import messages
from autoretrain.ipc.control import ControlServer
from tests.store.damage import build_store, overwrite, page_size, pages, truncate_candles
from tests.support.market_script import EX, SYM, TF, rising


class Wire:
    """The control server with the supervisor's handler, and a REQ client, driven in this thread."""

    def __init__(self, tmp_path: Path) -> None:
        self.config = build_config({"paths": {"state_dir": str(tmp_path / "state")}}, env={})
        children = Children(tuple(PROCESS_MODULES), tmp_path / "config.json", self.config.supervisor)
        self.board = StatusBoard(self.config, children, started_at=time.time())
        self.published: list[messages.Message] = []
        commands = ControlCommands(CommandContext(self.config, self.board, self.published.append))
        self.context = zmq.Context()
        endpoint = f"ipc://{tmp_path / 'run' / 'control.sock'}"
        self.server = ControlServer(self.context, endpoint, commands.handle, max_request_bytes=1 << 20)
        self.client = self.context.socket(zmq.REQ)
        self.client.setsockopt(zmq.LINGER, 0)
        self.client.connect(endpoint)

    def send(self, body: bytes) -> dict[str, Any]:
        self.client.send(body)
        assert self.server.sock.poll(3000) and self.server.handle_pending() == 1
        assert self.client.poll(3000), "no reply"
        raw = self.client.recv()

        def refuse(name: str) -> Any:
            raise AssertionError(f"reply holds {name}, which is not JSON: {raw[:200]!r}")

        reply = json.loads(raw, parse_constant=refuse)
        assert isinstance(reply, dict)
        return reply

    def close(self) -> None:
        self.client.close(0)
        self.server.close()
        self.context.destroy(linger=0)
        self.board.close()


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[Wire]:
    running = Wire(tmp_path)
    yield running
    running.close()


def request(command: str, args: dict[str, Any], request_id: Any = 1) -> bytes:
    return json.dumps({"id": request_id, "command": command, "args": args}).encode()


HUGE = int("9" * 4000)  # under Python's 4,300-digit limit, so it reaches the command's schema

OUT_OF_RANGE = {
    "5,000-digit version": (request("promote", {"symbol": "BTC/USDT", "version": "9" * 5000}),
                            "argument 'version': String should have at most 16 characters"),
    "5,000-digit version number": (b'{"id": 1, "command": "promote", "args": {"symbol": "BTC/USDT", "version": '
                                   + b"9" * 5000 + b"}}", "request is not valid JSON"),
    "4,000-digit version number": (request("promote", {"symbol": "BTC/USDT", "version": HUGE}),
                                   "argument 'version': Input should be a valid string"),
    "run id past SQLite": (request("run", {"id": 2**63}), "argument 'id': Input should be less than or equal to"),
    "run id of 4,000 digits": (request("run", {"id": HUGE}), "argument 'id': Input should be less than or equal to"),
    "negative run id": (request("run", {"id": -1}), "argument 'id': Input should be greater than or equal to 1"),
    "most negative run id": (request("run", {"id": -(2**63) - 1}), "argument 'id': Input should be greater than"),
    "run id 1e300": (request("run", {"id": 1e300}), "argument 'id': Input should be a valid integer"),
    "run id 1e999": (b'{"id": 1, "command": "run", "args": {"id": 1e999}}', "request is not valid JSON"),
    "run id NaN": (b'{"id": 1, "command": "run", "args": {"id": NaN}}', "request is not valid JSON"),
    "run id as text": (request("run", {"id": "9" * 5000}), "argument 'id': Input should be a valid integer"),
    "symbol of 5,000 characters": (request("retrain", {"symbol": "B" * 5000}), "at most 64 characters"),
    "symbol nested": (request("models", {"symbol": [[["BTC/USDT"]]]}), "argument 'symbol': Input should be a valid"),
    "timeframe of 5,000 characters": (request("models", {"symbol": "BTC/USDT", "timeframe": "1" * 5000}),
                                      "at most 16 characters"),
    "unknown argument with a newline": (request("status", {"a\nb": 1}), "unknown argument"),
    "request id NaN": (b'{"id": NaN, "command": "status"}', "request is not valid JSON"),
    "request id Infinity": (b'{"id": Infinity, "command": "ping"}', "request is not valid JSON"),
    "request id past 64 bits": (request("ping", {}, request_id=2**64), "request 'id' must be null, a number"),
    "deep arguments": (b'{"id": 1, "command": "run", "args": {"id": ' + b"[" * 100_000 + b"}}",
                       "request is nested too deeply"),
    "arguments nested below the decoder's limit": (
        b'{"id": 1, "command": "run", "args": {"id": ' + b"[" * 900 + b"]" * 900 + b"}}",
        "argument 'id': Input should be a valid integer"),
}


@pytest.mark.parametrize("name", list(OUT_OF_RANGE))
def test_an_out_of_range_request_is_the_clients_error(wire: Wire, caplog: pytest.LogCaptureFixture,
                                                      name: str) -> None:
    body, problem = OUT_OF_RANGE[name]
    with caplog.at_level(logging.DEBUG):
        reply = wire.send(body)
    assert reply["ok"] is False and problem in reply["error"], reply
    assert "\n" not in reply["error"] and "internal error" not in reply["error"]
    assert reply["id"] in (None, 1)
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) <= 1 and all(r.levelno < logging.ERROR and r.exc_info is None for r in records), \
        [r.getMessage() for r in records]
    assert wire.published == []
    assert wire.send(request("ping", {}, request_id="after")) == {"id": "after", "ok": True, "result": {"pong": True}}


def _damage_runs_page(path: Path) -> None:
    """Garbage over the retrain runs' page: `run` reads it."""
    (page,) = [page for page in pages(path) if page.table == "retrain_runs"]
    overwrite(path, (page.number - 1) * page_size(path), page_size(path))


DAMAGED_READS = {
    "run reads a damaged retrain run": (request("run", {"id": 1}), _damage_runs_page),
    "retrain reads damaged candles": (request("retrain", {"symbol": SYM}), truncate_candles),
}


@pytest.mark.parametrize("name", list(DAMAGED_READS))
def test_a_store_damaged_under_a_command_is_the_stores_one_line(wire: Wire, caplog: pytest.LogCaptureFixture,
                                                                 name: str) -> None:
    """Damaged while the supervisor runs (its connection open, a child's writes in the WAL): the client gets the
    store's one line with what to do, the log one warning and no traceback, and the server goes on serving."""
    body, damage = DAMAGED_READS[name]
    path = wire.config.db_path
    assert wire.config.store_exchange == EX and SYM in wire.config.market.symbols
    build_store(path)
    wire.board.db()
    with Database(path, autocheckpoint=False) as child:
        child.candles.upsert(EX, "XRP/USDT", TF, rising(0, 500))
        damage(path)
    with caplog.at_level(logging.DEBUG):
        replies = [wire.send(body) for _ in range(2)]
    for reply in replies:
        assert reply["ok"] is False and reply["id"] == 1, reply
        assert reply["error"].startswith(f"store {path} is damaged: database disk image is malformed; stop the daemon")
        assert "\n" not in reply["error"] and "internal error" not in reply["error"]
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelno, r.getMessage()) for r in records] == \
        [(logging.WARNING, f"control command {json.loads(body)['command']}: {replies[0]['error']}")]
    assert all(r.exc_info is None for r in caplog.records) and wire.published == []
    assert wire.send(request("ping", {}, request_id="after")) == {"id": "after", "ok": True, "result": {"pong": True}}
