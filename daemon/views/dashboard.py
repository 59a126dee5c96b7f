"""The read-only web dashboard: one page, its script and style (static/, no CDN), and two JSON routes.

    GET /                      the page (static/dashboard.html)
    GET /static/NAME           dashboard.js, dashboard.css
    GET /api/status            exactly what `autoretrainctl status --json` prints
    GET /api/history?symbol=S  the chart data of symbol S (views.history, the same as `report`)

The page fetches both every `dashboard.refresh_seconds` and draws its charts as SVG in the browser; it
works offline. Every other path is 404, every other method 405: nothing here changes state (retrain,
promote and rollback stay with `autoretrainctl`).
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from autoretrain.ipc.control import DaemonUnavailable, RequestFailed

log = logging.getLogger("autoretrain.supervisor")
STATIC = {"dashboard.html": "text/html; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8",
          "dashboard.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class StatusSource(Protocol):
    def request(self, command: str, **args: Any) -> dict[str, Any]: ...


def static_file(name: str) -> bytes:
    return resources.files("autoretrain.daemon.views").joinpath("static", name).read_bytes()


def dashboard_handler(status: StatusSource, *, refresh_seconds: float, symbols: list[str]) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to `status` (the supervisor's read-only control client)."""

    class DashboardHandler(BaseHTTPRequestHandler):
        server_version = "autoretrain-dashboard"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("dashboard %s: " + format, self.address_string(), *args)

        def _send(self, code: int, body: bytes, content_type: str, *, cache: bool = False) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "max-age=60" if cache else "no-store")
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, code: int, value: Any) -> None:
            self._send(code, json.dumps(value, allow_nan=False).encode(), "application/json")

        def _error(self, code: int, message: str) -> None:
            self._json(code, {"error": message})

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            if path in ("/", "/index.html"):
                page = static_file("dashboard.html").replace(b"{{REFRESH_SECONDS}}", str(refresh_seconds).encode())
                self._send(HTTPStatus.OK, page, STATIC["dashboard.html"])
            elif path.startswith("/static/") and path[len("/static/"):] in STATIC:
                name = path[len("/static/"):]
                self._send(HTTPStatus.OK, static_file(name), STATIC[name], cache=True)
            elif path == "/api/status":
                self._answer("status", {})
            elif path == "/api/history":
                query = parse_qs(parts.query)
                symbol = (query.get("symbol") or [symbols[0] if symbols else ""])[0]
                self._answer("history", {"symbol": symbol})
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such page: {path[:200]}")

        do_HEAD = do_GET

        def _answer(self, command: str, args: dict[str, Any]) -> None:
            try:
                self._json(HTTPStatus.OK, status.request(command, **args))
            except RequestFailed as exc:
                self._error(HTTPStatus.BAD_REQUEST, str(exc))
            except DaemonUnavailable as exc:
                self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))

        def _not_allowed(self) -> None:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "the dashboard is read-only: use autoretrainctl to change things")

        do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

    return DashboardHandler
