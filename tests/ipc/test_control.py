"""The control socket: JSON requests with ids, error replies, fuzz, oversize frames, Lazy Pirate client."""

from __future__ import annotations

import json
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
