"""Event messages on the bus: a topic frame and a JSON frame.

Events are hints (PUB/SUB may drop them); every consumer can resynchronise from durable state
(the ring head, the store, the registry pointer), so nothing may depend on seeing every event.
"""

from __future__ import annotations

import json
import time
from typing import Any

CANDLE = "candle"
SIGNAL = "signal"
OUTCOME = "outcome"
RETRAIN_QUEUED = "retrain.queued"
RETRAIN_STARTED = "retrain.started"
RETRAIN_PROGRESS = "retrain.progress"
RETRAIN_FINISHED = "retrain.finished"
RETRAIN_FAILED = "retrain.failed"
MODEL_PROMOTED = "model.promoted"
MODEL_REJECTED = "model.rejected"
MODEL_SWAPPED = "model.swapped"
HEARTBEAT = "heartbeat"
PROCESS = "process"  # a child's periodic liveness and state report

TOPICS = (CANDLE, SIGNAL, OUTCOME, RETRAIN_QUEUED, RETRAIN_STARTED, RETRAIN_PROGRESS, RETRAIN_FINISHED,
          RETRAIN_FAILED, MODEL_PROMOTED, MODEL_REJECTED, MODEL_SWAPPED, HEARTBEAT, PROCESS)


class MessageError(ValueError):
    """A frame sequence that is not a valid event."""


def encode(topic: str, payload: dict[str, Any], source: str) -> list[bytes]:
    body = {"topic": topic, "source": source, "sent_at": time.time(), **payload}
    return [topic.encode(), json.dumps(body, separators=(",", ":"), default=str).encode()]


def decode(frames: list[bytes]) -> tuple[str, dict[str, Any]]:
    if len(frames) != 2:
        raise MessageError(f"expected 2 frames, got {len(frames)}")
    try:
        topic = frames[0].decode()
        payload = json.loads(frames[1])
    except (UnicodeDecodeError, ValueError) as exc:
        raise MessageError(f"undecodable event: {exc}") from None
    if not isinstance(payload, dict):
        raise MessageError("event body is not a JSON object")
    return topic, payload
