"""The event bus: an XSUB/XPUB forwarder in the supervisor; children connect a PUB and a SUB to it.

The forwarder runs in C (zmq.proxy_steerable, in a thread of the supervisor), so a hint crosses it in
tens of microseconds. Its XSUB side subscribes to everything, so every event reaches the forwarder;
the XPUB side sends each subscriber only the topics it asked for. The supervisor itself subscribes like
a child, to what it needs (liveness reports, training and model events): the candle and signal
traffic of the latency path never wakes it. Every socket has LINGER 0; contexts are created after
spawn, in each process.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import zmq

from autoretrain.ipc import messages

log = logging.getLogger("autoretrain.bus")
HIGH_WATER_MARK = 10_000


def bus_endpoints(runtime_dir: Path) -> tuple[str, str]:
    """(endpoint publishers connect to, endpoint subscribers connect to)."""
    return f"ipc://{Path(runtime_dir) / 'bus-in.sock'}", f"ipc://{Path(runtime_dir) / 'bus-out.sock'}"


def receive_events(sock: zmq.Socket, limit: int) -> list[messages.Envelope]:
    """Decoded events waiting on `sock` now, without blocking; other frames (subscriptions) skipped."""
    seen: list[messages.Envelope] = []
    for _ in range(limit):
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            break
        if len(frames) != 2:
            continue
        try:
            seen.append(messages.decode(frames))
        except messages.MessageError as exc:
            log.warning("undecodable event on the bus: %s", exc)
    return seen


def _socket(context: zmq.Context, kind: int) -> zmq.Socket:
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    return sock


class EventBus:
    """The forwarder: `zmq.proxy_steerable` in a background thread (C speed, no GIL)."""

    def __init__(self, context: zmq.Context, runtime_dir: Path) -> None:
        self.publish_endpoint, self.subscribe_endpoint = bus_endpoints(runtime_dir)
        self._control_endpoint = f"inproc://bus-control-{id(self):x}"
        self._context = context
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="event-bus", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        self._control = _socket(context, zmq.PAIR)
        self._control.connect(self._control_endpoint)

    def _run(self) -> None:
        frontend = _socket(self._context, zmq.XSUB)  # publishers connect here
        backend = _socket(self._context, zmq.XPUB)  # subscribers connect here
        control = _socket(self._context, zmq.PAIR)
        try:
            frontend.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
            backend.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
            frontend.bind(self.publish_endpoint)
            backend.bind(self.subscribe_endpoint)
            control.bind(self._control_endpoint)
            frontend.send(b"\x01")  # every topic: XPUB filters per subscriber
        except zmq.ZMQError as exc:
            self._error = exc
            self._ready.set()
            for sock in (frontend, backend, control):
                sock.close(0)
            return
        self._ready.set()
        try:
            zmq.proxy_steerable(frontend, backend, None, control)
        except zmq.ContextTerminated:
            pass
        finally:
            for sock in (frontend, backend, control):
                sock.close(0)

    def close(self) -> None:
        try:
            self._control.send(b"TERMINATE")
        except zmq.ZMQError:
            pass
        self._thread.join(5)
        self._control.close(0)


class Publisher:
    """A child's PUB socket on the bus."""

    def __init__(self, context: zmq.Context, endpoint: str, source: str) -> None:
        self.source = source
        self.sock = _socket(context, zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
        self.sock.connect(endpoint)

    def publish(self, message: messages.Message) -> None:
        try:
            self.sock.send_multipart(messages.encode(message, self.source), zmq.NOBLOCK)
        except zmq.Again:
            log.debug("event %s dropped: bus queue full", message.TOPIC.value)

    def close(self) -> None:
        self.sock.close(0)


class Subscriber:
    """A child's SUB socket on the bus, subscribed to the given topic prefixes."""

    def __init__(self, context: zmq.Context, endpoint: str, topics: tuple[messages.Topic | str, ...]) -> None:
        self.sock = _socket(context, zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
        self.sock.connect(endpoint)
        for topic in topics:  # a Topic, or a prefix such as "retrain."
            self.sock.setsockopt(zmq.SUBSCRIBE, (topic.value if isinstance(topic, messages.Topic) else topic).encode())

    def drain(self, limit: int = 10_000) -> list[messages.Envelope]:
        """Every event waiting now (without blocking)."""
        return receive_events(self.sock, limit)

    def close(self) -> None:
        self.sock.close(0)
