"""Observability on the real stack: after a submission every service's /metrics shows what it
did, and the submission is one trace from the HTTP request through the outbox, Kafka and
Temporal to the review's activities — spans in intake's and review's trace files sharing one
trace id.

The trace test needs the services started with `GRANTS_TRACING=file` (`./dev test` starts
them so; a running stack can be restarted with `GRANTS_TRACING=file ./dev restart`)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.config import SERVICE_NAMES, Settings
from shared.contracts.lifecycle import LIFECYCLE_WORKFLOW
from shared.contracts.review import REVIEW_WORKFLOW
from shared.events import APPLICATION_SUBMITTED
from shared.topics import APPLICATION_EVENTS
from tests.conftest import service_url
from tests.integration.flows import Users, fresh
from tests.waiting import eventually

pytestmark = pytest.mark.integration

Sample = tuple[str, dict[str, str], float]


async def metrics(settings: Settings, service: str) -> list[Sample]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{service_url(settings, service)}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(
        value
        for sample, have, value in samples
        if sample == name and all(have.get(k) == v for k, v in labels.items())
    )


@pytest.fixture(scope="module")
async def users(stack: Settings) -> AsyncIterator[Users]:
    u = Users(stack)
    yield u
    await u.close()


async def test_metrics_show_what_every_service_did_after_a_submission(
    users: Users, stack: Settings
) -> None:
    app_id = await users.submit(fresh("nb-ungdom-fotball.json"))
    await users.wait_status(app_id, "in_review", "ineligible")

    intake = await metrics(stack, "intake")
    assert total(intake, "grants_service_info", service="intake") == 1
    assert (
        total(
            intake,
            "grants_events_consumed_total",
            consumer="intake.lifecycle",
            type=APPLICATION_SUBMITTED,
            outcome="processed",
        )
        > 0
    )
    assert (
        total(
            intake,
            "grants_events_published_total",
            topic=APPLICATION_EVENTS,
            type=APPLICATION_SUBMITTED,
        )
        > 0
    )
    assert (
        total(
            intake,
            "grants_workflow_starts_total",
            workflow=LIFECYCLE_WORKFLOW,
            outcome="started",
        )
        > 0
    )
    assert (
        total(
            intake,
            "grants_http_requests_total",
            method="POST",
            route="/applications",
            status="201",
        )
        > 0
    )
    # Labels never carry ids.
    assert app_id not in json.dumps(intake)

    review = await metrics(stack, "review")
    assert total(review, "grants_activity_seconds_count", activity="review.plan") > 0
    assert total(review, "grants_activity_seconds_count", activity="review.publish") > 0
    assert total(review, "grants_events_published_total", type="application.screened") > 0

    async def acknowledged() -> float:
        notifications = await metrics(stack, "notifications")
        consumed = total(
            notifications,
            "grants_events_consumed_total",
            consumer="notifications.milestones",
            outcome="processed",
        )
        sent = total(notifications, "grants_notifications_total", channel="email", status="sent")
        return consumed * sent

    assert await eventually(acknowledged, timeout=60) > 0

    for service in SERVICE_NAMES:
        await metrics(stack, service)  # counted once answered: the next scrape shows it
        samples = await metrics(stack, service)
        assert total(samples, "grants_http_requests_total", route="/metrics") > 0, service
        assert total(samples, "grants_service_info", service=service) == 1, service


# --- one trace per submission ---------------------------------------------------------------


async def tracing_mode(settings: Settings, service: str) -> str | None:
    for name, labels, _ in await metrics(settings, service):
        if name == "grants_service_info":
            return labels.get("tracing")
    return None


@pytest.fixture(scope="module")
async def traced(stack: Settings) -> Settings:
    modes = {s: await tracing_mode(stack, s) for s in ("intake", "review")}
    if any(mode != "file" for mode in modes.values()):
        pytest.skip(
            f"the running services record no trace files (tracing: {modes}); they were "
            "started without GRANTS_TRACING=file — `./dev test` starts them with it, or "
            "restart them with `GRANTS_TRACING=file ./dev restart`"
        )
    return stack


class TraceFile:
    """The spans a service appended to its trace file since the test began."""

    def __init__(self, settings: Settings, service: str) -> None:
        self.path: Path = settings.state_dir / "traces" / f"{service}.jsonl"
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def spans(self, trace_id: str) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(min(self.offset, os.path.getsize(self.path)))
            lines = f.read().decode("utf-8", "replace").splitlines()
        found = []
        for line in lines:
            try:
                span = json.loads(line)
            except ValueError:
                continue  # a line being written
            if span["context"]["trace_id"] == f"0x{trace_id}":
                found.append(span)
        return found


def names(spans: list[dict[str, Any]]) -> set[str]:
    return {span["name"] for span in spans}


async def test_one_trace_spans_the_submission_from_intake_to_review(
    users: Users, traced: Settings
) -> None:
    files = {service: TraceFile(traced, service) for service in SERVICE_NAMES}
    # The caller starts the trace: every span of the submission carries its trace id.
    trace_id = uuid.uuid4().hex
    caller_span = uuid.uuid4().hex[:16]
    response = await users.intake.post(
        "/applications",
        json=fresh("nb-ungdom-fotball.json"),
        headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
    )
    assert response.status_code == 201, response.text
    correlation_id = response.headers["x-correlation-id"]

    intake_expected = {
        "POST /applications",
        f"publish {APPLICATION_EVENTS}",
        f"process {APPLICATION_EVENTS}",
        f"StartWorkflow:{LIFECYCLE_WORKFLOW}",
        f"RunWorkflow:{LIFECYCLE_WORKFLOW}",
        f"StartChildWorkflow:{REVIEW_WORKFLOW}",
    }
    review_expected = {
        f"RunWorkflow:{REVIEW_WORKFLOW}",
        "StartActivity:review.plan",
        "RunActivity:review.plan",
        "RunActivity:review.publish",
        f"publish {APPLICATION_EVENTS}",
    }

    async def complete() -> dict[str, list[dict[str, Any]]] | None:
        found = {service: f.spans(trace_id) for service, f in files.items()}
        screened = any(_consumed(s, "application.screened") for s in found["intake"])
        if (
            intake_expected <= names(found["intake"])
            and review_expected <= names(found["review"])
            and screened
        ):
            return found
        return None

    try:
        found = await eventually(complete, timeout=60, interval=0.5)
    except AssertionError:
        seen = {s: sorted(names(f.spans(trace_id))) for s, f in files.items()}
        raise AssertionError(f"trace {trace_id} incomplete: {seen}") from None

    intake, review = found["intake"], found["review"]
    for service, spans in found.items():
        for span in spans:
            assert span["resource"]["attributes"]["service.name"] == service
    # The HTTP request continued the caller's span; its server span is the root of the rest.
    (server,) = [s for s in intake if s["name"] == "POST /applications"]
    assert server["parent_id"] == f"0x{caller_span}"
    assert server["attributes"]["grants.correlation_id"] == correlation_id
    # The consumer that started the workflow continued the relay's producer span.
    by_id = {s["context"]["span_id"]: s for spans in found.values() for s in spans}
    (lifecycle,) = [
        s
        for s in intake
        if s["name"] == f"process {APPLICATION_EVENTS}"
        and s["attributes"]["messaging.consumer.group.name"] == "intake.lifecycle"
        and s["attributes"].get("grants.event.type") == APPLICATION_SUBMITTED
    ]
    producer = by_id[lifecycle["parent_id"]]
    assert producer["name"] == f"publish {APPLICATION_EVENTS}"
    assert producer["attributes"]["grants.event.type"] == APPLICATION_SUBMITTED
    assert lifecycle["attributes"]["grants.correlation_id"] == correlation_id
    # The review's activity hangs under the review workflow, across processes.
    (plan,) = [s for s in review if s["name"] == "RunActivity:review.plan"]
    assert plan["parent_id"] in by_id
    # Review's own events continue the trace to the consumers of other services.
    assert any(_consumed(s, "application.screened") for s in intake)


def _consumed(span: dict[str, Any], event_type: str) -> bool:
    attributes: dict[str, Any] = span["attributes"]
    return bool(
        span["name"] == f"process {APPLICATION_EVENTS}"
        and attributes.get("grants.event.type") == event_type
    )
