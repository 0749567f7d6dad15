"""The consumer wrapper: bad messages are dead-lettered with the reason, handler failures are
retried then dead-lettered, and the consumer keeps consuming. Uses FastStream's in-memory
TestKafkaBroker; the same behaviour on the real broker is in tests/integration."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import MagicMock

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from pydantic import BaseModel

from shared.config import Settings
from shared.events import APPLICATION_SUBMIT, Envelope
from shared.kafka import BadMessage, decode, subscribe
from shared.topics import APPLICATIONS_INBOUND, dead_letter_topic
from tests.conftest import load_sample


def envelope_bytes(**overrides: Any) -> bytes:
    doc = load_sample("nb-ungdom-fotball.json")
    env = Envelope(type=APPLICATION_SUBMIT, source="portal", payload={"document": doc})
    data = json.loads(env.model_dump_json())
    data.update(overrides)
    return json.dumps(data, ensure_ascii=False).encode()


def test_decode_accepts_a_valid_envelope() -> None:
    envelope, payload = decode(envelope_bytes(), 1_000_000)
    assert envelope.type == APPLICATION_SUBMIT
    assert payload.model_dump()["document"]["external_ref"] == "portal-2027-0042"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xc3\x28", "not valid UTF-8"),
        (b'{"type": "x\\u0000"}', "NUL"),
        (b"[]", "invalid envelope"),
        (envelope_bytes(type="application.teleport"), "unknown event type"),
        (envelope_bytes(version=2), "version 2"),
        (envelope_bytes(payload={"document": {}}), "payload.document.title: Field required"),
        (envelope_bytes(event_id="not-a-uuid"), "event_id"),
        (b"x" * 2000, "exceeds the limit of 1000"),
    ],
)
def test_decode_names_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(BadMessage, match=reason):
        decode(raw, 1000 if len(raw) == 2000 else 1_000_000)


@pytest.fixture
def settings() -> Settings:
    return Settings(kafka_max_attempts=3)


async def test_a_bad_message_is_dead_lettered_and_the_next_one_processed(
    settings: Settings,
) -> None:
    broker = KafkaBroker()
    seen: list[str] = []
    dead: list[dict[str, Any]] = []

    async def on_submit(envelope: Envelope, payload: BaseModel) -> None:
        seen.append(str(envelope.event_id))

    subscribe(
        broker,
        settings,
        topic=APPLICATIONS_INBOUND,
        group_id="test",
        handles={APPLICATION_SUBMIT: on_submit},
    )

    @broker.subscriber(dead_letter_topic(APPLICATIONS_INBOUND))
    async def dlq(body: dict[str, Any]) -> None:
        dead.append(body)

    async with TestKafkaBroker(broker) as br:
        await br.publish(b"{broken", topic=APPLICATIONS_INBOUND)
        good = envelope_bytes()
        await br.publish(good, topic=APPLICATIONS_INBOUND)

    assert len(dead) == 1
    assert dead[0]["reason"].startswith("invalid envelope")
    assert dead[0]["original_value"] == "{broken"
    assert dead[0]["consumer"] == "test"
    assert seen == [json.loads(good)["event_id"]]


async def test_a_failing_handler_is_dead_lettered_after_the_attempt_limit(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shared.kafka.asyncio.sleep", MagicMock(side_effect=_no_sleep))
    broker = KafkaBroker()
    calls = 0
    dead: list[dict[str, Any]] = []

    async def on_submit(envelope: Envelope, payload: BaseModel) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("the handler cannot cope")

    subscribe(
        broker,
        settings,
        topic=APPLICATIONS_INBOUND,
        group_id="test",
        handles={APPLICATION_SUBMIT: on_submit},
    )

    @broker.subscriber(dead_letter_topic(APPLICATIONS_INBOUND))
    async def dlq(body: dict[str, Any]) -> None:
        dead.append(body)

    async with TestKafkaBroker(broker) as br:
        # The in-memory broker does not redeliver on NACK, so deliver the same record again
        # the way the real broker would after a seek.
        for _ in range(settings.kafka_max_attempts):
            try:
                await br.publish(envelope_bytes(), topic=APPLICATIONS_INBOUND, partition=0)
            except ValueError:
                pass

    assert calls == settings.kafka_max_attempts
    assert len(dead) == 1
    assert dead[0]["reason"] == "the handler cannot cope"
    assert dead[0]["attempts"] == settings.kafka_max_attempts


async def _no_sleep(_: float) -> None:
    return None
