"""The control socket: a ROUTER in the supervisor, JSON requests with an `id`, JSON replies with `ok`.

Request: `{"id": "...", "command": "status", "args": {...}}`. Reply: `{"id": ..., "ok": true,
"result": {...}}` or `{"id": ..., "ok": false, "error": "one line"}`. Malformed JSON, a body that is
not an object, an unknown command or bad arguments get an error reply; a frame larger than
`max_request_bytes` makes libzmq drop the connection (ZMQ_MAXMSGSIZE). Nothing a client sends can
crash the server: anyone in the operators' group can reach the socket, and the supervisor that
answers it is the daemon. Both ways the wire is strict JSON (RFC 8259): a request holding NaN,
Infinity or a number beyond a double is malformed, an `id` is echoed only when it is a short string
or a number, nesting too deep for the decoder is refused, and a reply never holds a bare NaN.

The client is a Lazy Pirate: it polls with a timeout and, on silence, closes and reopens its socket
and resends, a few times, before reporting the daemon unreachable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
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

MAX_ID_CHARS = 256
MAX_COMMAND_CHARS = 64
_INT64_MAX = 2**63 - 1


def _not_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def decode_json(body: bytes | str) -> Any:
    """Strict JSON: no NaN or Infinity, no number beyond a double (json.loads accepts all three)."""
    return json.loads(body, parse_constant=_not_json_constant, parse_float=_finite_float)


def _without_nan(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None (JSON's "no value")."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_nan(item) for item in value]
    return value


def encode_reply(reply: dict[str, Any]) -> bytes:
    """The reply as strict JSON; a NaN in a result (a figure with no data yet) goes out as null."""
    try:
        return json.dumps(reply, allow_nan=False, default=str).encode()
    except ValueError:
        return json.dumps(_without_nan(reply), allow_nan=False, default=str).encode()


def _echoable_id(value: Any) -> bool:
    if value is None or isinstance(value, float):  # decode_json lets only finite floats through
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= _INT64_MAX
    return isinstance(value, str) and len(value) <= MAX_ID_CHARS


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
            try:
                reply = encode_reply(self._reply_to(body))
            except Exception as exc:  # noqa: BLE001 - the last line of defence: no request may stop the server
                log.warning("control request refused: %s: %s", type(exc).__name__, " ".join(str(exc).split())[:200])
                reply = encode_reply({"id": None, "ok": False, "error": f"request refused ({type(exc).__name__})"})
            try:
                self.sock.send_multipart([identity, *envelope, reply], zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                log.debug("could not reply to a control client: %s", exc)
        return handled

    def _reply_to(self, body: bytes) -> dict[str, Any]:
        try:
            request = decode_json(body)
        except RecursionError:
            return {"id": None, "ok": False, "error": "request is nested too deeply"}
        except ValueError:  # UnicodeDecodeError included
            return {"id": None, "ok": False, "error": "request is not valid JSON"}
        if not isinstance(request, dict):
            return {"id": None, "ok": False, "error": "request must be a JSON object"}
        request_id = request.get("id")
        if not _echoable_id(request_id):
            return {"id": None, "ok": False, "error": f"request 'id' must be null, a number or a string of at most "
                                                      f"{MAX_ID_CHARS} characters"}
        command = request.get("command")
        args = request.get("args", {})
        if not isinstance(command, str) or not command:
            return {"id": request_id, "ok": False, "error": "request has no 'command'"}
        if len(command) > MAX_COMMAND_CHARS:
            return {"id": request_id, "ok": False, "error": f"'command' is longer than {MAX_COMMAND_CHARS} characters"}
        if not isinstance(args, dict):
            return {"id": request_id, "ok": False, "error": "'args' must be a JSON object"}
        try:
            return {"id": request_id, "ok": True, "result": self.handler(command, args)}
        except ControlError as exc:
            return {"id": request_id, "ok": False, "error": " ".join(str(exc).split())}
        except Exception as exc:
            log.exception("control command %r failed", command)
            return {"id": request_id, "ok": False,
                    "error": " ".join(f"internal error: {type(exc).__name__}: {exc}".split())}

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
                try:
                    reply = decode_json(self.sock.recv())
                except (ValueError, RecursionError):
                    reply = None
                if not isinstance(reply, dict):
                    raise RequestFailed(f"the reply from {self.endpoint} is not a JSON object (is it autoretraind?)")
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
