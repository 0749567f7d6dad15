"""Structured logs: one JSON object per line with the service, the logger, the message, and
the correlation id and trace ids of what is being handled; plain text on request."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from uuid import uuid4

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from shared import observability
from shared.config import Settings
from shared.runtime import configure_logging


def emit(settings: Settings, *records: tuple[int, str, dict[str, object]]) -> list[str]:
    out = io.StringIO()
    handler = observability.log_handler(settings)
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    logger = logging.getLogger(f"test.{uuid4().hex[:6]}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    for level, message, kwargs in records:
        logger.log(level, message, **kwargs)  # type: ignore[arg-type]
    return out.getvalue().splitlines()


def test_a_json_line_per_record_with_the_service_and_logger() -> None:
    (line,) = emit(Settings(log_format="json"), (logging.INFO, "application %s stored", {}))
    entry = json.loads(line)
    assert entry["level"] == "INFO"
    assert entry["logger"].startswith("test.")
    assert entry["service"] == observability.service_name()
    assert entry["message"] == "application %s stored"
    assert entry["time"].endswith("+00:00")
    assert "correlation_id" not in entry and "trace_id" not in entry


def test_the_correlation_id_and_the_trace_are_on_the_line() -> None:
    correlation = uuid4()
    span = NonRecordingSpan(
        SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    )
    token = observability.set_correlation_id(correlation)
    try:
        with trace.use_span(span):
            (line,) = emit(Settings(), (logging.WARNING, "retrying", {}))
    finally:
        observability.reset_correlation_id(token)
    entry = json.loads(line)
    assert entry["correlation_id"] == str(correlation)
    assert entry["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert entry["span_id"] == "b7ad6b7169203331"
    assert observability.correlation_id() is None


def test_an_exception_stays_on_its_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        (line,) = emit(Settings(), (logging.ERROR, "failed", {"exc_info": True}))
    entry = json.loads(line)
    assert "ValueError: boom" in entry["exception"]


def test_text_format_for_reading_by_eye() -> None:
    correlation = uuid4()
    token = observability.set_correlation_id(correlation)
    try:
        lines = emit(Settings(log_format="text"), (logging.INFO, "hello", {}))
    finally:
        observability.reset_correlation_id(token)
    (line,) = lines
    assert line.endswith(f" [{correlation}]: hello")
    assert " INFO test." in line


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    root.handlers[:] = saved
    root.setLevel(level)


def test_a_service_logs_json_by_default(root_handlers: None) -> None:
    service = observability.service_name()
    try:
        configure_logging(Settings(), "review")
        (handler,) = logging.getLogger().handlers
        assert isinstance(handler.formatter, observability.JsonFormatter)
        assert observability.service_name() == "review"
    finally:
        observability.set_service(service)
