"""Tracing across the hops of one submission: the HTTP request's span, the `traceparent` kept
with the outbox row, the relay's producer span and Kafka header, the consumer span that
continues it, and Temporal's interceptor from the client through the workflow to the
activity. Spans are recorded in memory here; the real stack's trace files are checked in
tests/integration/test_observability.py."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any, cast
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from faststream.kafka import KafkaBroker, TestKafkaBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from shared import observability, outbox
from shared.config import Settings
from shared.events import APPLICATION_SUBMIT, Envelope
from shared.http import create_app
from shared.kafka import subscribe
from shared.outbox import OutboxRelay
from shared.runtime import ServiceContext
from shared.topics import APPLICATION_EVENTS, APPLICATIONS_INBOUND
from tests.conftest import load_sample
from tests.temporal_helpers import time_skipping
from tests.unit.test_observability_metrics import FakeBroker, FakeConn, FakePool, outbox_row


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """Record every span in memory. The global provider can be set once per process: reuse
    it when another module set it."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture(autouse=True)
def fresh(spans: InMemorySpanExporter) -> None:
    spans.clear()


def ids(span: Any) -> tuple[int, int]:
    context = span.get_span_context()
    return context.trace_id, context.span_id


def traceparent(trace_id: int, span_id: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def named(header: str | None) -> tuple[str, str]:
    """The trace and span a `traceparent` names (its flags aside)."""
    assert header is not None
    _version, trace_id, span_id, _flags = header.split("-")
    return trace_id, span_id


def finished(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in spans.get_finished_spans() if s.name == name]
    assert found, [s.name for s in spans.get_finished_spans()]
    return found[-1]


async def test_an_outbox_row_keeps_the_traceparent_of_the_span_that_wrote_it(
    spans: InMemorySpanExporter,
) -> None:
    conn = FakeConn([])
    envelope = Envelope(type="review.reminder", application_id=uuid4(), payload={})
    with observability.tracer().start_as_current_span("activity") as span:
        await outbox.enqueue(cast(Any, conn), APPLICATION_EVENTS, envelope)
    assert named(conn.executed[-1][-1]) == named(traceparent(*ids(span)))
    # Outside any span there is nothing to keep.
    await outbox.enqueue(cast(Any, conn), APPLICATION_EVENTS, envelope)
    assert conn.executed[-1][-1] is None


async def test_the_relay_continues_the_stored_trace_and_sends_it_as_a_header(
    spans: InMemorySpanExporter,
) -> None:
    with observability.tracer().start_as_current_span("request") as request:
        stored = observability.current_traceparent()
    trace_id, span_id = ids(request)
    conn = FakeConn([outbox_row("review.reminder", stored), outbox_row("review.escalated")])
    broker = FakeBroker()
    await OutboxRelay(
        cast(Any, FakePool(conn)), cast(Any, broker), Settings(), "x"
    ).publish_pending()

    produced = [s for s in spans.get_finished_spans() if s.kind == SpanKind.PRODUCER]
    assert len(produced) == 2
    continued = produced[0]
    assert continued.name == f"publish {APPLICATION_EVENTS}"
    assert continued.context is not None and continued.parent is not None
    assert (continued.context.trace_id, continued.parent.span_id) == (trace_id, span_id)
    header = broker.sent[0]["headers"]["traceparent"]
    assert named(header) == named(traceparent(trace_id, continued.context.span_id))
    # A row written outside any trace starts its own.
    assert produced[1].parent is None
    assert broker.sent[1]["headers"]["traceparent"] != header


async def test_a_consumer_span_continues_the_kafka_header_with_the_correlation_id(
    spans: InMemorySpanExporter,
) -> None:
    seen: list[tuple[int, str | None]] = []

    async def on_submit(envelope: Envelope, payload: BaseModel) -> None:
        current = trace.get_current_span().get_span_context()
        seen.append((current.trace_id, observability.correlation_id()))

    broker = KafkaBroker()
    subscribe(
        broker,
        Settings(),
        topic=APPLICATIONS_INBOUND,
        group_id="tracing-test",
        handles={APPLICATION_SUBMIT: on_submit},
    )
    with observability.tracer().start_as_current_span("producer") as producer:
        pass
    trace_id, span_id = ids(producer)
    document = load_sample("nb-ungdom-fotball.json")
    envelope = Envelope(type=APPLICATION_SUBMIT, source="portal", payload={"document": document})
    async with TestKafkaBroker(broker) as br:
        await br.publish(
            envelope.model_dump_json().encode(),
            topic=APPLICATIONS_INBOUND,
            headers={"traceparent": traceparent(trace_id, span_id)},
        )
    assert seen == [(trace_id, str(envelope.correlation_id))]
    consumer = finished(spans, f"process {APPLICATIONS_INBOUND}")
    assert consumer.kind == SpanKind.CONSUMER
    assert consumer.parent is not None and consumer.parent.span_id == span_id
    attributes = consumer.attributes or {}
    assert attributes["messaging.consumer.group.name"] == "tracing-test"
    assert attributes["grants.event.type"] == APPLICATION_SUBMIT
    # The correlation id belongs to the message: gone after it.
    assert observability.correlation_id() is None


def test_an_http_request_continues_the_callers_trace(spans: InMemorySpanExporter) -> None:
    ctx = ServiceContext("intake", Settings(), cast(Any, None), cast(Any, None), cast(Any, None))
    app = create_app(ctx, "test")

    @app.post("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str | None]:
        return {"traceparent": observability.current_traceparent()}

    trace_id, span_id = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    client = TestClient(app)
    # Scrapes (and probes) are not traced: they would be a trace every few seconds.
    assert client.get("/metrics").status_code == 200
    assert spans.get_finished_spans() == ()
    answer = client.post("/things/1", headers={"traceparent": traceparent(trace_id, span_id)})
    server = finished(spans, "POST /things/{thing_id}")
    assert server.kind == SpanKind.SERVER
    assert server.context is not None and server.parent is not None
    assert (server.context.trace_id, server.parent.span_id) == (trace_id, span_id)
    # What the route writes to its outbox carries the request's span.
    assert named(answer.json()["traceparent"]) == named(
        traceparent(trace_id, server.context.span_id)
    )


# --- Temporal: client → workflow → activity ---------------------------------------------------


class Work(BaseModel):
    correlation_id: UUID


@activity.defn(name="observability.test_activity")
async def traced_activity(work: Work) -> str | None:
    return observability.correlation_id()


@workflow.defn(name="ObservabilityTestWorkflow")
class TracedWorkflow:
    @workflow.run
    async def run(self, work: Work) -> str | None:
        result: str | None = await workflow.execute_activity(
            traced_activity, work, start_to_close_timeout=timedelta(seconds=10)
        )
        return result


async def test_temporal_carries_the_trace_to_the_activity_and_times_it(
    spans: InMemorySpanExporter,
) -> None:
    env = await time_skipping()
    try:
        client = Client(
            env.client.service_client,
            namespace=env.client.namespace,
            data_converter=env.client.data_converter,
            interceptors=[TracingInterceptor(observability.tracer())],
        )
        labels = {
            "service": observability.service_name(),
            "activity": "observability.test_activity",
            "outcome": "completed",
        }
        before = REGISTRY.get_sample_value("grants_activity_seconds_count", labels) or 0.0
        work = Work(correlation_id=uuid4())
        async with Worker(
            client,
            task_queue="observability-test",
            workflows=[TracedWorkflow],
            activities=[traced_activity],
            interceptors=[observability.ActivityMetrics()],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            with observability.tracer().start_as_current_span("consume") as root:
                result = await client.execute_workflow(
                    TracedWorkflow.run, work, id=f"obs-{uuid4()}", task_queue="observability-test"
                )
    finally:
        await env.shutdown()
    # The activity saw the correlation id of its input on its log lines.
    assert result == str(work.correlation_id)
    after = REGISTRY.get_sample_value("grants_activity_seconds_count", labels)
    assert after == before + 1
    trace_id = root.get_span_context().trace_id
    names = {
        s.name for s in spans.get_finished_spans() if s.context and s.context.trace_id == trace_id
    }
    assert {
        "StartWorkflow:ObservabilityTestWorkflow",
        "RunWorkflow:ObservabilityTestWorkflow",
        "StartActivity:observability.test_activity",
        "RunActivity:observability.test_activity",
    } <= names


# --- exporters --------------------------------------------------------------------------------


def test_the_exporter_is_the_one_configured(tmp_path: Path) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    def exporter(mode: str) -> Any:
        return observability._exporter("intake", Settings(tracing=mode, state_dir=tmp_path))

    assert isinstance(exporter("console"), ConsoleSpanExporter)
    assert isinstance(exporter("otlp"), OTLPSpanExporter)
    file = exporter("file")
    assert isinstance(file, observability.JsonLinesSpanExporter)
    assert observability.trace_file(Settings(state_dir=tmp_path), "intake") == (
        tmp_path / "traces" / "intake.jsonl"
    )


def test_the_trace_file_holds_one_json_object_per_span(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "review.jsonl"
    exporter = observability.JsonLinesSpanExporter(path)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner"):
        pass
    lines = path.read_text(encoding="utf-8").splitlines()
    spans = [json.loads(line) for line in lines]
    assert [s["name"] for s in spans] == ["inner", "outer"]
    assert spans[0]["parent_id"] == spans[1]["context"]["span_id"]
    # Too large a file is moved aside when the exporter starts.
    path.write_bytes(b"x" * (observability.JsonLinesSpanExporter.MAX_BYTES + 1))
    observability.JsonLinesSpanExporter(path)
    assert not path.exists() and path.with_name("review.jsonl.1").exists()
