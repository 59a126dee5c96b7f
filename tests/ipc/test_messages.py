"""Typed bus messages: every topic has one dataclass, and a message is checked when encoded and decoded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autoretrain.ipc import messages
from autoretrain.ipc.messages import MESSAGE_TYPES, MessageError, Topic, decode, encode

EXAMPLES: list[messages.Message] = [
    messages.CandleClosed(symbol="BTC/USDT", timeframe="1h", ts=1_704_067_200_000, close=42_000.5, count=1, head=7,
                          closed_at_ms=1_704_070_800_000),
    messages.SignalMade(symbol="BTC/USDT", timeframe="1h", candle_ts=1, price=1.5, action="BUY", confidence=0.6,
                        probability_up=0.6, model_version=None, model_probability=None, algo_action="HOLD",
                        algo_probability=0.5, model_action=None, model_in_vote=False, horizon=1,
                        components={"rsi": 0.25, "macd": None}),
    messages.OutcomeSettled(symbol="BTC/USDT", timeframe="1h", signal_id=3, candle_ts=1, exit_ts=2, action="SELL",
                            return_pct=-5.0, correct=True, pnl_pct=4.8, model_correct=None, model_pnl_pct=None),
    messages.RetrainQueued(symbol="BTC/USDT", timeframe="1h", run_id=1, trigger="manual", reason="asked"),
    messages.RetrainStarted(symbol="BTC/USDT", timeframe="1h", run_id=1, trigger="manual", reason="asked"),
    messages.RetrainProgress(symbol="BTC/USDT", timeframe="1h", run_id=1, epoch=3, epochs=20, val_accuracy=0.55),
    messages.RetrainFinished(symbol="BTC/USDT", timeframe="1h", run_id=1, status="rejected", version="v0002",
                             promoted=False, reason="does not beat", seconds=3.2),
    messages.RetrainFailed(symbol="BTC/USDT", timeframe="1h", run_id=1, error="only 3 candles"),
    messages.ModelPromoted(symbol="BTC/USDT", timeframe="1h", version="v0002"),
    messages.ModelRefused(symbol="BTC/USDT", timeframe="1h", version="v0003", reason="sha256", serving="v0002"),
    messages.ModelSwapped(symbol="BTC/USDT", timeframe="1h", version="v0002", previous=None, from_ts=5),
    messages.Heartbeat(symbols=[{"symbol": "BTC/USDT", "candles": 3}]),
    messages.ProcessReport(name="ingest", pid=12, state="ready", started_at=1.5, detail={"symbols": 1}, stalled_s=0.1),
]


def test_every_topic_has_its_message_and_every_example_round_trips() -> None:
    assert set(MESSAGE_TYPES) == set(Topic)
    assert {type(message) for message in EXAMPLES} == set(MESSAGE_TYPES.values())
    for message in EXAMPLES:
        frames = encode(message, "test")
        assert frames[0] == message.TOPIC.value.encode()
        received = decode(frames)
        assert received.message == message and received.source == "test" and received.sent_at > 0
        assert received.topic is message.TOPIC


@pytest.mark.parametrize("field, value, problem", [
    ("ts", np.int64(5), "candle.ts must be int, not int64"),
    ("ts", True, "candle.ts must be int, not bool"),
    ("symbol", None, "candle.symbol must be str, not NoneType"),
    ("close", "42", "candle.close must be float or int, not str"),
])
def test_a_sender_with_a_wrong_field_type_is_refused(field: str, value: object, problem: str) -> None:
    fields = {**EXAMPLES[0].__dict__, field: value}
    with pytest.raises(MessageError, match=problem):
        encode(messages.CandleClosed(**fields), "ingest")


def frames_of(body: object, topic: str = "candle") -> list[bytes]:
    return [topic.encode(), json.dumps(body).encode() if not isinstance(body, bytes) else body]


def candle_body(**changes: object) -> dict[str, object]:
    body = json.loads(encode(EXAMPLES[0], "ingest")[1])
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}


@pytest.mark.parametrize("frames, problem", [
    ([b"candle"], "expected 2 frames"),
    (frames_of(b"{not json"), "undecodable"),
    (frames_of(b"[" * 100_000 + b"]" * 100_000), "undecodable"),  # nested deeper than the parser recurses
    (frames_of([1, 2]), "not a JSON object"),
    ([b"nonsense", b"{}"], "undecodable"),
    (frames_of(candle_body(topic="signal")), "says topic 'signal'"),
    (frames_of(candle_body(source=...)), "envelope without a source"),
    (frames_of(candle_body(head=...)), "candle: missing head"),
    (frames_of(candle_body(extra=1)), "candle: unknown extra"),
    (frames_of(candle_body(count="1")), "candle.count must be int, not str"),
    (frames_of(candle_body(close=None)), "candle.close must be float or int, not NoneType"),
])
def test_a_bad_frame_is_refused_with_the_reason(frames: list[bytes], problem: str) -> None:
    with pytest.raises(MessageError, match=problem):
        decode(frames)
