"""The control socket: JSON requests with ids, error replies, fuzz, oversize frames, Lazy Pirate client."""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from autoretrain.ipc.control import (
    ControlClient,
    ControlError,
    ControlServer,
    DaemonUnavailable,
    RequestFailed,
    socket_mode,
)


def handler(command: str, args: dict[str, Any]) -> dict[str, Any]:
    if command == "echo":
        return {"args": args}
    if command == "explode":
        raise RuntimeError("handler bug")
    if command == "needs_symbol":
        if "symbol" not in args:
            raise ControlError("missing argument 'symbol'")
        return {"symbol": args["symbol"]}
    raise ControlError(f"unknown command {command!r}")


class ServerThread:
    def __init__(self, endpoint: str, max_bytes: int = 4096) -> None:
        self.endpoint = endpoint
        self.max_bytes = max_bytes
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.handled = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        context = zmq.Context()
        server = ControlServer(context, self.endpoint, handler, max_request_bytes=self.max_bytes)
        self.ready.set()
        while not self.stop.is_set():
            if server.sock.poll(50):
                self.handled += server.handle_pending()
        server.close()
        context.destroy(linger=0)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        assert self.ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def endpoint(tmp_path: Path) -> str:
    return f"ipc://{tmp_path / 'run' / 'control.sock'}"


@pytest.fixture
def server(endpoint: str) -> Iterator[ServerThread]:
    with ServerThread(endpoint) as running:
        yield running


def test_request_reply_and_one_line_errors(server: ServerThread, endpoint: str) -> None:
    client = ControlClient(endpoint, timeout_ms=2000)
    assert client.request("echo", a=1, b=[1, 2]) == {"args": {"a": 1, "b": [1, 2]}}
    assert client.request("needs_symbol", symbol="BTC/USDT") == {"symbol": "BTC/USDT"}
    with pytest.raises(RequestFailed, match="missing argument 'symbol'"):
        client.request("needs_symbol")
    with pytest.raises(RequestFailed, match="unknown command 'nope'"):
        client.request("nope")
    with pytest.raises(RequestFailed, match="internal error: RuntimeError: handler bug"):
        client.request("explode")
    assert client.request("echo") == {"args": {}}  # still answering after all that
    client.close()


def test_socket_file_and_directory_permissions(server: ServerThread, endpoint: str) -> None:
    path = Path(endpoint[len("ipc://"):])
    assert socket_mode(endpoint) == 0o660
    assert os.stat(path.parent).st_mode & 0o777 == 0o750


def test_stale_socket_file_does_not_block_a_new_server(endpoint: str) -> None:
    path = Path(endpoint[len("ipc://"):])
    path.parent.mkdir(parents=True)
    path.write_text("left behind by a killed daemon")
    with ServerThread(endpoint):
        client = ControlClient(endpoint, timeout_ms=2000)
        assert client.request("echo", x=1) == {"args": {"x": 1}}
        client.close()


def raw_exchange(endpoint: str, body: bytes, timeout_ms: int = 2000) -> dict[str, Any] | None:
    context = zmq.Context()
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sock.send(body)
    reply = json.loads(sock.recv()) if sock.poll(timeout_ms) else None
    context.destroy(linger=0)
    return reply


@pytest.mark.parametrize(("body", "error"), [
    (b"not json at all", "request is not valid JSON"),
    (b"\xff\xfe\x00garbage", "request is not valid JSON"),
    (b"[1, 2, 3]", "request must be a JSON object"),
    (b'{"id": 7}', "request has no 'command'"),
    (b'{"id": 8, "command": "echo", "args": [1]}', "'args' must be a JSON object"),
    (b'{"id": 9, "command": 12}', "request has no 'command'"),
])
def test_malformed_requests_get_error_replies(server: ServerThread, endpoint: str, body: bytes, error: str) -> None:
    reply = raw_exchange(endpoint, body)
    assert reply is not None and reply["ok"] is False and reply["error"] == error


