"""The load driver: a steady stream of applications, and bots that move each one through its
lifecycle the way people and systems do, over HTTP and Kafka, while faults happen.

Every application gets a plan when it is submitted (which sample, which channels, approve or
reject, whether the advisor asks for information or for changes to the report, a claim-back).
Its driver then loops: read the application's state over HTTP, do the next step of the plan,
wait for a lifecycle event about it (a Kafka consumer wakes the driver) or a short poll. Every
step is idempotent driving: a connection error, a 5xx or a timeout is retried with backoff;
a 409 means someone (maybe our own retried request) already did it, so the driver reads the
state again and goes on from there. A Kafka command that did not take effect is done over
HTTP next time. Bounded in count (`applications`) and in time (`time_limit`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.auth import Role, issue_token
from shared.config import Settings
from shared.contracts.grant import BANK_PAYMENT_ANSWER
from shared.events import (
    AGREEMENT_ACCEPT,
    APPLICATION_SUBMIT,
    APPLICATION_SUBMITTED,
    DECISION_DECIDE,
    INFORMATION_ANSWER,
    REPORT_SUBMIT,
    REVIEW_SUBMIT,
    Envelope,
)
from shared.topics import (
    APPLICATION_EVENTS,
    APPLICATIONS_INBOUND,
    BANK_PAYMENT_ANSWERS,
    REVIEW_COMMANDS,
)
from tests.conftest import load_sample

Log = Callable[[str], None]

PROJECT_SAMPLES = (
    "ko188-cultural-network.json",
    "nb-barentskult-festival.json",
    "nb-ungdom-fotball.json",
    "ru-school-exchange.json",
    "small-grant-head-of-section.json",
)
CORE_SAMPLE = "en-core-support.json"
INELIGIBLE_SAMPLES = (
    "ineligible-no-partner-across-border.json",
    "ineligible-over-share-and-cap.json",
    "ineligible-youth-wrong-target.json",
)

TERMINAL = frozenset({"ineligible", "rejected", "withdrawn", "lapsed", "closed"})

# The decision makers of the configuration's roster (tests/integration/flows.py).
DECIDERS: dict[str, str] = {
    "head_of_section": "ingrid.solberg",
    "director": "erik.haugen",
    "board": "board.chair",
}
SCORES = {
    "cooperation": 5,
    "relevance": 4,
    "feasibility": 4,
    "budget_realism": 3,
    "people_to_people": 5,
}
CENT = Decimal("0.01")
# Seconds a driver waits for an event about its application before it reads the state again:
# after it acted, while it waits for the system, and right after an event woke it.
POLL_ACTED = 6.0
POLL_WAITING = 12.0
POLL_AFTER_EVENT = 2.5


@dataclass
class Plan:
    """What the bots do with one application, chosen when it is submitted."""

    sample: str
    kind: Literal["project", "core", "ineligible"]
    submit_via: Literal["http", "kafka"]
    outcome: Literal["approve", "reject"]
    # The grant to approve: small, so a thousand approvals never exhaust a line's budget.
    amount: Decimal
    recommend: bool  # the review recommends the reduced amount (the head of section decides)
    ask_information: bool
    request_changes: bool
    claim_back: bool  # actual costs low enough that the advance exceeds what they justify
    kafka_review: bool
    kafka_decision: bool
    kafka_answer: bool
    kafka_acceptance: bool
    kafka_report: bool


@dataclass
class Tracked:
    """One application of the run, as its driver knows it."""

    index: int
    external_ref: str
    plan: Plan
    document: dict[str, Any]
    application_id: uuid.UUID | None = None
    acknowledged: bool = False  # the system said it has it (HTTP 200/201, Kafka ack)
    submitted_at: float = 0.0
    finished_at: float | None = None
    status: str | None = None
    done: bool = False
    info_asked: bool = False
    changes_requested: bool = False
    actual_costs: Decimal | None = None
    notes: list[str] = field(default_factory=list)
    # When an action was last sent (by name), so a slow system is not flooded.
    sent: dict[str, float] = field(default_factory=dict)
    # How many times an action was tried over Kafka (the next try goes over HTTP).
    kafka_tries: Counter[str] = field(default_factory=Counter)
    answered: dict[tuple[str, int], float] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def currency(self) -> str:
        return str(self.document["budget"]["currency"])

    @property
    def org(self) -> str:
        return str(self.document["applicant"]["org_number"])


@dataclass
class LoadStats:
    requests: int = 0
    http_retries: Counter[str] = field(default_factory=Counter)
    kafka_retries: int = 0
    conflicts: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)


class DriverStopped(Exception):
    """The run's time is up."""


