"""The supervisor's two HTTP listeners: Prometheus metrics (`metrics.endpoint`) and the dashboard (`dashboard.endpoint`).

Both run on threads of the supervisor and read nothing themselves: every scrape and every page request
asks the supervisor's own control socket (`status`, `history`), so the numbers are those `autoretrainctl
status --json` prints, and the store and registry stay with the arbiter's thread. Neither can change
anything: the dashboard's client sends only read-only commands, and both answer GET (and HEAD) only.
A port that cannot be bound is `EndpointError` at start (one line, exit 78: the configuration names it).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import ConfigError
from autoretrain.daemon.views.dashboard import dashboard_handler
from autoretrain.daemon.views.metrics import metric_families, unavailable_families
from autoretrain.ipc.control import ControlClient, DaemonUnavailable, RequestFailed

log = logging.getLogger("autoretrain.supervisor")
READ_ONLY_COMMANDS = frozenset({"status", "history"})
REQUEST_TIMEOUT_MS = 5000


class EndpointError(ConfigError):
    """A configured HTTP endpoint that cannot listen (address in use, not an address of this host)."""


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """`HOST:PORT` (`[ADDR]:PORT` for IPv6) as (host, port)."""
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def url_of(host: str, port: int, path: str) -> str:
    try:
        shown = f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        shown = host
    return f"http://{shown}:{port}{path}"


class ReadOnlyStatus:
    """A control-socket client for the HTTP threads: one REQ socket behind a lock, read-only commands only."""

    def __init__(self, endpoint: str) -> None:
        self._client = ControlClient(endpoint, timeout_ms=REQUEST_TIMEOUT_MS, retries=1)
        self._lock = threading.Lock()

    def request(self, command: str, **args: Any) -> dict[str, Any]:
        if command not in READ_ONLY_COMMANDS:
            raise RequestFailed(f"{command!r} is not a read-only command")
        with self._lock:
            return self._client.request(command, **args)

    def close(self) -> None:
        with self._lock:
            self._client.close()


class StatusCollector(Collector):
    """Every scrape: one `status` request, turned into metric families."""

    def __init__(self, status: ReadOnlyStatus) -> None:
        self.status = status
        self._last_failure: str | None = None

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = self.status.request("status")
        except (DaemonUnavailable, RequestFailed) as exc:
            if str(exc) != self._last_failure:
                log.warning("metrics: the status request failed: %s", exc)
            self._last_failure = str(exc)
            yield from unavailable_families()
            return
        self._last_failure = None
        yield from metric_families(snapshot)


def _bind_failure(what: str, endpoint: str, exc: OSError) -> EndpointError:
    reason = exc.strerror or str(exc)
    return EndpointError(f"{what} {endpoint}: cannot listen: {reason} (another process may hold the port: choose "
                         f"another in {what}, or null to turn it off)")


class WebServers:
    """The metrics and dashboard listeners, started after the control socket binds, stopped before it closes."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.status: ReadOnlyStatus | None = None
        self.metrics_server: Any = None
        self.dashboard_server: ThreadingHTTPServer | None = None
        self.urls: dict[str, str | None] = {"metrics_url": None, "dashboard_url": None}

    def open(self) -> None:
        """Bind both listeners (whichever is configured); EndpointError if one cannot listen."""
        metrics, dashboard = self.config.metrics.endpoint, self.config.dashboard.endpoint
        if metrics is None and dashboard is None:
            return
        self.status = ReadOnlyStatus(self.config.control_endpoint)
        try:
            if metrics is not None:
                self._open_metrics(metrics)
            if dashboard is not None:
                self._open_dashboard(dashboard)
        except BaseException:
            self.close()
            raise

    def _open_metrics(self, endpoint: str) -> None:
        assert self.status is not None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(StatusCollector(self.status))
        host, port = split_endpoint(endpoint)
        try:
            server, _ = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise _bind_failure("metrics.endpoint", endpoint, exc) from None
        self.metrics_server = server
        self.urls["metrics_url"] = url_of(host, server.server_port, "/metrics")
        log.info("metrics at %s", self.urls["metrics_url"])

    def _open_dashboard(self, endpoint: str) -> None:
        assert self.status is not None
        host, port = split_endpoint(endpoint)
        handler = dashboard_handler(self.status, refresh_seconds=self.config.dashboard.refresh_seconds,
                                    symbols=list(self.config.market.symbols))
        try:
            server_class = _server_class(host)
            server = server_class((host, port), handler)
        except OSError as exc:
            raise _bind_failure("dashboard.endpoint", endpoint, exc) from None
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="dashboard", daemon=True).start()
        self.dashboard_server = server
        self.urls["dashboard_url"] = url_of(host, server.server_port, "/")
        log.info("dashboard at %s", self.urls["dashboard_url"])

    def close(self) -> None:
        for server in (self.metrics_server, self.dashboard_server):
            if server is not None:
                server.shutdown()
                server.server_close()
        self.metrics_server = self.dashboard_server = None
        if self.status is not None:
            self.status.close()
            self.status = None


def _server_class(host: str) -> type[ThreadingHTTPServer]:
    """ThreadingHTTPServer for the address family of `host` (IPv6 when it is an IPv6 address)."""
    import socket

    try:
        is_v6 = ipaddress.ip_address(host).version == 6
    except ValueError:
        is_v6 = False
    if not is_v6:
        return ThreadingHTTPServer

    class V6Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    return V6Server
