"""Event messages on the bus: one dataclass per topic, checked when encoded and when decoded.

On the wire an event is two frames: the topic, then a JSON object holding the message's fields plus an
envelope (`topic`, `source`: the sending process, `sent_at`: its wall time). Every sender of a topic
sends the same fields because it builds the same dataclass; `encode` refuses a field of the wrong type
(a numpy integer where an `int` belongs, say) and `decode` refuses a frame whose fields are missing,
unknown or mistyped, so a consumer never guesses.

Events are hints (PUB/SUB may drop them); every consumer can resynchronise from durable state
(the ring head, the store, the registry pointer), so nothing may depend on seeing every event.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import time
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union


class Topic(str, enum.Enum):
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


class MessageError(ValueError):
    """A message or frame sequence that is not a valid event."""


@dataclass(frozen=True)
class Message:
    """Base of every event; `TOPIC` names the topic its class is sent on."""

    TOPIC: ClassVar[Topic]


@dataclass(frozen=True)
class SeriesMessage(Message):
    """A message about one symbol's candles of one timeframe."""

    symbol: str
    timeframe: str


@dataclass(frozen=True)
class CandleClosed(SeriesMessage):
    """Ingest stored (and wrote to the ring) candles up to `ts`; `head` is the ring's head after them."""

    TOPIC: ClassVar[Topic] = Topic.CANDLE
    ts: int
    close: float
    count: int
    head: int
    closed_at_ms: int


@dataclass(frozen=True)
class SignalMade(SeriesMessage):
    """Inference recorded the signal of candle `candle_ts` (the store's row, as it was recorded)."""

    TOPIC: ClassVar[Topic] = Topic.SIGNAL
    candle_ts: int
    price: float
    action: str
    confidence: float
    probability_up: float
    model_version: str | None
    model_probability: float | None
    algo_action: str
    algo_probability: float
    model_action: str | None
    model_in_vote: bool
    horizon: int
    components: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutcomeSettled(SeriesMessage):
    """The signal of `candle_ts` was settled at the close of candle `exit_ts` (the store holds the rest)."""

    TOPIC: ClassVar[Topic] = Topic.OUTCOME
    signal_id: int
    candle_ts: int
    exit_ts: int
    action: str
    return_pct: float
    correct: bool | None
    pnl_pct: float | None
    model_correct: bool | None
    model_pnl_pct: float | None


@dataclass(frozen=True)
class RunMessage(SeriesMessage):
    """A message about one retrain run (`run_id`: its row in the store's retrain_runs)."""

    run_id: int


@dataclass(frozen=True)
class TriggeredRun(RunMessage):
    """A run and why it was asked for (what the policy's trigger, or the operator, said)."""

    trigger: str
    reason: str


@dataclass(frozen=True)
class RetrainQueued(TriggeredRun):
    TOPIC: ClassVar[Topic] = Topic.RETRAIN_QUEUED


@dataclass(frozen=True)
class RetrainStarted(TriggeredRun):
    TOPIC: ClassVar[Topic] = Topic.RETRAIN_STARTED


@dataclass(frozen=True)
class RetrainProgress(RunMessage):
    """One training epoch finished (`epochs`: how many the job may run)."""

    TOPIC: ClassVar[Topic] = Topic.RETRAIN_PROGRESS
    epoch: int
    epochs: int
    val_accuracy: float


@dataclass(frozen=True)
class RetrainFinished(RunMessage):
    """The job ended with a verdict: `status` promoted or rejected."""

    TOPIC: ClassVar[Topic] = Topic.RETRAIN_FINISHED
    status: str
    version: str | None
    promoted: bool
    reason: str
    seconds: float


@dataclass(frozen=True)
class RetrainFailed(RunMessage):
    TOPIC: ClassVar[Topic] = Topic.RETRAIN_FAILED
    error: str


@dataclass(frozen=True)
class ModelPromoted(SeriesMessage):
    """The registry pointer names `version` now (None: no model): inference should load it."""

    TOPIC: ClassVar[Topic] = Topic.MODEL_PROMOTED
    version: str | None


@dataclass(frozen=True)
class ModelRefused(SeriesMessage):
    """Inference will not serve `version` (`reason`); `serving` goes on serving."""

    TOPIC: ClassVar[Topic] = Topic.MODEL_REJECTED
    version: str | None
    reason: str
    serving: str | None


