"""What every service tells its operators: Prometheus metrics, OpenTelemetry traces and
structured logs.

**Metrics** (`GET /metrics` on every service, Prometheus text format). Labels are names of
bounded sets only — services, consumer groups, topics, event types, activities, channels,
routes — never ids, so a metric's cardinality does not grow with the applications:

- `grants_events_consumed_total{service,consumer,topic,type,outcome}` — outcome `processed`,
  `skipped` (a type the consumer does not handle) or `retried` (failed, delivered again);
- `grants_events_published_total{service,topic,type}` — sent by the outbox relay;
- `grants_events_dead_lettered_total{service,consumer,topic,reason_kind}` — `invalid` (could
  not be decoded), `rejected` (the handler refused it), `unauthenticated`, `forbidden`,
  `exhausted` (failed `kafka_max_attempts` times);
- `grants_workflow_starts_total{service,workflow,outcome}` — `started`, `already_running`;
- `grants_activity_seconds{service,activity,outcome}` — a histogram of every Temporal
  activity this service's worker ran, `completed`, `failed` or `cancelled`;
- `grants_notifications_total{service,channel,status}` — `sent`, `failed`, `retried`;
- `grants_http_requests_total{service,method,route,status}` and
  `grants_http_request_seconds{service,method,route}`;
- `grants_service_info{service,tracing,log_format}` — what the process runs with.

**Traces**: one trace per submission, from the HTTP request (or the Kafka message) through the
outbox (each row keeps the W3C `traceparent` of the span that wrote it; the relay sends it as a
Kafka header), every consumer, the Temporal client and workers (Temporal's `TracingInterceptor`
carries the context in workflow and activity headers), to the activities. Recording is off by
default (`GRANTS_TRACING=off`); `console`, `otlp` or `file` turn it on.

**Logs**: one JSON object per line (`GRANTS_LOG_FORMAT=json`, the default; `text` for reading
by eye) with time, level, service, logger, message, and the correlation id and trace ids of
the event or request being handled. Log messages name applications, deliveries and events by
id: never names, addresses or phone numbers.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from shared.config import Settings

# The service this process runs (one per process); set once at start-up by shared.runtime.
_service = "unknown"


def set_service(name: str) -> None:
    global _service
    _service = name


def service_name() -> str:
    return _service


# --- metrics ---------------------------------------------------------------------------------

# `_created` series double every counter's series for little use.
disable_created_metrics()  # type: ignore[no-untyped-call]

EVENTS_CONSUMED = Counter(
    "grants_events_consumed",
    "Kafka events a consumer group handled: processed, skipped (a type it does not handle) "
    "or retried (failed, to be delivered again).",
    ["service", "consumer", "topic", "type", "outcome"],
)
EVENTS_PUBLISHED = Counter(
    "grants_events_published",
    "Events the outbox relay published to Kafka (acknowledged by the broker).",
    ["service", "topic", "type"],
)
EVENTS_DEAD_LETTERED = Counter(
    "grants_events_dead_lettered",
    "Kafka messages a consumer group sent to the dead-letter topic, by kind of reason.",
    ["service", "consumer", "topic", "reason_kind"],
)
WORKFLOW_STARTS = Counter(
    "grants_workflow_starts",
    "Workflow starts: started, or already_running (a redelivered event started nothing).",
    ["service", "workflow", "outcome"],
)
ACTIVITY_SECONDS = Histogram(
    "grants_activity_seconds",
    "Time the service's Temporal worker spent in each activity execution.",
    ["service", "activity", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
NOTIFICATIONS = Counter(
    "grants_notifications",
    "Notification send attempts by channel and what came of them: sent, failed (for good) "
    "or retried (to be sent again later).",
    ["service", "channel", "status"],
)
HTTP_REQUESTS = Counter(
    "grants_http_requests",
    "HTTP requests answered, by route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "grants_http_request_seconds",
    "Time to answer HTTP requests, by route template.",
    ["service", "method", "route"],
)
SERVICE_INFO = Info("grants_service", "What this process runs with.")

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


def consumed(consumer: str, topic: str, event_type: str, outcome: str) -> None:
    EVENTS_CONSUMED.labels(_service, consumer, topic, event_type, outcome).inc()


def published(topic: str, event_type: str, count: int = 1) -> None:
    EVENTS_PUBLISHED.labels(_service, topic, event_type).inc(count)


def dead_lettered(consumer: str, topic: str, reason_kind: str) -> None:
    EVENTS_DEAD_LETTERED.labels(_service, consumer, topic, reason_kind).inc()


def workflow_started(workflow: str, started: bool) -> None:
    WORKFLOW_STARTS.labels(_service, workflow, "started" if started else "already_running").inc()


def notification(channel: str, status: str) -> None:
    NOTIFICATIONS.labels(_service, channel, status).inc()


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(_service, method, route, str(status)).inc()
    HTTP_SECONDS.labels(_service, method, route).observe(seconds)


def render_metrics() -> bytes:
    return generate_latest(REGISTRY)


class ActivityMetrics(Interceptor):
    """Temporal worker interceptor: `grants_activity_seconds` for every activity execution,
    and the correlation id of its input (when it carries one) on its log lines."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInbound(next)


