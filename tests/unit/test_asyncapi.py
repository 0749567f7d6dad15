"""The event catalog: every service's AsyncAPI document is generated from its own broker, the
committed documents (docs/asyncapi/) are current, and every event type is in them."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from pydantic import BaseModel, ConfigDict, TypeAdapter

from shared import asyncapi
from shared.config import SERVICE_NAMES
from shared.events import APPLICATION_SUBMITTED, PAYLOADS, ApplicationSubmitted
from shared.kafka import dead_letter_record, truncate_original
from shared.topics import TOPICS

REGENERATE = "stale: run `.venv/bin/python -m shared.asyncapi --write` and commit docs/asyncapi/"


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {service: asyncapi.document(service) for service in SERVICE_NAMES}


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_the_committed_document_is_current(service: str) -> None:
    committed = asyncapi.DOCS_DIR / f"{service}.json"
    assert committed.exists(), REGENERATE
    assert committed.read_text(encoding="utf-8") == asyncapi.render(service), REGENERATE


@pytest.fixture
def changed_submitted_model() -> Iterator[None]:
    """`application.submitted` with one more field, as a developer might change it."""

    class Changed(ApplicationSubmitted):
        model_config = ConfigDict(extra="forbid", title="ApplicationSubmitted")
        priority: int = 0

    key = (APPLICATION_SUBMITTED, 1)
    original = PAYLOADS[key]
    PAYLOADS[key] = Changed
    asyncapi.event_envelope.cache_clear()
    try:
        yield
    finally:
        PAYLOADS[key] = original
        asyncapi.event_envelope.cache_clear()


def test_changing_a_message_model_makes_the_committed_document_stale(
    changed_submitted_model: None,
) -> None:
    committed = (asyncapi.DOCS_DIR / "intake.json").read_text(encoding="utf-8")
    regenerated = asyncapi.render("intake")
    assert regenerated != committed
    assert '"priority"' in regenerated
    assert asyncapi.main(["--check", "intake"]) == 1


def test_the_check_passes_on_the_committed_documents() -> None:
    assert asyncapi.main(["--check"]) == 0


def _event_types(doc: dict[str, Any]) -> set[tuple[str, int]]:
    found = set()
    for schema in doc["components"]["schemas"].values():
        props = schema.get("properties", {})
        if "const" in props.get("type", {}) and "const" in props.get("version", {}):
            found.add((props["type"]["const"], props["version"]["const"]))
    return found


def test_every_event_type_is_in_some_document(documents: dict[str, dict[str, Any]]) -> None:
    found = set().union(*(_event_types(doc) for doc in documents.values()))
    assert set(PAYLOADS) - found == set()


def test_every_event_type_has_one_topic() -> None:
    placed = [key for keys in asyncapi.TOPIC_EVENTS.values() for key in keys]
    assert sorted(placed) == sorted(PAYLOADS)
    assert set(asyncapi.TOPIC_EVENTS) == set(TOPICS)


def test_every_consumer_group_is_a_channel_with_its_message_schema(
    documents: dict[str, dict[str, Any]],
) -> None:
    intake = documents["intake"]
    for group in ("intake.inbound", "intake.lifecycle", "intake.timeline", "intake.register"):
        channel = intake["channels"][group]
        assert "Consumer group" in channel["description"]
        assert intake["operations"][group]["action"] == "receive"
        # Dead letters: a publisher per consumer group, with the dead-letter record's schema.
        assert intake["operations"][f"{group}:dead-letters"]["action"] == "send"
    lifecycle = intake["channels"]["intake.lifecycle"]
    assert lifecycle["address"] == "grants.application-events"
    assert "`application.submitted` v1" in lifecycle["description"]
    messages = intake["components"]["messages"]
    assert messages["intake.lifecycle:SubscribeMessage"]["payload"] == {
        "$ref": "#/components/schemas/ApplicationSubmittedV1Envelope"
    }
    inbound = intake["components"]["schemas"]["intake.inbound:Message:Payload"]
    assert inbound["discriminator"] == "type"
    assert len(inbound["oneOf"]) == 4
    for service, doc in documents.items():
        assert "EmptyPayload" not in doc["components"]["schemas"], service
        for name, message in doc["components"]["messages"].items():
            assert message["payload"], (service, name)


def test_publications_are_documented(documents: dict[str, dict[str, Any]]) -> None:
    payments = documents["payments"]
    bank = payments["channels"]["payments:grants.bank.payment-requests"]
    assert bank["address"] == "grants.bank.payment-requests"
    assert payments["operations"]["payments:grants.bank.payment-requests"]["action"] == "send"
    review = documents["review"]["channels"]["review:grants.application-events"]
    assert "`decision.made`" in review["description"]
    assert "notifications:grants.application-events" not in documents["notifications"]["channels"]


def test_generation_overwrites_nothing() -> None:
    """FastStream warns when two channels, operations or schemas share a name: a name
    collision would silently drop one of them from the document."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for service in SERVICE_NAMES:
            asyncapi.document(service)
    assert [str(w.message) for w in caught if "Overwrit" in str(w.message)] == []


def test_no_two_models_share_a_schema_name() -> None:
    """Schemas are keyed by model name in the document: two different models of one name
    would overwrite each other. Pydantic qualifies such names with their module."""
    every = asyncapi.message_type(PAYLOADS)
    schema = TypeAdapter(every).json_schema()
    names = list(schema.get("$defs", {}))
    assert [n for n in names if "__" in n] == []


def test_the_dead_letter_record_matches_its_documented_schema() -> None:
    class Record:
        topic = "grants.applications.inbound"
        key = b"k"
        partition = 3
        offset = 42
        value = b"\xff not utf-8"

    record = dead_letter_record(Record(), "bad", "BadMessage", 1, "intake.inbound")
    asyncapi.DeadLetter.model_validate(record)
    Record.value = b'{"x": 1}'
    asyncapi.DeadLetter.model_validate(
        truncate_original(dead_letter_record(Record(), "r", "E", 5, "g"), Record.value)
    )


def test_the_document_is_deterministic_json() -> None:
    text = asyncapi.render("review")
    assert text == asyncapi.render("review")
    doc = json.loads(text)
    assert doc["asyncapi"].startswith("3.")
    assert doc["info"]["title"] == "Barents Grants review"
    assert text == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_an_envelope_model_validates_what_the_services_send() -> None:
    model = asyncapi.event_envelope(APPLICATION_SUBMITTED, 1)
    assert issubclass(model, BaseModel)
    fields = set(model.model_fields)
    assert {"event_id", "type", "version", "correlation_id", "payload"} <= fields
    with pytest.raises(ValueError):
        model.model_validate(
            {"type": "application.screened", "version": 1, "payload": {}, "event_id": uuid4()}
        )
