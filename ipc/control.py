"""The control socket: a ROUTER in the supervisor, JSON requests with an `id`, JSON replies with `ok`.

Request: `{"id": "...", "command": "status", "args": {...}}`. Reply: `{"id": ..., "ok": true,
"result": {...}}` or `{"id": ..., "ok": false, "error": "one line"}`. Malformed JSON, a body that is
not an object, an unknown command or bad arguments get an error reply; a frame larger than
`max_request_bytes` makes libzmq drop the connection (ZMQ_MAXMSGSIZE). Nothing a client sends can
crash the server. The client is a Lazy Pirate: it polls with a timeout and, on silence, closes and
reopens its socket and resends, a few times, before reporting the daemon unreachable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

log = logging.getLogger("autoretrain.control")


class ControlError(Exception):
    """A request the server understood but refuses; the message goes back as the one-line error."""


class DaemonUnavailable(Exception):
    """No daemon answers on the endpoint (no socket file, or silence after every retry)."""


class RequestFailed(Exception):
    """The daemon answered with `ok: false`; the message is its one-line error."""


Handler = Callable[[str, dict[str, Any]], dict[str, Any]]


def ipc_path(endpoint: str) -> Path | None:
    return Path(endpoint[len("ipc://"):]) if endpoint.startswith("ipc://") else None


@contextlib.contextmanager
def _umask(mask: int):  # type: ignore[no-untyped-def]
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


class ControlServer:
    """Bind the ROUTER (socket file 0660 inside a 0750 directory) and answer requests with `handler`."""

    def __init__(self, context: zmq.Context, endpoint: str, handler: Handler, *, max_request_bytes: int) -> None:
        self.endpoint = endpoint
        self.handler = handler
        self.sock = context.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, max_request_bytes)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
        path = ipc_path(endpoint)
        if path is not None:
            if not path.parent.exists():
                path.parent.mkdir(mode=0o750, parents=True)  # never re-mode a directory someone else made
            if path.exists() or path.is_symlink():
                path.unlink()  # stale socket of a killed daemon: we hold the state lock, so it is ours
            with _umask(0o117):
                self.sock.bind(endpoint)
            os.chmod(path, 0o660)
        else:
            self.sock.bind(endpoint)

    def handle_pending(self, limit: int = 100) -> int:
        """Answer every request waiting now; returns how many frames were handled."""
        handled = 0
        for _ in range(limit):
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            handled += 1
            if len(frames) < 2:
                continue  # not even an envelope: nothing to answer
            identity, envelope, body = frames[0], frames[1:-1], frames[-1]
            reply = self._reply_to(body)
            try:
                self.sock.send_multipart([identity, *envelope, json.dumps(reply, default=str).encode()], zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                log.debug("could not reply to a control client: %s", exc)
        return handled

    def _reply_to(self, body: bytes) -> dict[str, Any]:
        try:
            request = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            return {"id": None, "ok": False, "error": "request is not valid JSON"}
        if not isinstance(request, dict):
            return {"id": None, "ok": False, "error": "request must be a JSON object"}
        request_id = request.get("id")
        command = request.get("command")
        args = request.get("args", {})
        if not isinstance(command, str) or not command:
            return {"id": request_id, "ok": False, "error": "request has no 'command'"}
        if not isinstance(args, dict):
            return {"id": request_id, "ok": False, "error": "'args' must be a JSON object"}
        try:
            return {"id": request_id, "ok": True, "result": self.handler(command, args)}
        except ControlError as exc:
            return {"id": request_id, "ok": False, "error": " ".join(str(exc).split())}
        except Exception as exc:
            log.exception("control command %r failed", command)
            return {"id": request_id, "ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}

    def close(self) -> None:
        self.sock.close(0)
        path = ipc_path(self.endpoint)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def socket_mode(endpoint: str) -> int | None:
    """The permission bits of an ipc endpoint's socket file (for checks and tests)."""
    path = ipc_path(endpoint)
    return stat.S_IMODE(path.stat().st_mode) if path is not None and path.exists() else None


class ControlClient:
    """Lazy Pirate REQ client: poll with a timeout, reconnect and resend on silence."""

    def __init__(self, endpoint: str, *, timeout_ms: int = 5000, retries: int = 3) -> None:
        self.endpoint = endpoint
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.context = zmq.Context()
        self.sock: zmq.Socket | None = None

    def _connect(self) -> zmq.Socket:
        sock = self.context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        return sock

    def request(self, command: str, **args: Any) -> dict[str, Any]:
        """Send one request and return its `result`; raise DaemonUnavailable or RequestFailed."""
        path = ipc_path(self.endpoint)
        if path is not None and not path.exists():
            raise DaemonUnavailable(f"autoretraind is not running (no control socket at {path})")
        request_id = uuid.uuid4().hex[:12]
        body = json.dumps({"id": request_id, "command": command, "args": args}).encode()
        for _ in range(self.retries):
            if self.sock is None:
                self.sock = self._connect()
            self.sock.send(body)
            if self.sock.poll(self.timeout_ms, zmq.POLLIN):
                reply = json.loads(self.sock.recv())
                if reply.get("id") != request_id:
                    continue
                if not reply.get("ok"):
                    raise RequestFailed(str(reply.get("error", "request failed")))
                return dict(reply.get("result") or {})
            self.sock.close(0)  # Lazy Pirate: a REQ socket that timed out cannot be reused
            self.sock = None
        raise DaemonUnavailable(f"no reply from autoretraind at {self.endpoint} after {self.retries} tries "
                                f"of {self.timeout_ms} ms (is it running?)")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(0)
        self.context.term()