def make_plan(index: int, rng: random.Random, core_allowed: bool) -> Plan:
    roll = rng.random()
    if roll < 0.08:
        kind: Literal["project", "core", "ineligible"] = "ineligible"
        sample = rng.choice(INELIGIBLE_SAMPLES)
    elif roll < 0.14 and core_allowed:
        kind, sample = "core", CORE_SAMPLE
    else:
        kind, sample = "project", PROJECT_SAMPLES[index % len(PROJECT_SAMPLES)]
    doc = load_sample(sample)
    eur = doc["budget"]["currency"] == "EUR"
    amount = Decimal(rng.randrange(200, 900) if eur else rng.randrange(2000, 9000))
    if kind == "core":
        amount = Decimal(rng.randrange(3000, 9000))
    return Plan(
        sample=sample,
        kind=kind,
        submit_via="kafka" if rng.random() < 0.25 else "http",
        outcome="reject" if rng.random() < 0.1 else "approve",
        amount=amount.quantize(CENT),
        recommend=rng.random() < 0.4,
        ask_information=rng.random() < 0.08,
        request_changes=rng.random() < 0.08,
        claim_back=kind == "project" and rng.random() < 0.06,
        kafka_review=rng.random() < 0.15,
        kafka_decision=kind == "project" and rng.random() < 0.15,
        kafka_answer=rng.random() < 0.3,
        kafka_acceptance=rng.random() < 0.2,
        kafka_report=rng.random() < 0.2,
    )


class Tokens:
    """Bearer tokens, refreshed long before they expire (a long run outlives one hour)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cache: dict[tuple[str, str, str | None, str | None], tuple[float, str]] = {}

    def token(self, role: Role, sub: str, org: str | None = None, sys: str | None = None) -> str:
        key = (role, sub, org, sys)
        cached = self._cache.get(key)
        if cached is None or time.monotonic() - cached[0] > 1200:
            value = issue_token(self._settings, sub=sub, role=role, org=org, sys=sys)
            cached = (time.monotonic(), value)
            self._cache[key] = cached
        return cached[1]

    def http(self, role: Role, sub: str, org: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(role, sub, org)}"}

    def kafka(
        self, role: Role, sub: str, sys: str, org: str | None = None
    ) -> list[tuple[str, bytes]]:
        return [("authorization", f"Bearer {self.token(role, sub, org, sys)}".encode())]


class KafkaSender:
    """One idempotent producer, re-created when Kafka went away; sends retried until the
    broker acknowledged (acks=all) or the run's time is up."""

    def __init__(self, settings: Settings, stats: LoadStats, deadline: Callable[[], float]):
        self._settings = settings
        self._stats = stats
        self._deadline = deadline
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._settings.kafka_bootstrap,
                    acks="all",
                    enable_idempotence=True,
                    request_timeout_ms=15000,
                    linger_ms=5,
                )
                try:
                    await asyncio.wait_for(producer.start(), 20)
                except BaseException:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def _drop(self, producer: Any) -> None:
        if producer is None:
            return
        stop = producer.stop
        async with self._lock:
            if self._producer is not producer:
                return  # someone else dropped it already
            self._producer = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stop(), 10)

    async def send(
        self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        delay = 0.5
        while True:
            producer: AIOKafkaProducer | None = None
            try:
                producer = await self._get()
                await asyncio.wait_for(
                    producer.send_and_wait(topic, value, key=key, headers=headers), 30
                )
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self._stats.kafka_retries += 1
                await self._drop(producer)
            if time.monotonic() > self._deadline():
                raise DriverStopped("Kafka send")
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5)

    async def close(self) -> None:
        await self._drop(self._producer)