def strict_json(body: bytes) -> Any:
    """Parse as RFC 8259 JSON: a bare NaN or Infinity fails the test."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"reply holds {name}, which is not JSON: {body[:200]!r}")
    return json.loads(body, parse_constant=refuse)


def exchange_strict(endpoint: str, body: bytes, timeout_ms: int = 5000) -> Any:
    context = zmq.Context()
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sock.send(body)
    try:
        return strict_json(sock.recv()) if sock.poll(timeout_ms) else None
    finally:
        context.destroy(linger=0)


HOSTILE = {  # body -> the error it gets
    "deep array": (b"[" * 100_000, "request is nested too deeply"),
    "deep object": (b'{"a":' * 50_000, "request is nested too deeply"),
    "deep args": (b'{"id": 1, "command": "echo", "args": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
                  "request is nested too deeply"),
    "deep id": (b'{"id": ' + b"[" * 5000 + b"]" * 5000 + b', "command": "echo"}', "request is nested too deeply"),
    "nested id": (b'{"id": ' + b"[" * 500 + b"]" * 500 + b', "command": "echo"}',
                  "request 'id' must be null, a number or a string of at most 256 characters"),
    "NaN id": (b'{"id": NaN, "command": "echo"}', "request is not valid JSON"),
    "Infinity id": (b'{"id": Infinity, "command": "echo"}', "request is not valid JSON"),
    "-Infinity arg": (b'{"id": 1, "command": "echo", "args": {"x": -Infinity}}', "request is not valid JSON"),
    "1e999 id": (b'{"id": 1e999, "command": "echo"}', "request is not valid JSON"),
    "5000 digits": (b'{"id": ' + b"9" * 5000 + b', "command": "echo"}', "request is not valid JSON"),
    "2**64 id": (b'{"id": 18446744073709551616, "command": "echo"}', "request 'id' must be null, a number"),
    "bool id": (b'{"id": true, "command": "echo"}', "request 'id' must be null, a number"),
    "object id": (b'{"id": {"a": 1}, "command": "echo"}', "request 'id' must be null, a number"),
    "long id": (b'{"id": "' + b"x" * 300 + b'", "command": "echo"}', "request 'id' must be null, a number"),
    "long command": (b'{"id": 2, "command": "' + b"c" * 5000 + b'"}', "'command' is longer than 64 characters"),
    "invalid UTF-8": (b'{"id": 3, "command": "\xc3\x28"}', "request is not valid JSON"),
    "overlong UTF-8": (b'{"id": 3, "command": "\xc0\xaf"}', "request is not valid JSON"),
    "lone surrogate": (b'{"id": "\\ud800", "command": "nope"}', "unknown command 'nope'"),
    "number": (b"12", "request must be a JSON object"),
    "string": (b'"status"', "request must be a JSON object"),
    "null": (b"null", "request must be a JSON object"),
    "empty": (b"", "request is not valid JSON"),
    "args string": (b'{"id": 4, "command": "echo", "args": "x"}', "'args' must be a JSON object"),
    "command list": (b'{"id": 5, "command": ["status"]}', "request has no 'command'"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_request_of_any_shape_gets_a_strict_json_error(endpoint: str, name: str) -> None:
    body, error = HOSTILE[name]
    with ServerThread(endpoint, max_bytes=1 << 20) as running:
        reply = exchange_strict(endpoint, body)
        assert reply is not None and reply["ok"] is False and error in reply["error"], reply
        assert "\n" not in reply["error"] and reply["id"] in (None, 1, 2, 3, 4, 5, "\ud800")
        client = ControlClient(endpoint, timeout_ms=2000)  # and the server goes on serving
        try:
            assert client.request("echo", after=name) == {"args": {"after": name}}
        finally:
            client.close()
        assert running.thread.is_alive()


def test_ids_that_are_json_are_echoed_as_sent(server: ServerThread, endpoint: str) -> None:
    for request_id in ["abc", 0, -7, 2**63 - 1, 1.5, None, "x" * 256]:
        body = json.dumps({"id": request_id, "command": "echo"}).encode()
        assert exchange_strict(endpoint, body) == {"id": request_id, "ok": True, "result": {"args": {}}}


def test_a_result_holding_nan_goes_out_as_strict_json(endpoint: str) -> None:
    def figures(command: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"win_rate": float("nan"), "pnl": [float("inf"), 1.0], "nested": {"x": float("-inf")}}

    context = zmq.Context()
    server = ControlServer(context, endpoint, figures, max_request_bytes=4096)
    client = context.socket(zmq.REQ)
    client.setsockopt(zmq.LINGER, 0)
    client.connect(endpoint)
    client.send(b'{"id": 1, "command": "status"}')
    assert server.sock.poll(2000) and server.handle_pending() == 1
    assert client.poll(2000)
    assert strict_json(client.recv()) == {"id": 1, "ok": True,
                                          "result": {"win_rate": None, "pnl": [None, 1.0], "nested": {"x": None}}}
    server.close()
    context.destroy(linger=0)


def test_whatever_fails_while_answering_the_server_answers_and_keeps_serving(endpoint: str,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    """The last line of defence: a reply that cannot be encoded (here a result that contains itself)."""
    def looped(command: str, args: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {"fine": command == "fine"}
        if command != "fine":
            result["self"] = result
        return result

    context = zmq.Context()
    server = ControlServer(context, endpoint, looped, max_request_bytes=4096)
    client = context.socket(zmq.REQ)
    client.setsockopt(zmq.LINGER, 0)
    client.connect(endpoint)
    replies = []
    with caplog.at_level(logging.DEBUG, logger="autoretrain.control"):
        for command in ("loop", "fine"):
            client.send(json.dumps({"id": command, "command": command}).encode())
            assert server.sock.poll(2000) and server.handle_pending() == 1
            assert client.poll(2000)
            replies.append(strict_json(client.recv()))
    assert replies == [{"id": None, "ok": False, "error": "request refused (RecursionError)"},
                       {"id": "fine", "ok": True, "result": {"fine": True}}]
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.WARNING, None)]
    server.close()
    context.destroy(linger=0)


def test_a_reply_that_is_not_json_is_a_one_line_failure_at_the_client(endpoint: str) -> None:
    context = zmq.Context()
    path = Path(endpoint[len("ipc://"):])
    path.parent.mkdir(parents=True, exist_ok=True)
    impostor = context.socket(zmq.ROUTER)
    impostor.bind(endpoint)
    answer: dict[str, BaseException] = {}

    def ask() -> None:
        client = ControlClient(endpoint, timeout_ms=3000, retries=1)
        try:
            client.request("status")
        except BaseException as exc:  # noqa: BLE001 - the test inspects whatever the client raised
            answer["raised"] = exc
        finally:
            client.close()  # an unclosed socket would hang its context's term() at garbage collection

    thread = threading.Thread(target=ask)
    thread.start()
    assert impostor.poll(3000)
    identity, empty, _ = impostor.recv_multipart()
    impostor.send_multipart([identity, empty, b'{"id": NaN, "ok": true}'])
    thread.join(5)
    assert isinstance(answer.get("raised"), RequestFailed)
    assert "is not a JSON object" in str(answer["raised"])
    impostor.close(0)
    context.destroy(linger=0)


def test_fuzz_hundreds_of_malformed_requests_then_still_serving(server: ServerThread, endpoint: str) -> None:
    rng = random.Random(4)
    context = zmq.Context()
    for _ in range(300):
        kind = rng.choice([zmq.DEALER, zmq.REQ, zmq.PUSH])
        sock = context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        frames = [junk] if kind == zmq.REQ else [junk] * rng.randint(1, 4)
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.ZMQError:
            pass
        sock.close(0)
    huge = raw_exchange(endpoint, b"{" + b" " * 10_000 + b"}", timeout_ms=500)
    assert huge is None  # an oversized frame is dropped with its connection
    context.destroy(linger=0)
    client = ControlClient(endpoint, timeout_ms=2000)
    assert client.request("echo", alive=True) == {"args": {"alive": True}}
    client.close()


def test_client_gives_up_when_nothing_answers(endpoint: str, tmp_path: Path) -> None:
    with pytest.raises(DaemonUnavailable, match="not running"):
        ControlClient(endpoint).request("status")
    context = zmq.Context()
    mute = context.socket(zmq.ROUTER)  # bound but never answers
    path = Path(endpoint[len("ipc://"):])
    path.parent.mkdir(parents=True, exist_ok=True)
    mute.bind(endpoint)
    started = time.monotonic()
    client = ControlClient(endpoint, timeout_ms=200, retries=3)
    with pytest.raises(DaemonUnavailable, match="no reply from autoretraind .* after 3 tries of 200 ms"):
        client.request("status")
    assert 0.5 < time.monotonic() - started < 5
    client.close()
    mute.close(0)
    context.destroy(linger=0)


def test_lazy_pirate_reconnects_when_the_server_comes_back(endpoint: str) -> None:
    context = zmq.Context()
    path = Path(endpoint[len("ipc://"):])
    path.parent.mkdir(parents=True, exist_ok=True)
    mute = context.socket(zmq.ROUTER)
    mute.bind(endpoint)
    client = ControlClient(endpoint, timeout_ms=300, retries=10)
    answer: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: answer.update(client.request("echo", n=1)))
    thread.start()
    time.sleep(0.5)  # the first try times out against the mute socket
    mute.close(0)
    context.destroy(linger=0)
    with ServerThread(endpoint):
        thread.join(10)
    assert answer == {"args": {"n": 1}}
    client.close()
