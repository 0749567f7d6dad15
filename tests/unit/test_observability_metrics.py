"""Prometheus metrics: what the consumer wrapper, the outbox relay, the lifecycle starter, the
notification sender and the HTTP layer count, and the /metrics endpoint that shows it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast
from unittest.mock import MagicMock
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from faststream.kafka import KafkaBroker, TestKafkaBroker
from prometheus_client import REGISTRY
from pydantic import BaseModel
from temporalio.exceptions import WorkflowAlreadyStartedError

from services.intake.lifecycle import start_lifecycle
from shared import observability
from shared.config import Settings
from shared.events import APPLICATION_SUBMIT, APPLICATION_SUBMITTED, ApplicationSubmitted, Envelope
from shared.http import create_app
from shared.kafka import BadMessage, subscribe
from shared.outbox import OutboxRelay
from shared.runtime import ServiceContext
from shared.topics import APPLICATION_EVENTS, APPLICATIONS_INBOUND
from tests.conftest import load_sample
from tests.unit.test_notifications_sender import Mailer, Store, claimed, sender


def value(name: str, **labels: str) -> float:
    labels.setdefault("service", observability.service_name())
    return REGISTRY.get_sample_value(name, labels) or 0.0


def envelope_bytes(event_type: str = APPLICATION_SUBMIT) -> bytes:
    env = Envelope(
        type=event_type,
        source="portal",
        payload={"document": load_sample("nb-ungdom-fotball.json")},
    )
    return env.model_dump_json().encode()


async def _no_sleep(_: float) -> None:
    return None


async def test_the_consumer_counts_what_it_processed_skipped_retried_and_dead_lettered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shared.kafka.asyncio.sleep", MagicMock(side_effect=_no_sleep))
    group = f"metrics-{uuid4().hex[:8]}"
    outcomes = iter(["ok", "bad", "fail", "fail"])

    async def on_submit(envelope: Envelope, payload: BaseModel) -> None:
        match next(outcomes):
            case "bad":
                raise BadMessage("refused")
            case "fail":
                raise ValueError("cannot cope")

    broker = KafkaBroker()
    subscribe(
        broker,
        Settings(kafka_max_attempts=2),
        topic=APPLICATIONS_INBOUND,
        group_id=group,
        handles={APPLICATION_SUBMIT: on_submit},
    )
    labels = {"consumer": group, "topic": APPLICATIONS_INBOUND}
    submit = {**labels, "type": APPLICATION_SUBMIT}
    async with TestKafkaBroker(broker) as br:
        await br.publish(envelope_bytes(), topic=APPLICATIONS_INBOUND)  # processed
        await br.publish(envelope_bytes(), topic=APPLICATIONS_INBOUND)  # rejected
        await br.publish(b"{broken", topic=APPLICATIONS_INBOUND)  # invalid
        for _ in range(2):  # retried once (the NACK raises here), then exhausted
            try:
                await br.publish(envelope_bytes(), topic=APPLICATIONS_INBOUND, partition=0)
            except ValueError:
                pass
        # A known type this consumer does not handle: skipped.
        await br.publish(envelope_bytes(APPLICATION_SUBMITTED), topic=APPLICATIONS_INBOUND)

    consumed = "grants_events_consumed_total"
    assert value(consumed, **submit, outcome="processed") == 1
    assert value(consumed, **submit, outcome="retried") == 1
    # application.submitted with an inbound payload is invalid, so dead-lettered, not skipped.
    dead = "grants_events_dead_lettered_total"
    assert value(dead, **labels, reason_kind="rejected") == 1
    assert value(dead, **labels, reason_kind="invalid") == 2
    assert value(dead, **labels, reason_kind="exhausted") == 1


async def test_a_type_the_consumer_does_not_handle_is_counted_as_skipped() -> None:
    group = f"metrics-{uuid4().hex[:8]}"
    broker = KafkaBroker()

    async def never(envelope: Envelope, payload: BaseModel) -> None:
        raise AssertionError("not handled here")

    subscribe(
        broker,
        Settings(),
        topic=APPLICATIONS_INBOUND,
        group_id=group,
        handles={"report.submit": never},
    )
    async with TestKafkaBroker(broker) as br:
        await br.publish(envelope_bytes(), topic=APPLICATIONS_INBOUND)
    assert (
        value(
            "grants_events_consumed_total",
            consumer=group,
            topic=APPLICATIONS_INBOUND,
            type=APPLICATION_SUBMIT,
            outcome="skipped",
        )
        == 1
    )


class FakeConn:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.executed: list[tuple[Any, ...]] = []

    async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        rows, self.rows = self.rows, []
        return rows

    async def execute(self, query: str, *args: Any) -> str:
        self.executed.append((query, *args))
        return "UPDATE"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield


class FakePool:
    def __init__(self, conn: FakeConn) -> None:
        self.conn = conn

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConn]:
        yield self.conn


class FakeBroker:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def publish(self, body: bytes, **kwargs: Any) -> asyncio.Future[None]:
        # Like the real producer with no_confirm: queued now, acknowledged by the future.
        self.sent.append({"body": body, **kwargs})
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ack.set_result(None)
        return ack


def outbox_row(event_type: str, traceparent: str | None = None, row_id: int = 1) -> dict[str, Any]:
    envelope = Envelope(type=event_type, application_id=uuid4(), payload={})
    return {
        "id": row_id,
        "topic": APPLICATION_EVENTS,
        "key": str(envelope.application_id),
        "event_type": event_type,
        "envelope": envelope.model_dump_json(),
        "traceparent": traceparent,
    }


async def test_the_relay_counts_what_kafka_acknowledged() -> None:
    event_type = "review.reminder"
    before = value("grants_events_published_total", topic=APPLICATION_EVENTS, type=event_type)
    conn = FakeConn([outbox_row(event_type, row_id=1), outbox_row(event_type, row_id=2)])
    broker = FakeBroker()
    relay = OutboxRelay(cast(Any, FakePool(conn)), cast(Any, broker), Settings(), "review")
    assert await relay.publish_pending() == 2
    after = value("grants_events_published_total", topic=APPLICATION_EVENTS, type=event_type)
    assert after - before == 2
    assert [s["headers"]["content-type"] for s in broker.sent] == ["application/json"] * 2


class FakeTemporal:
    def __init__(self, already: bool) -> None:
        self.already = already

    async def start_workflow(self, *args: Any, **kwargs: Any) -> None:
        if self.already:
            raise WorkflowAlreadyStartedError(kwargs["id"], "ApplicationLifecycle")


async def test_lifecycle_starts_are_counted_by_outcome() -> None:
    event = ApplicationSubmitted(
        application_id=uuid4(),
        received_at="2026-11-22T10:00:00Z",
        channel="http",
        document=load_sample("nb-ungdom-fotball.json"),
    )

    def starts(outcome: str) -> float:
        return value(
            "grants_workflow_starts_total", workflow="ApplicationLifecycle", outcome=outcome
        )

    started, already = starts("started"), starts("already_running")
    assert await start_lifecycle(cast(Any, FakeTemporal(False)), event, uuid4())
    assert not await start_lifecycle(cast(Any, FakeTemporal(True)), event, uuid4())
    assert starts("started") == started + 1
    assert starts("already_running") == already + 1


async def test_notifications_are_counted_by_channel_and_status() -> None:
    def count(status: str) -> float:
        return value("grants_notifications_total", channel="email", status=status)

    sent, retried, failed = count("sent"), count("retried"), count("failed")
    from services.notifications.mail import SendError

    await sender(Store(claimed(1)), Mailer()).send_due()
    await sender(Store(claimed(2)), Mailer(fail=SendError("busy", permanent=False))).send_due()
    await sender(
        Store(claimed(3)), Mailer(fail=SendError("no such user", permanent=True))
    ).send_due()
    assert (count("sent"), count("retried"), count("failed")) == (sent + 1, retried + 1, failed + 1)


def stub_context(service: str = "intake") -> ServiceContext:
    return ServiceContext(service, Settings(), cast(Any, None), cast(Any, None), cast(Any, None))


@pytest.fixture
def http() -> TestClient:
    app = create_app(stub_context(), "test")

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str | None]:
        return {"correlation_id": observability.correlation_id()}

    return TestClient(app)


def test_http_requests_are_counted_by_route_template_and_correlated(http: TestClient) -> None:
    labels = {"method": "GET", "route": "/things/{thing_id}", "status": "200"}
    before = value("grants_http_requests_total", **labels)
    given = str(uuid4())
    answer = http.get("/things/1", headers={"X-Correlation-Id": given})
    assert answer.json() == {"correlation_id": given}
    assert answer.headers["x-correlation-id"] == given
    made = http.get("/things/2")
    assert made.json()["correlation_id"] == made.headers["x-correlation-id"]
    assert value("grants_http_requests_total", **labels) == before + 2
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    before = value("grants_http_requests_total", **unmatched)
    assert http.get(f"/nothing/{uuid4()}").status_code == 404
    assert value("grants_http_requests_total", **unmatched) == before + 1


def test_metrics_are_served_in_the_prometheus_format(http: TestClient) -> None:
    http.get("/things/3")
    answer = http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    for name in (
        "grants_events_consumed_total",
        "grants_events_published_total",
        "grants_events_dead_lettered_total",
        "grants_workflow_starts_total",
        "grants_activity_seconds",
        "grants_notifications_total",
        "grants_http_requests_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert 'route="/things/{thing_id}"' in text
    # No ids in labels.
    assert "/things/3" not in text


def test_the_asyncapi_document_is_served(http: TestClient) -> None:
    from shared import asyncapi

    answer = http.get("/asyncapi.json")
    assert answer.status_code == 200
    assert answer.text == (asyncapi.DOCS_DIR / "intake.json").read_text(encoding="utf-8")
    assert json.loads(answer.text)["info"]["title"] == "Barents Grants intake"