@dataclass(frozen=True)
class ModelSwapped(SeriesMessage):
    """Inference serves `version` from candle `from_ts` on (None: the algorithms alone)."""

    TOPIC: ClassVar[Topic] = Topic.MODEL_SWAPPED
    version: str | None
    previous: str | None
    from_ts: int


@dataclass(frozen=True)
class Heartbeat(Message):
    """The supervisor's per-symbol state, every `heartbeat_interval` (what the heartbeat lines say)."""

    TOPIC: ClassVar[Topic] = Topic.HEARTBEAT
    symbols: list[dict[str, Any]]


@dataclass(frozen=True)
class ProcessReport(Message):
    """A child's liveness report: its state, what it chooses to show, and how long since its loop progressed."""

    TOPIC: ClassVar[Topic] = Topic.PROCESS
    name: str
    pid: int
    state: str
    started_at: float
    detail: dict[str, Any]
    stalled_s: float


MESSAGE_TYPES: dict[Topic, type[Message]] = {cls.TOPIC: cls for cls in (
    CandleClosed, SignalMade, OutcomeSettled, RetrainQueued, RetrainStarted, RetrainProgress, RetrainFinished,
    RetrainFailed, ModelPromoted, ModelRefused, ModelSwapped, Heartbeat, ProcessReport)}
_ENVELOPE = ("topic", "source", "sent_at")


@dataclass(frozen=True)
class Envelope:
    """A received event: the message and who sent it when."""

    message: Message
    source: str
    sent_at: float

    @property
    def topic(self) -> Topic:
        return self.message.TOPIC


def _allowed(annotation: Any) -> tuple[type, ...]:
    """The Python types a JSON value of a field may have (bool is never an int or a float)."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return tuple(kind for arg in typing.get_args(annotation) for kind in _allowed(arg))
    if annotation is type(None):
        return (type(None),)
    if annotation is float:
        return (float, int)
    return (origin or annotation,)


_FIELDS: dict[type[Message], dict[str, tuple[type, ...]]] = {
    cls: {name: _allowed(hint) for name, hint in typing.get_type_hints(cls).items() if name != "TOPIC"}
    for cls in MESSAGE_TYPES.values()
}


def _check(cls: type[Message], values: dict[str, Any]) -> None:
    fields = _FIELDS[cls]
    missing = [name for name in fields if name not in values]
    unknown = [name for name in values if name not in fields]
    if missing or unknown:
        raise MessageError(f"{cls.TOPIC.value}: " + "; ".join(
            part for part in (f"missing {', '.join(missing)}" if missing else "",
                              f"unknown {', '.join(unknown)}" if unknown else "") if part))
    for name, allowed in fields.items():
        value = values[name]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in allowed)
            raise MessageError(f"{cls.TOPIC.value}.{name} must be {names}, not {type(value).__name__} ({value!r:.40})")


def encode(message: Message, source: str) -> list[bytes]:
    """The two frames of `message`, after checking every field against its dataclass."""
    cls = type(message)
    if cls not in _FIELDS:
        raise MessageError(f"not a bus message: {cls.__name__}")
    values = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}
    _check(cls, values)
    body = {"topic": cls.TOPIC.value, "source": source, "sent_at": time.time(), **values}
    return [cls.TOPIC.value.encode(), json.dumps(body, separators=(",", ":")).encode()]


def decode(frames: list[bytes]) -> Envelope:
    """The message two frames carry; MessageError for anything that is not exactly a known message."""
    if len(frames) != 2:
        raise MessageError(f"expected 2 frames, got {len(frames)}")
    try:
        topic = Topic(frames[0].decode())
        body = json.loads(frames[1])
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MessageError(f"undecodable event: {type(exc).__name__}: {exc}"[:200]) from None
    if not isinstance(body, dict):
        raise MessageError("event body is not a JSON object")
    if body.get("topic") != topic.value:
        raise MessageError(f"event body says topic {body.get('topic')!r}, its frame {topic.value!r}")
    source, sent_at = body.get("source"), body.get("sent_at")
    if not isinstance(source, str) or not isinstance(sent_at, (int, float)) or isinstance(sent_at, bool):
        raise MessageError(f"{topic.value}: envelope without a source or a sending time")
    cls = MESSAGE_TYPES[topic]
    values = {key: value for key, value in body.items() if key not in _ENVELOPE}
    _check(cls, values)
    return Envelope(cls(**values), source, float(sent_at))