class LoadDriver:
    def __init__(
        self,
        settings: Settings,
        *,
        applications: int,
        rate: float,
        max_in_flight: int,
        time_limit: float,
        log: Log,
        seed: int | None = None,
        progress_every: float = 5.0,
        label: Callable[[], str] = lambda: "",
    ) -> None:
        self.settings = settings
        self.applications = applications
        self.rate = rate
        self.max_in_flight = max_in_flight
        self.time_limit = time_limit
        self.log = log
        self.progress_every = progress_every
        self.label = label
        self.run_id = uuid.uuid4().hex[:6].upper()
        self.rng = random.Random(seed)
        self.stats = LoadStats()
        self.tracked: list[Tracked] = []
        self.by_id: dict[uuid.UUID, Tracked] = {}
        self.by_ref: dict[str, Tracked] = {}
        self.tokens = Tokens(settings)
        self.started = 0.0
        self.deadline = 0.0
        self.submitting = True
        self.config: dict[str, Any] = {}
        self.kafka = KafkaSender(settings, self.stats, lambda: self.deadline)
        base = "http://127.0.0.1:{}"
        timeout = httpx.Timeout(30, connect=5)
        limits = httpx.Limits(max_connections=max(20, max_in_flight), max_keepalive_connections=20)
        self.intake = httpx.AsyncClient(
            base_url=base.format(settings.port_intake), timeout=timeout, limits=limits
        )
        self.review = httpx.AsyncClient(
            base_url=base.format(settings.port_review), timeout=timeout, limits=limits
        )
        self.payments = httpx.AsyncClient(
            base_url=base.format(settings.port_payments), timeout=timeout, limits=limits
        )

    # ------------------------------------------------------------------ the run

    async def run(self) -> list[Tracked]:
        # The bots' Kafka clients complain loudly while a fault lasts; the counts say enough.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        self.started = time.monotonic()
        self.deadline = self.started + self.time_limit
        self.config = await self._funding_config()
        core_allowed = bool(self.config.get("board", {}).get("meeting_interval"))
        watcher = asyncio.create_task(self._watch_events(), name="faults-event-watch")
        progress = asyncio.create_task(self._progress(), name="faults-progress")
        slots = asyncio.Semaphore(self.max_in_flight)
        drivers: list[asyncio.Task[None]] = []

        async def drive(t: Tracked) -> None:
            try:
                await self._drive(t)
            except DriverStopped:
                pass
            except Exception as exc:  # a bug of the driver: recorded, the run goes on
                t.notes.append(f"driver error: {type(exc).__name__}: {exc}")
                self.log(f"driver error on {t.external_ref}: {type(exc).__name__}: {exc}")
            finally:
                slots.release()

        try:
            for index in range(self.applications):
                await slots.acquire()
                if time.monotonic() > self.deadline:
                    slots.release()
                    break
                plan = make_plan(index, self.rng, core_allowed)
                t = Tracked(
                    index=index,
                    external_ref=f"FLT-{self.run_id}-{index:05d}",
                    plan=plan,
                    document=load_sample(plan.sample),
                )
                t.document["external_ref"] = t.external_ref
                self.tracked.append(t)
                self.by_ref[t.external_ref] = t
                drivers.append(asyncio.create_task(drive(t), name=f"drive-{t.external_ref}"))
                await asyncio.sleep(1 / self.rate)
            self.submitting = False
            if drivers:
                await asyncio.wait(drivers)
        finally:
            self.submitting = False
            for task in (watcher, progress, *drivers):
                task.cancel()
            await asyncio.gather(watcher, progress, *drivers, return_exceptions=True)
            await self.kafka.close()
            await self.intake.aclose()
            await self.review.aclose()
            await self.payments.aclose()
        self._print_progress(final=True)
        return self.tracked

    async def _funding_config(self) -> dict[str, Any]:
        r = await self._call(
            self.review, "GET", "/funding-lines", "config", headers=self._operator()
        )
        r.raise_for_status()
        config: dict[str, Any] = r.json()
        return config

    def _operator(self) -> dict[str, str]:
        return self.tokens.http("operator", "faults.operator")

    def _finance(self) -> dict[str, str]:
        return self.tokens.http("finance", "faults.finance")

    def _applicant(self, t: Tracked) -> dict[str, str]:
        return self.tokens.http("applicant", f"contact-{t.org}", org=t.org)

    # ------------------------------------------------------------------ plumbing

    async def _call(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        what: str,
        *,
        headers: dict[str, str],
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The response once it is not a 5xx; connection errors, timeouts and 5xx are
        retried with backoff until the run's time is up."""
        delay = 0.3
        while True:
            self.stats.requests += 1
            try:
                response = await client.request(
                    method, url, headers=headers, json=json_body, params=params
                )
                if response.status_code < 500:
                    return response
            except httpx.HTTPError:
                pass
            self.stats.http_retries[what] += 1
            if time.monotonic() > self.deadline:
                raise DriverStopped(what)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 4)

    def _recently(self, t: Tracked, action: str, seconds: float) -> bool:
        last = t.sent.get(action)
        return last is not None and time.monotonic() - last < seconds

    def _mark(self, t: Tracked, action: str) -> None:
        t.sent[action] = time.monotonic()
        self.stats.actions[action] += 1

    def _succeeded(self, t: Tracked, action: str, hold: float = 25) -> None:
        """The action was taken: the status may lag behind it (the lifecycle mirrors its
        stages by signal), so do not repeat it for a while."""
        t.sent[action] = time.monotonic() + hold

    def _use_kafka(self, t: Tracked, action: str, planned: bool) -> bool:
        """Kafka for this action when planned, once; if it did not take effect, HTTP."""
        if planned and t.kafka_tries[action] == 0:
            t.kafka_tries[action] += 1
            return True
        return False

    async def _command(
        self,
        t: Tracked,
        topic: str,
        event_type: str,
        payload: dict[str, Any],
        headers: list[tuple[str, bytes]],
    ) -> None:
        assert t.application_id is not None
        envelope = Envelope(
            type=event_type,
            source="faults-bot",
            application_id=t.application_id,
            payload=payload,
        )
        await self.kafka.send(
            topic, envelope.model_dump_json().encode(), str(t.application_id).encode(), headers
        )

    # ------------------------------------------------------------------ one application

    async def _drive(self, t: Tracked) -> None:
        await self._submit(t)
        woken = False
        while not t.done:
            if time.monotonic() > self.deadline:
                raise DriverStopped("time")
            t.wake.clear()
            waiting = await self._step(t)
            if t.done:
                break
            # Every step of a lifecycle publishes an event, which wakes the driver: polls are
            # only the safety net (each read asks the workflow, a query: not free). Right after
            # an event the status may not be mirrored yet, so that case looks again soon.
            pause = (POLL_AFTER_EVENT if woken else POLL_WAITING) if waiting else POLL_ACTED
            woken = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(t.wake.wait(), pause * (0.75 + random.random() / 2))
                woken = True

    async def _submit(self, t: Tracked) -> None:
        t.submitted_at = time.monotonic()
        if t.plan.submit_via == "kafka":
            envelope = Envelope(
                type=APPLICATION_SUBMIT, source="portal", payload={"document": t.document}
            )
            # Retried with the same bytes (same event id): a repeat stores nothing new.
            await self.kafka.send(
                APPLICATIONS_INBOUND,
                envelope.model_dump_json().encode(),
                t.external_ref.encode(),
                self.tokens.kafka("applicant", f"contact-{t.org}", "portal", org=t.org),
            )
            t.acknowledged = True
            self.stats.actions["submit-kafka"] += 1
            return
        r = await self._call(
            self.intake,
            "POST",
            "/applications",
            "submit",
            headers=self._operator(),
            json_body=t.document,
        )
        if r.status_code not in (200, 201):
            t.notes.append(f"submission refused: {r.status_code} {r.text[:200]}")
            t.done = True
            return
        t.acknowledged = True
        if r.status_code == 200:
            self.stats.conflicts["submit-again"] += 1
        t.application_id = uuid.UUID(r.json()["application_id"])
        self.by_id[t.application_id] = t
        self.stats.actions["submit-http"] += 1

    async def _step(self, t: Tracked) -> bool:
        """One look at the application and its next step; True when waiting for the system."""
        if t.application_id is None:
            r = await self._call(
                self.intake,
                "GET",
                "/applications",
                "find",
                headers=self._operator(),
                params={"external_ref": t.external_ref},
            )
            found = r.json() if r.status_code == 200 else []
            if not found:
                return True
            t.application_id = uuid.UUID(found[0]["application_id"])
            self.by_id[t.application_id] = t
        app_id = t.application_id
        r = await self._call(
            self.intake, "GET", f"/applications/{app_id}", "read", headers=self._operator()
        )
        if r.status_code != 200:
            return True
        status: str | None = r.json().get("status")
        t.status = status
        if status in TERMINAL:
            t.done = True
            t.finished_at = time.monotonic()
            return False
        step = {
            "in_review": self._in_review,
            "information_requested": self._answer,
            "awaiting_decision": self._decide,
            "agreement_pending": self._accept,
            "active": self._active,
            "report_due": self._active,
            "report_overdue": self._active,
            "report_changes_requested": self._active,
            "report_submitted": self._review_report,
            "final_payment": self._active,
            "claim_back": self._settle_claim,
        }.get(status or "")
        if step is None:  # submitted, screening, approved, or no status yet
            return True
        return await step(t)

    async def _review_state(self, t: Tracked) -> dict[str, Any] | None:
        r = await self._call(
            self.review,
            "GET",
            f"/applications/{t.application_id}",
            "review-state",
            headers=self._operator(),
        )
        if r.status_code != 200:
            return None
        state: dict[str, Any] = r.json()
        return state

    def _conflict(self, t: Tracked, action: str, r: httpx.Response) -> None:
        self.stats.conflicts[action] += 1

    async def _in_review(self, t: Tracked) -> bool:
        state = await self._review_state(t)
        if state is None or state.get("status") != "in_review" or not state.get("advisor"):
            return True
        advisor: str = state["advisor"]
        headers = self.tokens.http("advisor", advisor)
        if t.plan.ask_information and not t.info_asked:
            r = await self._call(
                self.review,
                "POST",
                f"/applications/{t.application_id}/information-request",
                "ask",
                headers=headers,
                json_body={"advisor": advisor, "question": "Please send the partner letters."},
            )
            self._mark(t, "ask")
            t.info_asked = True  # 200, or 409: asked already (or the review moved on)
            return False
        if self._recently(t, "review", 15):
            return True
        body: dict[str, Any] = {
            "advisor": advisor,
            "scores": SCORES,
            "comment": "Solid cross-border content.",
            "recommendation": "approve" if t.plan.outcome == "approve" else "reject",
        }
        if t.plan.recommend and t.plan.outcome == "approve":
            body["recommended_amount"] = str(t.plan.amount)
        self._mark(t, "review")
        if self._use_kafka(t, "review", t.plan.kafka_review):
            await self._command(
                t,
                REVIEW_COMMANDS,
                REVIEW_SUBMIT,
                {"action": body},
                self.tokens.kafka("advisor", advisor, "advisor-portal"),
            )
            return False
        r = await self._call(
            self.review,
            "POST",
            f"/applications/{t.application_id}/review",
            "review",
            headers=headers,
            json_body=body,
        )
        if r.status_code == 409:
            self._conflict(t, "review", r)
        return False

    async def _answer(self, t: Tracked) -> bool:
        if self._recently(t, "answer", 8):
            return True
        self._mark(t, "answer")
        answer = {"answer": "The partner letters are attached."}
        if self._use_kafka(t, "answer", t.plan.kafka_answer):
            await self._command(
                t,
                APPLICATIONS_INBOUND,
                INFORMATION_ANSWER,
                {"answer": answer},
                self.tokens.kafka("applicant", f"contact-{t.org}", "portal", org=t.org),
            )
            return False
        r = await self._call(
            self.intake,
            "POST",
            f"/applications/{t.application_id}/information",
            "answer",
            headers=self._applicant(t),
            json_body=answer,
        )
        if r.status_code == 409:
            self._conflict(t, "answer", r)
        return False

    async def _decide(self, t: Tracked) -> bool:
        state = await self._review_state(t)
        if state is None or state.get("status") != "awaiting_decision":
            return True
        role: str | None = state.get("decider_role")
        if role not in DECIDERS:
            return True
        if self._recently(t, "decide", 15 if t.kafka_tries["decide"] else 2):
            return True
        decider = DECIDERS[role]
        decision: dict[str, Any] = {"decider": decider, "role": role, "outcome": t.plan.outcome}
        if t.plan.outcome == "approve":
            decision["amount"] = str(t.plan.amount)
        headers = self.tokens.http(role, decider)  # type: ignore[arg-type]
        self._mark(t, "decide")
        if role == "board":
            # A meeting of the configured dates, or (meeting_interval, tests) today's.
            meeting = state.get("board_meeting") or datetime.now(UTC).date().isoformat()
            r = await self._call(
                self.review,
                "POST",
                f"/board/meetings/{meeting}/decisions",
                "decide",
                headers=headers,
                json_body=[{"application_id": str(t.application_id), "decision": decision}],
            )
            if r.status_code == 200 and r.json() and r.json()[0]["accepted"]:
                self._decided(t, r.json()[0]["result"])
            else:
                # Before the meeting the board's decision is refused: try again shortly.
                t.sent["decide"] = time.monotonic() - 1
            return False
        if self._use_kafka(t, "decide", t.plan.kafka_decision):
            await self._command(
                t,
                REVIEW_COMMANDS,
                DECISION_DECIDE,
                {"action": decision},
                self.tokens.kafka(role, decider, "decider-portal"),  # type: ignore[arg-type]
            )
            return False
        r = await self._call(
            self.review,
            "POST",
            f"/applications/{t.application_id}/decision",
            "decide",
            headers=headers,
            json_body=decision,
        )
        if r.status_code == 200:
            self._decided(t, r.json())
        elif r.status_code == 409:
            self._conflict(t, "decide", r)
        return False

    def _decided(self, t: Tracked, result: dict[str, Any]) -> None:
        if result.get("status") == "awaiting_decision":
            # The line's budget is exhausted (other tests share it): reject instead.
            t.notes.append(f"budget refused: {result.get('message')}")
            t.plan.outcome = "reject"

    async def _accept(self, t: Tracked) -> bool:
        if self._recently(t, "accept", 5):
            return True
        self._mark(t, "accept")
        name = str(t.document["applicant"]["contact"]["name"])
        if self._use_kafka(t, "accept", t.plan.kafka_acceptance):
            await self._command(
                t,
                APPLICATIONS_INBOUND,
                AGREEMENT_ACCEPT,
                {"acceptance": {"accepted_by": name}},
                self.tokens.kafka("applicant", f"contact-{t.org}", "portal", org=t.org),
            )
            return False
        r = await self._call(
            self.intake,
            "POST",
            f"/applications/{t.application_id}/agreement/acceptance",
            "accept",
            headers=self._applicant(t),
            json_body={"accepted_by": name},
        )
        if r.status_code == 200:
            self._succeeded(t, "accept")
        elif r.status_code == 409:
            self._conflict(t, "accept", r)
        return False

    async def _payments(self, t: Tracked) -> list[dict[str, Any]] | None:
        r = await self._call(
            self.payments,
            "GET",
            "/payments",
            "payments",
            headers=self._finance(),
            params={"application_id": str(t.application_id)},
        )
        if r.status_code != 200:
            return None
        rows: list[dict[str, Any]] = r.json()
        return rows

    async def _active(self, t: Tracked) -> bool:
        """Money moving or a report due: answer the bank's requests, then report."""
        payments = await self._payments(t)
        if payments is None:
            return True
        waiting = [p for p in payments if p["status"] == "requested"]
        for p in waiting:
            key = (str(p["reference"]), int(p["attempt"]))
            last = t.answered.get(key)
            if last is not None and time.monotonic() - last < 15:
                continue
            t.answered[key] = time.monotonic()
            await self._bank_confirms(key[0], key[1])
            self.stats.actions["bank-answer"] += 1
        if waiting or t.status == "final_payment":
            return not waiting
        confirmed = [p for p in payments if p["status"] == "confirmed"]
        if t.plan.kind == "core":
            year: int | None = len({p["reference"] for p in payments if p["kind"] == "installment"})
            if not year or len(confirmed) < year:
                return True
        else:
            year = None
            if not any(p["kind"] == "advance" for p in confirmed):
                return True
        return await self._report(t, year)

    async def _bank_confirms(self, reference: str, attempt: int) -> None:
        payload = {"reference": reference, "attempt": attempt, "outcome": "confirmed"}
        envelope = Envelope(type=BANK_PAYMENT_ANSWER, source="bank", payload=payload)
        await self.kafka.send(
            BANK_PAYMENT_ANSWERS,
            envelope.model_dump_json().encode(),
            reference.encode(),
            self.tokens.kafka("finance", "bank-erp", "bank"),
        )

    def _costs(self, t: Tracked) -> Decimal:
        total = Decimal(str(t.document["budget"]["total"]))
        if t.plan.kind == "core":
            years = int(t.document.get("core_years") or 1)
            return (total / years).quantize(CENT, rounding=ROUND_DOWN)
        if t.plan.claim_back:
            return (total / 2).quantize(CENT, rounding=ROUND_DOWN)
        return total.quantize(CENT)

    async def _report(self, t: Tracked, year: int | None) -> bool:
        action = f"report-{year or 'final'}"
        if self._recently(t, action, 10):
            return True
        costs = self._costs(t)
        report: dict[str, Any] = {
            "actual_costs": {"amount": str(costs), "currency": t.currency},
            "results": "The network met four times; the festival drew 2 000 visitors.",
        }
        if year is not None:
            report["year"] = year
        self._mark(t, action)
        t.actual_costs = costs
        if self._use_kafka(t, action, t.plan.kafka_report):
            await self._command(
                t,
                APPLICATIONS_INBOUND,
                REPORT_SUBMIT,
                {"report": report},
                self.tokens.kafka("applicant", f"contact-{t.org}", "portal", org=t.org),
            )
            return False
        r = await self._call(
            self.intake,
            "POST",
            f"/applications/{t.application_id}/reports",
            "report",
            headers=self._applicant(t),
            json_body=report,
        )
        if r.status_code == 200:
            self._succeeded(t, action, hold=8)
        elif r.status_code == 409:
            self._conflict(t, "report", r)
        return False

    async def _review_report(self, t: Tracked) -> bool:
        if self._recently(t, "report-review", 5):
            return True
        state = await self._review_state(t)
        advisor = state.get("advisor") if state else None
        if not advisor:
            return True
        outcome = "approve"
        if t.plan.request_changes and not t.changes_requested:
            outcome = "request_changes"
        self._mark(t, "report-review")
        r = await self._call(
            self.review,
            "POST",
            f"/applications/{t.application_id}/final-report/review",
            "report-review",
            headers=self.tokens.http("advisor", advisor),
            json_body={"advisor": advisor, "outcome": outcome, "comment": "Thank you."},
        )
        if r.status_code == 200:
            self._succeeded(t, "report-review", hold=8)
            t.changes_requested = t.changes_requested or outcome == "request_changes"
        elif r.status_code == 409:
            self._conflict(t, "report-review", r)
        return False

    async def _settle_claim(self, t: Tracked) -> bool:
        if self._recently(t, "claim", 5):
            return True
        r = await self._call(
            self.intake,
            "GET",
            f"/applications/{t.application_id}/timeline",
            "timeline",
            headers=self._operator(),
        )
        raised = [
            e for e in (r.json() if r.status_code == 200 else []) if e["type"].endswith("raised")
        ]
        if not raised:
            return True
        self._mark(t, "claim")
        r = await self._call(
            self.payments,
            "POST",
            f"/applications/{t.application_id}/claim-back/settled",
            "claim",
            headers=self._finance(),
            json_body={"settled_by": "faults.finance", "amount": raised[0]["payload"]["amount"]},
        )
        if r.status_code == 200:
            self._succeeded(t, "claim")
        elif r.status_code == 409:
            self._conflict(t, "claim", r)
        return False

    # ------------------------------------------------------------------ wake-ups, progress

    async def _watch_events(self) -> None:
        """Wake an application's driver when an event about it passes (a hint only: the
        drivers also poll, so a watcher that misses events during a fault loses nothing)."""
        while True:
            consumer = AIOKafkaConsumer(
                APPLICATION_EVENTS,
                bootstrap_servers=self.settings.kafka_bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="latest",
            )
            try:
                await asyncio.wait_for(consumer.start(), 20)
                while True:
                    batch = await consumer.getmany(timeout_ms=1000)
                    for records in batch.values():
                        for record in records:
                            self._wake_for(record.value)
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(2)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), 10)

    def _wake_for(self, value: bytes | None) -> None:
        try:
            event = json.loads(value or b"")
            app_id = uuid.UUID(event["application_id"])
        except (ValueError, KeyError, TypeError):
            return
        t = self.by_id.get(app_id)
        if t is None and event.get("type") == APPLICATION_SUBMITTED:
            ref = event.get("payload", {}).get("document", {}).get("external_ref")
            t = self.by_ref.get(ref) if isinstance(ref, str) else None
            if t is not None and t.application_id is None:
                t.application_id = app_id
                self.by_id[app_id] = t
        if t is not None:
            t.wake.set()

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(self.progress_every)
            self._print_progress()

    def _print_progress(self, final: bool = False) -> None:
        counts: Counter[str] = Counter(
            (t.status or "submitted") if t.acknowledged else "submitting" for t in self.tracked
        )
        done = sum(t.done for t in self.tracked)
        order = [
            "submitting",
            "submitted",
            "screening",
            "in_review",
            "information_requested",
            "awaiting_decision",
            "approved",
            "agreement_pending",
            "active",
            "report_submitted",
            "report_changes_requested",
            "final_payment",
            "claim_back",
            "closed",
            "rejected",
            "ineligible",
            "lapsed",
            "withdrawn",
        ]
        shown = " ".join(f"{k}={counts[k]}" for k in order if counts[k]) + "".join(
            f" {k}={v}" for k, v in counts.items() if k not in order
        )
        retries = sum(self.stats.http_retries.values()) + self.stats.kafka_retries
        label = self.label()
        self.log(
            f"[{time.monotonic() - self.started:6.0f}s]{' final' if final else ''} "
            f"submitted {len(self.tracked)}/{self.applications} done {done} | {shown} "
            f"| retries {retries}{' | ' + label if label else ''}"
        )
