"""X_life: full lifecycles per second, every human step played by a bot as soon as the
application's timeline shows it is due:

submit (HTTP) -> advisor assigned -> review (advisor) -> decision (head of section, approved
with a reduced amount so the line's budget lasts) -> agreement offered -> acceptance
(applicant) -> advance requested -> bank confirms (Kafka) -> final report (applicant) ->
report approved (advisor) -> final payment requested -> bank confirms -> grant closed.

The bots read the timeline from the intake schema in bulk (one query per tick for every
application in flight) rather than polling an endpoint per application. A refused action
(409, or 404 while the next workflow is not there yet) is retried shortly: the event that
made it due may be on the timeline a moment before the workflow has taken it in."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from bench.common import (
    RUN_PREFIX,
    Progress,
    bearer,
    fresh_document,
    kafka_auth,
    latency_ms,
    operator,
    pool_as,
    rate,
    service_url,
)
from shared.config import Settings
from shared.contracts.grant import BANK_PAYMENT_ANSWER
from shared.topics import BANK_PAYMENT_ANSWERS

# The decision grants this much (NOK) of the 75 000 requested: the UD-PROJECT line's annual
# budget then lasts for tens of thousands of bench lifecycles.
GRANTED = "1000.00"
HEAD_OF_SECTION = "ingrid.solberg"
SCORES = {
    "cooperation": 5,
    "relevance": 4,
    "feasibility": 4,
    "budget_realism": 3,
    "people_to_people": 5,
}
# Payloads the bots need (the others are not fetched).
WITH_PAYLOAD = ("review.advisor_assigned", "payment.requested", "payment.confirmed")


@dataclass
class Event:
    type: str
    at: float  # occurred_at, epoch seconds
    payload: dict[str, Any] | None


@dataclass
class _Waiter:
    event_type: str
    predicate: Callable[[dict[str, Any] | None], bool]
    future: asyncio.Future[Event]


class TimelineWatcher:
    """Follows the intake timeline of the applications in flight, in one query per tick."""

    def __init__(self, settings: Settings, interval: float = 0.1) -> None:
        self.settings = settings
        self.interval = interval
        self._pool: asyncpg.Pool | None = None
        self._events: dict[UUID, list[Event]] = defaultdict(list)
        self._waiters: dict[UUID, list[_Waiter]] = defaultdict(list)
        self._seen: set[int] = set()
        self._cursor = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._pool = await pool_as(self.settings, "intake", 1)
        self._cursor = int(await self._pool.fetchval("SELECT coalesce(max(seq), 0) FROM timeline"))
        self._task = asyncio.create_task(self._run(), name="bench-timeline-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pool is not None:
            await self._pool.close()

    def watch(self, application_id: UUID) -> None:
        self._events.setdefault(application_id, [])

    def forget(self, application_id: UUID) -> None:
        self._events.pop(application_id, None)
        self._waiters.pop(application_id, None)

    async def wait(
        self,
        application_id: UUID,
        event_type: str,
        within: float,
        predicate: Callable[[dict[str, Any] | None], bool] = lambda _: True,
    ) -> Event:
        for event in self._events.get(application_id, []):
            if event.type == event_type and predicate(event.payload):
                return event
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiters[application_id].append(_Waiter(event_type, predicate, future))
        return await asyncio.wait_for(future, within)

    async def _run(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                print(f"timeline watcher: {type(exc).__name__}: {exc}")
            await asyncio.sleep(self.interval)

    async def _tick(self) -> None:
        assert self._pool is not None
        watched = list(self._events)
        if not watched:
            return
        # Rows commit out of seq order now and then: look a little behind the cursor.
        low = max(self._cursor - 500, 0)
        rows = await self._pool.fetch(
            """SELECT seq, application_id, event_type, occurred_at,
                      CASE WHEN event_type = ANY($3::text[]) THEN payload END AS payload
               FROM timeline WHERE seq > $1 AND application_id = ANY($2::uuid[])
               ORDER BY seq""",
            low,
            watched,
            list(WITH_PAYLOAD),
        )
        for row in rows:
            seq = int(row["seq"])
            if seq in self._seen:
                continue
            self._seen.add(seq)
            self._cursor = max(self._cursor, seq)
            payload = json.loads(row["payload"]) if row["payload"] is not None else None
            event = Event(row["event_type"], row["occurred_at"].timestamp(), payload)
            application_id: UUID = row["application_id"]
            if application_id not in self._events:
                continue
            self._events[application_id].append(event)
            still = []
            for waiter in self._waiters.get(application_id, []):
                if waiter.future.done():
                    continue
                if waiter.event_type == event.type and waiter.predicate(event.payload):
                    waiter.future.set_result(event)
                else:
                    still.append(waiter)
            self._waiters[application_id] = still
        self._seen = {s for s in self._seen if s > low}


@dataclass
class Lifecycle:
    started_at: float
    closed_at: float | None = None
    steps: dict[str, float] = field(default_factory=dict)
    retries: int = 0
    application_id: UUID | None = None
    error: str | None = None


class Refused(Exception):
    pass


class Bots:
    def __init__(self, settings: Settings, watcher: TimelineWatcher, step_timeout: float) -> None:
        self.settings = settings
        self.watcher = watcher
        self.step_timeout = step_timeout
        self.tag = uuid.uuid4().hex[:8]
        self.count = 0
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        self.intake = httpx.AsyncClient(
            base_url=service_url(settings, "intake"),
            headers=operator(settings),
            timeout=60,
            limits=limits,
        )
        self.review = httpx.AsyncClient(
            base_url=service_url(settings, "review"), timeout=60, limits=limits
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
        )
        self.bank_headers = kafka_auth(settings, "finance", "bank-erp", sys="bank")
        self.decider = bearer(settings, "head_of_section", HEAD_OF_SECTION)
        self._advisors: dict[str, dict[str, str]] = {}

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.intake.aclose()
        await self.review.aclose()
        await self.producer.stop()

    def advisor(self, advisor: str) -> dict[str, str]:
        if advisor not in self._advisors:
            self._advisors[advisor] = bearer(self.settings, "advisor", advisor)
        return self._advisors[advisor]

    async def act(
        self, life: Lifecycle, client: httpx.AsyncClient, path: str, body: Any, headers: Any
    ) -> dict[str, Any]:
        """POST an action; retried while it is refused because its step is not reached yet."""
        deadline = time.monotonic() + self.step_timeout
        while True:
            response = await client.post(path, json=body, headers=headers)
            if response.status_code == 200:
                result: dict[str, Any] = response.json()
                return result
            if response.status_code not in (404, 409) or time.monotonic() > deadline:
                raise Refused(f"{path.rsplit('/', 1)[-1]}: HTTP {response.status_code}")
            life.retries += 1
            await asyncio.sleep(0.2)

    async def bank_confirms(self, application_id: UUID, reference: str, attempt: int) -> None:
        envelope = {
            "event_id": str(uuid.uuid4()),
            "type": BANK_PAYMENT_ANSWER,
            "version": 1,
            "source": "bank",
            "payload": {"reference": reference, "attempt": attempt, "outcome": "confirmed"},
        }
        await self.producer.send_and_wait(
            BANK_PAYMENT_ANSWERS,
            json.dumps(envelope).encode(),
            key=reference.encode(),
            headers=self.bank_headers,
        )

    async def lifecycle(self) -> Lifecycle:
        self.count += 1
        doc = fresh_document(f"{RUN_PREFIX}life-{self.tag}-{self.count}")
        life = Lifecycle(started_at=time.time())
        application_id: UUID | None = None
        try:
            application_id = await self._run(life, doc)
        except Refused as exc:
            life.error = str(exc)
        except TimeoutError:
            life.error = f"timeout after {list(life.steps)[-1] if life.steps else 'submit'}"
        except Exception as exc:
            life.error = type(exc).__name__
        finally:
            if application_id is not None:
                self.watcher.forget(application_id)
        return life

    async def _run(self, life: Lifecycle, doc: dict[str, Any]) -> UUID:
        w, timeout = self.watcher, self.step_timeout
        last = life.started_at

        def step(name: str, at: float) -> None:
            nonlocal last
            life.steps[name] = at - last
            last = at

        response = await self.intake.post("/applications", json=doc)
        if response.status_code != 201:
            raise Refused(f"submit: HTTP {response.status_code}")
        app = UUID(response.json()["application_id"])
        life.application_id = app
        w.watch(app)
        org = doc["applicant"]["org_number"]
        applicant = bearer(self.settings, "applicant", f"contact-{org}", org=org)

        assigned = await w.wait(app, "review.advisor_assigned", timeout)
        step("submitted -> advisor assigned", assigned.at)
        advisor = str((assigned.payload or {})["advisor"])
        review = {
            "advisor": advisor,
            "scores": SCORES,
            "comment": "Solid cross-border content.",
            "recommendation": "approve",
        }
        await self.act(
            life, self.review, f"/applications/{app}/review", review, self.advisor(advisor)
        )
        decision = {
            "decider": HEAD_OF_SECTION,
            "role": "head_of_section",
            "outcome": "approve",
            "amount": GRANTED,
        }
        decided = await self.act(
            life, self.review, f"/applications/{app}/decision", decision, self.decider
        )
        if decided.get("status") != "approved":
            raise Refused(f"decision: status {decided.get('status')} (budget exhausted?)")
        step("advisor assigned -> reviewed and decided (bot)", time.time())

        offered = await w.wait(app, "agreement.offered", timeout)
        step("decided -> agreement offered", offered.at)
        await self.act(
            life,
            self.intake,
            f"/applications/{app}/agreement/acceptance",
            {"accepted_by": doc["applicant"]["contact"]["name"]},
            applicant,
        )
        advance = await w.wait(
            app, "payment.requested", timeout, lambda p: (p or {}).get("kind") == "advance"
        )
        step("offered -> accepted, advance requested", advance.at)
        payload = advance.payload or {}
        await self.bank_confirms(app, payload["reference"], int(payload["attempt"]))
        confirmed = await w.wait(
            app, "payment.confirmed", timeout, lambda p: (p or {}).get("kind") == "advance"
        )
        step("advance requested -> bank confirmed, recorded", confirmed.at)

        report = {
            "actual_costs": {
                "amount": doc["budget"]["total"],
                "currency": doc["budget"]["currency"],
            },
            "results": "Held as planned, with both villages taking part.",
        }
        await self.act(life, self.intake, f"/applications/{app}/reports", report, applicant)
        await self.act(
            life,
            self.review,
            f"/applications/{app}/final-report/review",
            {"advisor": advisor, "outcome": "approve"},
            self.advisor(advisor),
        )
        final = await w.wait(
            app, "payment.requested", timeout, lambda p: (p or {}).get("kind") == "final"
        )
        step("advance confirmed -> report submitted and approved, final requested", final.at)
        payload = final.payload or {}
        await self.bank_confirms(app, payload["reference"], int(payload["attempt"]))
        closed = await w.wait(app, "grant.closed", timeout)
        step("final requested -> bank confirmed, grant closed", closed.at)
        life.closed_at = closed.at
        return app


def summarize(lives: list[Lifecycle], **extra: Any) -> dict[str, Any]:
    ok = [life for life in lives if life.closed_at is not None]
    errors: dict[str, int] = {}
    for life in lives:
        if life.error:
            errors[life.error] = errors.get(life.error, 0) + 1
    seconds = (
        max(life.closed_at for life in ok if life.closed_at)
        - min(life.started_at for life in lives)
        if ok
        else 0.0
    )
    steps: dict[str, list[float]] = defaultdict(list)
    for life in ok:
        for name, value in life.steps.items():
            steps[name].append(value)
    return {
        **extra,
        "per_second": rate(len(ok), seconds),
        "started": len(lives),
        "completed": len(ok),
        "errors": errors,
        "seconds": round(seconds, 2),
        "latency_ms": latency_ms(life.closed_at - life.started_at for life in ok if life.closed_at),
        "steps_ms": {name: latency_ms(values) for name, values in steps.items()},
        "refused_then_retried": sum(life.retries for life in lives),
    }


async def measure(
    settings: Settings,
    progress: Progress,
    *,
    concurrency: int,
    duration: float,
    step_timeout: float,
    max_lifecycles: int,
    on_phase: Any,
) -> dict[str, Any]:
    watcher = TimelineWatcher(settings)
    bots = Bots(settings, watcher, step_timeout)
    await watcher.start()
    await bots.start()
    lives: list[Lifecycle] = []
    try:
        progress(f"X_life: closed loop c={concurrency}, {duration:.0f}s (then in-flight finish)")
        stop_at = 0.0

        async def worker() -> None:
            while time.perf_counter() < stop_at and len(lives) < max_lifecycles:
                life = await bots.lifecycle()
                lives.append(life)
                if life.error:
                    await asyncio.sleep(0.5)

        async with on_phase("x_life") as phase:
            stop_at = time.perf_counter() + duration  # after the phase's settling
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        result = summarize(lives, concurrency=concurrency, granted_nok=GRANTED)
        result["resources"] = phase
        result["sample_application"] = next(
            (str(life.application_id) for life in reversed(lives) if life.closed_at), None
        )
        progress(
            f"X_life: {result['per_second']} lifecycles/s ({result['completed']} completed), "
            f"p50 {result['latency_ms']['p50']} ms, errors {result['errors'] or 'none'}"
        )
        return result
    finally:
        await bots.stop()
        await watcher.stop()
