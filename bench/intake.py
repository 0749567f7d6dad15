"""X_intake: applications per second from submission to "lifecycle workflow running and
acknowledgement delivery recorded", over HTTP and over Kafka.

One application's latency is measured on the servers' own clocks (same machine): from just
before the bench sends it to the later of the lifecycle workflow's start time (Temporal's
describe) and the `received` delivery row's creation time (notifications schema). A tracker
polls for both in bulk (one query per table per tick, one describe per application once its
delivery exists), so polling adds no latency to the figures, only a tick to the closed loop.

- closed loop: a fixed number of submitters, each submitting its next application as soon as
  its previous one was acknowledged: the maximum sustainable rate;
- open loop: submissions at a fixed rate (half the closed-loop rate), whatever the system
  does: the latency a user sees at that load."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from bench.common import (
    RUN_PREFIX,
    Progress,
    fresh_document,
    kafka_auth,
    latency_ms,
    operator,
    pool_as,
    rate,
    service_url,
)
from shared.config import Settings
from shared.events import APPLICATION_SUBMIT
from shared.temporal import lifecycle_workflow_id
from shared.topics import APPLICATIONS_INBOUND


@dataclass
class Pending:
    external_ref: str
    sent_at: float  # epoch seconds, just before the submission left the bench
    application_id: UUID | None = None
    delivery_at: float | None = None
    workflow_at: float | None = None
    describing: bool = False
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def acknowledged_at(self) -> float | None:
        if self.delivery_at is None or self.workflow_at is None:
            return None
        return max(self.delivery_at, self.workflow_at)


class AckTracker:
    """Watches for submitted applications' workflow and acknowledgement delivery."""

    def __init__(self, settings: Settings, temporal: Client, interval: float = 0.05) -> None:
        self.settings = settings
        self.temporal = temporal
        self.interval = interval
        self._pending: dict[str, Pending] = {}
        self._intake: asyncpg.Pool | None = None
        self._notifications: asyncpg.Pool | None = None
        self._task: asyncio.Task[None] | None = None
        self._describe = asyncio.Semaphore(8)
        self._lookups: set[asyncio.Task[None]] = set()
        self.describes = 0

    async def start(self) -> None:
        self._intake = await pool_as(self.settings, "intake", 2)
        self._notifications = await pool_as(self.settings, "notifications", 2)
        self._task = asyncio.create_task(self._run(), name="bench-ack-tracker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for pool in (self._intake, self._notifications):
            if pool is not None:
                await pool.close()

    def add(self, external_ref: str, sent_at: float, application_id: UUID | None) -> Pending:
        pending = Pending(external_ref, sent_at, application_id)
        self._pending[external_ref] = pending
        return pending

    def forget(self, external_ref: str) -> None:
        self._pending.pop(external_ref, None)

    async def _run(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the stack hiccuped: try again next tick
                print(f"ack tracker: {type(exc).__name__}: {exc}")
            await asyncio.sleep(self.interval)

    async def _tick(self) -> None:
        assert self._intake is not None and self._notifications is not None
        pending = list(self._pending.values())
        unknown = [p.external_ref for p in pending if p.application_id is None]
        if unknown:
            rows = await self._intake.fetch(
                "SELECT id, external_ref FROM applications WHERE external_ref = ANY($1::text[])",
                unknown,
            )
            for row in rows:
                found = self._pending.get(row["external_ref"])
                if found is not None:
                    found.application_id = row["id"]
        waiting = {
            p.application_id: p
            for p in pending
            if p.application_id is not None and p.delivery_at is None
        }
        if waiting:
            rows = await self._notifications.fetch(
                """SELECT application_id, min(created_at) AS at FROM deliveries
                   WHERE milestone = 'received' AND application_id = ANY($1::uuid[])
                   GROUP BY application_id""",
                list(waiting),
            )
            for row in rows:
                waiting[row["application_id"]].delivery_at = row["at"].timestamp()
        for p in pending:
            if p.delivery_at is not None and p.workflow_at is None and not p.describing:
                p.describing = True
                task = asyncio.create_task(self._look_for_workflow(p))
                self._lookups.add(task)
                task.add_done_callback(self._lookups.discard)
            if p.acknowledged_at is not None and not p.done.done():
                p.done.set_result(None)
                self._pending.pop(p.external_ref, None)

    async def _look_for_workflow(self, p: Pending) -> None:
        assert p.application_id is not None
        try:
            async with self._describe:
                self.describes += 1
                handle = self.temporal.get_workflow_handle(lifecycle_workflow_id(p.application_id))
                described = await handle.describe()
                p.workflow_at = described.start_time.timestamp()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                await asyncio.sleep(0.2)
        finally:
            p.describing = False


@dataclass
class Outcome:
    sent_at: float
    acknowledged_at: float | None = None
    submit_seconds: float | None = None  # the HTTP answer, or Kafka's acknowledgement
    delivery_seconds: float | None = None
    workflow_seconds: float | None = None
    application_id: UUID | None = None
    error: str | None = None


class Submitter:
    """Submits fresh applications over HTTP or Kafka and waits for their acknowledgement."""

    def __init__(self, settings: Settings, tracker: AckTracker, timeout: float) -> None:
        self.settings = settings
        self.tracker = tracker
        self.timeout = timeout
        self.tag = uuid.uuid4().hex[:8]
        self.count = 0
        self.http = httpx.AsyncClient(
            base_url=service_url(settings, "intake"),
            headers=operator(settings),
            timeout=30,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=settings.kafka_max_message_bytes,
        )
        self.kafka_headers = kafka_auth(settings, "operator", "bench.portal", sys="bench-portal")

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.http.aclose()
        await self.producer.stop()

    async def one(self, channel: str) -> Outcome:
        self.count += 1
        ref = f"{RUN_PREFIX}{self.tag}-{self.count}"
        doc = fresh_document(ref)
        sent_at = time.time()
        outcome = Outcome(sent_at)
        application_id: UUID | None = None
        try:
            if channel == "http":
                response = await self.http.post("/applications", json=doc)
                if response.status_code != 201:
                    outcome.error = f"HTTP {response.status_code}"
                    return outcome
                application_id = UUID(response.json()["application_id"])
            else:
                envelope = {
                    "event_id": str(uuid.uuid4()),
                    "type": APPLICATION_SUBMIT,
                    "version": 1,
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "correlation_id": str(uuid.uuid4()),
                    "source": "bench-portal",
                    "application_id": None,
                    "payload": {"document": doc},
                }
                await self.producer.send_and_wait(
                    APPLICATIONS_INBOUND,
                    json.dumps(envelope).encode(),
                    key=ref.encode(),
                    headers=self.kafka_headers,
                )
        except Exception as exc:
            outcome.error = type(exc).__name__
            return outcome
        outcome.submit_seconds = time.time() - sent_at
        pending = self.tracker.add(ref, sent_at, application_id)
        try:
            await asyncio.wait_for(asyncio.shield(pending.done), self.timeout)
        except TimeoutError:
            self.tracker.forget(ref)
            outcome.error = "timeout"
            return outcome
        outcome.acknowledged_at = pending.acknowledged_at
        outcome.application_id = pending.application_id
        assert pending.delivery_at is not None and pending.workflow_at is not None
        outcome.delivery_seconds = pending.delivery_at - sent_at
        outcome.workflow_seconds = pending.workflow_at - sent_at
        return outcome


def summarize(outcomes: list[Outcome], **extra: Any) -> dict[str, Any]:
    ok = [o for o in outcomes if o.acknowledged_at is not None]
    errors: dict[str, int] = {}
    for o in outcomes:
        if o.error:
            errors[o.error] = errors.get(o.error, 0) + 1
    seconds = (
        max(o.acknowledged_at for o in ok if o.acknowledged_at) - min(o.sent_at for o in outcomes)
        if ok
        else 0.0
    )
    return {
        **extra,
        "per_second": rate(len(ok), seconds),
        "submitted": len(outcomes),
        "acknowledged": len(ok),
        "errors": errors,
        "seconds": round(seconds, 2),
        "latency_ms": latency_ms(o.acknowledged_at - o.sent_at for o in ok if o.acknowledged_at),
        "legs_ms": {
            "submit_answer": latency_ms(o.submit_seconds for o in ok if o.submit_seconds),
            "delivery_recorded": latency_ms(o.delivery_seconds for o in ok if o.delivery_seconds),
            "workflow_started": latency_ms(o.workflow_seconds for o in ok if o.workflow_seconds),
        },
    }


async def closed_loop(
    submitter: Submitter,
    channel: str,
    *,
    concurrency: int,
    duration: float,
    max_applications: int,
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        while time.perf_counter() < stop_at and len(outcomes) < max_applications:
            outcome = await submitter.one(channel)
            outcomes.append(outcome)
            if outcome.error and outcome.error != "timeout":
                await asyncio.sleep(0.1)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


async def open_loop(
    submitter: Submitter,
    channel: str,
    *,
    per_second: float,
    duration: float,
    max_applications: int,
) -> list[Outcome]:
    interval = 1.0 / per_second
    begin = time.perf_counter()
    tasks: list[asyncio.Task[Outcome]] = []
    k = 0
    while k < max_applications and k * interval < duration:
        delay = begin + k * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(submitter.one(channel)))
        k += 1
    return list(await asyncio.gather(*tasks))


async def measure(
    settings: Settings,
    progress: Progress,
    temporal: Client,
    *,
    channels: list[str],
    concurrency: int,
    duration: float,
    warmup: float,
    ack_timeout: float,
    max_applications: int,
    on_phase: Any,
) -> dict[str, Any]:
    """Closed loop per channel, then open loop at half the closed-loop rate per channel.
    `on_phase(name)` is an async context manager factory recording CPU and queues."""
    tracker = AckTracker(settings, temporal)
    submitter = Submitter(settings, tracker, ack_timeout)
    await tracker.start()
    await submitter.start()
    out: dict[str, Any] = {"closed": {}, "half_rate_open": {}}
    try:
        for channel in channels:
            if warmup > 0:
                await closed_loop(
                    submitter,
                    channel,
                    concurrency=concurrency,
                    duration=warmup,
                    max_applications=max_applications,
                )
            progress(f"X_intake {channel}: closed loop c={concurrency}, {duration:.0f}s")
            async with on_phase(f"x_intake_{channel}_closed") as phase:
                outcomes = await closed_loop(
                    submitter,
                    channel,
                    concurrency=concurrency,
                    duration=duration,
                    max_applications=max_applications,
                )
            result = summarize(outcomes, concurrency=concurrency)
            result["resources"] = phase
            result["sample_application"] = next(
                (str(o.application_id) for o in reversed(outcomes) if o.application_id), None
            )
            out["closed"][channel] = result
            progress(
                f"X_intake {channel}: {result['per_second']} applications/s, "
                f"p99 {result['latency_ms']['p99']} ms, errors {result['errors'] or 'none'}"
            )
        for channel in channels:
            closed_rate = out["closed"][channel]["per_second"]
            if not closed_rate:
                continue
            half = closed_rate / 2
            progress(f"X_intake {channel}: open loop at {half:.1f}/s (half), {duration:.0f}s")
            async with on_phase(f"x_intake_{channel}_half") as phase:
                outcomes = await open_loop(
                    submitter,
                    channel,
                    per_second=half,
                    duration=duration,
                    max_applications=max_applications,
                )
            result = summarize(outcomes, offered_per_second=round(half, 2))
            result["resources"] = phase
            p99 = result["latency_ms"]["p99"]
            result["target_p99_ms"] = 1000
            result["meets_target"] = bool(p99 is not None and p99 <= 1000 and not result["errors"])
            out["half_rate_open"][channel] = result
            progress(
                f"X_intake {channel} at half rate: p50 {result['latency_ms']['p50']} ms, "
                f"p99 {p99} ms (target <= 1000 ms)"
            )
        out["describes"] = tracker.describes
    finally:
        await submitter.stop()
        await tracker.stop()
    return out
