"""The event bus: an XSUB/XPUB forwarder in the supervisor; children connect a PUB and a SUB to it.

The forwarder's XSUB side subscribes to everything, so the supervisor sees every event that passes
(child liveness reports, training progress) whether or not a child subscribed to it. Every socket
has LINGER 0; contexts are created after spawn, in each process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import zmq

from ipc import messages

log = logging.getLogger("autoretrain.bus")
HIGH_WATER_MARK = 10_000


def bus_endpoints(runtime_dir: Path) -> tuple[str, str]:
    """(endpoint publishers connect to, endpoint subscribers connect to)."""
    return f"ipc://{Path(runtime_dir) / 'bus-in.sock'}", f"ipc://{Path(runtime_dir) / 'bus-out.sock'}"


def _socket(context: zmq.Context, kind: int) -> zmq.Socket:
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    return sock


class EventBus:
    """The forwarder. Call `forward()` when the poller reports its sockets readable."""

    def __init__(self, context: zmq.Context, runtime_dir: Path) -> None:
        self.publish_endpoint, self.subscribe_endpoint = bus_endpoints(runtime_dir)
        self.frontend = _socket(context, zmq.XSUB)  # publishers connect here
        self.backend = _socket(context, zmq.XPUB)  # subscribers connect here
        self.frontend.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
        self.backend.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
        self.frontend.bind(self.publish_endpoint)
        self.backend.bind(self.subscribe_endpoint)
        self.frontend.send(b"\x01")  # subscribe to every topic: the supervisor inspects all events

    def sockets(self) -> tuple[zmq.Socket, zmq.Socket]:
        return self.frontend, self.backend

    def forward_events(self, limit: int = 1000) -> list[tuple[str, dict[str, Any]]]:
        """Move pending events downstream; return them decoded for the supervisor's own use."""
        seen: list[tuple[str, dict[str, Any]]] = []
        for _ in range(limit):
            try:
                frames = self.frontend.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.backend.send_multipart(frames)
            try:
                seen.append(messages.decode(frames))
            except messages.MessageError as exc:
                log.warning("undecodable event on the bus: %s", exc)
        return seen

    def forward_subscriptions(self, limit: int = 1000) -> None:
        """Pass subscribers' (un)subscriptions upstream, as zmq.proxy would."""
        for _ in range(limit):
            try:
                frame = self.backend.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.frontend.send(frame)

    def close(self) -> None:
        self.frontend.close(0)
        self.backend.close(0)


class Publisher:
    """A child's PUB socket on the bus."""

    def __init__(self, context: zmq.Context, endpoint: str, source: str) -> None:
        self.source = source
        self.sock = _socket(context, zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
        self.sock.connect(endpoint)

    def publish(self, topic: str, **payload: Any) -> None:
        try:
            self.sock.send_multipart(messages.encode(topic, payload, self.source), zmq.NOBLOCK)
        except zmq.Again:
            log.debug("event %s dropped: bus queue full", topic)

    def close(self) -> None:
        self.sock.close(0)


class Subscriber:
    """A child's SUB socket on the bus, subscribed to the given topic prefixes."""

    def __init__(self, context: zmq.Context, endpoint: str, topics: tuple[str, ...]) -> None:
        self.sock = _socket(context, zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
        self.sock.connect(endpoint)
        for topic in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, topic.encode())

    def drain(self, limit: int = 10_000) -> list[tuple[str, dict[str, Any]]]:
        """Every event waiting now (without blocking)."""
        out: list[tuple[str, dict[str, Any]]] = []
        for _ in range(limit):
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                out.append(messages.decode(frames))
            except messages.MessageError as exc:
                log.warning("undecodable event on the bus: %s", exc)
        return out

    def close(self) -> None:
        self.sock.close(0)