class _ActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = activity.info().activity_type
        token = set_correlation_id(_correlation_of(input.args))
        outcome = "failed"
        start = time.perf_counter()
        try:
            result = await super().execute_activity(input)
            outcome = "completed"
            return result
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                outcome = "cancelled"
            raise
        finally:
            ACTIVITY_SECONDS.labels(_service, name, outcome).observe(time.perf_counter() - start)
            reset_correlation_id(token)


def _correlation_of(args: Sequence[Any]) -> str | None:
    for arg in args:
        value = getattr(arg, "correlation_id", None)
        if isinstance(value, UUID | str) and value:
            return str(value)
    return None


# --- tracing ---------------------------------------------------------------------------------

TRACER_NAME = "barents_grants"
_TRACE_CONTEXT = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None  # once tracing is set up


def tracer() -> trace.Tracer:
    """The tracer every span of ours is made with (a no-op one while tracing is off)."""
    return trace.get_tracer(TRACER_NAME)


def tracing_enabled() -> bool:
    return _provider is not None


def trace_file(settings: Settings, service: str) -> Path:
    return settings.state_dir / "traces" / f"{service}.jsonl"


def setup_tracing(service: str, settings: Settings) -> None:
    """Record spans and export them as `settings.tracing` says (nothing when it is `off`)."""
    global _provider
    if settings.tracing == "off" or _provider is not None:
        return
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.namespace": "barents-grants"})
    )
    provider.add_span_processor(
        BatchSpanProcessor(_exporter(service, settings), schedule_delay_millis=500)
    )
    trace.set_tracer_provider(provider)
    _provider = provider


def shutdown_tracing() -> None:
    """Export what is still buffered; call at stop."""
    if _provider is not None:
        _provider.shutdown()


def _exporter(service: str, settings: Settings) -> SpanExporter:
    if settings.tracing == "console":
        return ConsoleSpanExporter(formatter=lambda span: span.to_json(indent=None) + os.linesep)
    if settings.tracing == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter: SpanExporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint)
        return exporter
    return JsonLinesSpanExporter(trace_file(settings, service))


class JsonLinesSpanExporter(SpanExporter):
    """Appends every finished span as one JSON object per line to a file (several processes
    of one service may share it: each span is one append)."""

    # Past this size the file is moved aside (to `<name>.1`) when the exporter starts.
    MAX_BYTES = 64 * 1024 * 1024

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > self.MAX_BYTES:
            path.replace(path.with_name(path.name + ".1"))
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [span.to_json(indent=None) + "\n" for span in spans]
        try:
            with self._lock, self._path.open("a", encoding="utf-8") as out:
                for line in lines:
                    out.write(line)
                    out.flush()
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, or None when there is none."""
    carrier: dict[str, str] = {}
    _TRACE_CONTEXT.inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> Context:
    """The context a stored `traceparent` names (an empty one, so a new trace, without)."""
    return _TRACE_CONTEXT.extract({"traceparent": traceparent} if traceparent else {})


def context_from_kafka_headers(headers: Iterable[tuple[str, bytes | str | None]] | None) -> Context:
    carrier: dict[str, str] = {}
    for key, value in headers or ():
        if key.lower() in ("traceparent", "tracestate") and value is not None:
            carrier[key.lower()] = (
                value.decode("ascii", "replace") if isinstance(value, bytes) else value
            )
    return _TRACE_CONTEXT.extract(carrier)


# --- correlation id and logs -----------------------------------------------------------------

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)


def correlation_id() -> str | None:
    """The correlation id of the event or request being handled, when known."""
    return _correlation_id.get()


def set_correlation_id(value: UUID | str | None) -> contextvars.Token[str | None]:
    return _correlation_id.set(str(value) if value is not None else None)


def reset_correlation_id(token: contextvars.Token[str | None]) -> None:
    _correlation_id.reset(token)


class ContextFilter(logging.Filter):
    """Puts the service, the correlation id and the current trace ids on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = _service
        record.correlation_id = _correlation_id.get()
        span = trace.get_current_span().get_span_context()
        record.trace_id = format(span.trace_id, "032x") if span.is_valid else None
        record.span_id = format(span.span_id, "016x") if span.is_valid else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, logger, message, and correlation_id,
    trace_id, span_id, exception when there are."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": getattr(record, "service", _service),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("correlation_id", "trace_id", "span_id"):
            value = getattr(record, field, None)
            if value:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(correlation)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        cid = getattr(record, "correlation_id", None)
        record.correlation = f" [{cid}]" if cid else ""
        return super().format(record)


def log_handler(settings: Settings) -> logging.Handler:
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    return handler


def describe_process(settings: Settings) -> None:
    SERVICE_INFO.info(
        {"service": _service, "tracing": settings.tracing, "log_format": settings.log_format}
    )
