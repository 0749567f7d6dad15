"""Test doubles for what the grant workflow calls, and a harness that runs it on Temporal's
time-skipping test server (no Postgres, no Kafka, no bank).

- Every double is an activity on the `payments` task queue, named as in production
  (services.payments.activities): `payments.grant_plan` returns a configurable plan (the
  production defaults, in days: the time-skipping server makes them as cheap as seconds);
  `payments.publish` validates each payload as the real outbox does and records the events
  in order; `payments.request_payment` and `payments.mark_unconfirmed` record the orders;
  `payments.release_budget` records the releases and gives back what was committed.
- The bank is the test itself: it answers a payment with the `payment_result` signal, as
  the payments service does when the bank/ERP's answer arrives on Kafka.
- Each double records the server's clock when it ran (the activity's scheduled time), so a
  test can tell on which day a reminder went out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from services.payments.workflows import GrantLifecycle
from shared.contracts.application import ApplicationDocument
from shared.contracts.grant import (
    GRANT_WORKFLOW,
    SIGNAL_PAYMENT_RESULT,
    GrantActionResult,
    GrantInput,
    GrantOutcome,
    GrantPlan,
    PaymentOrder,
    PaymentResult,
    PublishGrantEvent,
)
from shared.contracts.ledger import (
    RELEASE_BUDGET_ACTIVITY,
    ReleaseBudgetRequest,
    ReleaseBudgetResult,
)
from shared.contracts.lifecycle import ApplicationStatus
from shared.contracts.money import Currency, Money
from shared.events import PAYLOADS
from shared.temporal import TASK_QUEUE_PAYMENTS, grant_workflow_id
from tests.conftest import load_sample
from tests.waiting import eventually

T = TypeVar("T")
DAY = timedelta(days=1)
ADVISOR = "marina.ivanova"
DECIDED_YEAR = 2027


def default_plan(currency: Currency, **changes: object) -> GrantPlan:
    """config/funding.toml's advance share and deadlines; `changes` replace fields (e.g.
    `report_escalation_seconds=...`)."""
    plan = GrantPlan(
        advance_share=Decimal("0.8"),
        agreement_acceptance_seconds=(30 * DAY).total_seconds(),
        agreement_reminder_seconds=(23 * DAY).total_seconds(),
        payment_confirmation_alert_seconds=(3 * DAY).total_seconds(),
        final_report_due_seconds=(90 * DAY).total_seconds(),
        report_reminder_before_seconds=(14 * DAY).total_seconds(),
        report_overdue_notice_seconds=(7 * DAY).total_seconds(),
        report_escalation_seconds=(30 * DAY).total_seconds(),
        currency=currency,
    )
    return plan.model_copy(update=changes) if changes else plan


def sample_document(name: str, *, today: date) -> ApplicationDocument:
    """A sample application whose period lies ahead of `today` as in the file (moved forward
    by whole years when it would start within three months), whatever the shared test clock
    says by the time a test runs."""
    data = load_sample(name)
    start = date.fromisoformat(data["period"]["start"])
    end = date.fromisoformat(data["period"]["end"])
    years = 0
    while _plus_years(start, years) < today + timedelta(days=90):
        years += 1
    data["period"] = {
        "start": _plus_years(start, years).isoformat(),
        "end": _plus_years(end, years).isoformat(),
    }
    return ApplicationDocument.model_validate(data)


def _plus_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


# --- what the doubles saw -----------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """One call of a double, with the server's clock when it was scheduled."""

    at: datetime
    value: Any


@dataclass(frozen=True)
class Event:
    at: datetime
    type: str
    actor: str | None
    payload: dict[str, Any]


@dataclass
class Gate:
    """Holds one activity in flight until released (the clock does not skip meanwhile): an
    activity by name, or the publishing of one event type."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)


class GrantDoubles:
    def __init__(self, clock: Callable[[], Awaitable[datetime]] | None = None) -> None:
        # The workflows' clock (the test server's, which skips): the steps run as local
        # activities, whose scheduled time is the worker's wall clock.
        self._clock = clock
        # The plan per funding line (a test may replace one); other lines get a NOK plan.
        self.plans: dict[str, GrantPlan] = {"KOLARCTIC": default_plan("EUR")}
        self.events: list[tuple[UUID, Event]] = []
        self.orders: list[Recorded] = []
        self.unconfirmed: list[Recorded] = []
        self.releases: list[Recorded] = []
        # What the ledger holds committed per application (given back on release).
        self.committed: dict[UUID, Money] = {}
        self._released: set[UUID] = set()
        self._event_ids: set[UUID] = set()
        self.gates: dict[str, Gate] = {}

    def hold(self, name: str) -> Gate:
        """Hold the next call of an activity (by name) or publishing of an event type."""
        gate = self.gates[name] = Gate()
        return gate

    async def _pass_gate(self, name: str) -> None:
        gate = self.gates.pop(name, None)
        if gate is not None:
            gate.reached.set()
            await gate.released.wait()

    async def _now(self) -> datetime:
        if self._clock is not None:
            return await self._clock()
        return activity.info().current_attempt_scheduled_time

    @activity.defn(name="payments.grant_plan")
    async def grant_plan(self, funding_line: str) -> GrantPlan:
        return self.plans.get(funding_line) or default_plan("NOK")

    @activity.defn(name="payments.publish")
    async def publish(self, request: PublishGrantEvent) -> None:
        # As the real activity: an event consumers would dead-letter fails here.
        model: type[BaseModel] | None = PAYLOADS.get((request.event_type, 1))
        if model is None:
            raise ApplicationError(f"unknown event type {request.event_type!r}", non_retryable=True)
        try:
            model.model_validate(request.payload)
        except ValidationError as exc:
            raise ApplicationError(
                f"invalid {request.event_type}: {exc}", non_retryable=True
            ) from exc
        await self._pass_gate(request.event_type)
        if request.event_id in self._event_ids:  # the outbox is keyed by event id
            return
        self._event_ids.add(request.event_id)
        app_id = UUID(str(request.payload["application_id"]))
        event = Event(await self._now(), request.event_type, request.actor, dict(request.payload))
        self.events.append((app_id, event))

    @activity.defn(name="payments.request_payment")
    async def request_payment(self, order: PaymentOrder) -> None:
        await self._pass_gate("payments.request_payment")
        self.orders.append(Recorded(await self._now(), order))

    @activity.defn(name="payments.mark_unconfirmed")
    async def mark_unconfirmed(self, order: PaymentOrder) -> None:
        self.unconfirmed.append(Recorded(await self._now(), order))

    @activity.defn(name=RELEASE_BUDGET_ACTIVITY)
    async def release_budget(self, request: ReleaseBudgetRequest) -> ReleaseBudgetResult:
        await self._pass_gate(RELEASE_BUDGET_ACTIVITY)
        self.releases.append(Recorded(await self._now(), request))
        committed = self.committed.get(request.application_id)
        if committed is None:
            return ReleaseBudgetResult(
                application_id=request.application_id, outcome="not_committed"
            )
        again = request.application_id in self._released
        self._released.add(request.application_id)
        return ReleaseBudgetResult(
            application_id=request.application_id,
            outcome="already_released" if again else "released",
            amount=committed,
        )

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.grant_plan,
            self.publish,
            self.request_payment,
            self.mark_unconfirmed,
            self.release_budget,
        ]


# --- one grant, as the people involved see it ---------------------------------------------


@dataclass
class Grant:
    env: WorkflowEnvironment
    doubles: GrantDoubles
    id: UUID
    input: GrantInput
    handle: WorkflowHandle[Any, GrantOutcome]
    first_run: WorkflowHandle[Any, GrantOutcome]

    @property
    def document(self) -> ApplicationDocument:
        return self.input.document

    async def update(self, name: str, arg: BaseModel) -> GrantActionResult:
        result: GrantActionResult = await self.handle.execute_update(
            name, arg, result_type=GrantActionResult
        )
        return result

    async def result(self) -> GrantOutcome:
        # Waiting for the result lets the server skip its clock to the next timer.
        return await asyncio.wait_for(self.first_run.result(), 30)

    async def status(self) -> ApplicationStatus:
        status: ApplicationStatus = await self.handle.query("status")
        return status

    async def payments(self) -> list[dict[str, Any]]:
        payments: list[dict[str, Any]] = await self.handle.query("payments")
        return payments

    async def reaches(self, status: ApplicationStatus) -> ApplicationStatus:
        async def probe() -> ApplicationStatus | None:
            current = await self.status()
            return current if current == status else None

        return await wait_for(probe)

    # What the doubles saw for this grant.

    def events(self) -> list[Event]:
        return [e for app_id, e in self.doubles.events if app_id == self.id]

    def types(self) -> list[str]:
        return [e.type for e in self.events()]

    def published(self, event_type: str) -> list[Event]:
        return [e for e in self.events() if e.type == event_type]

    async def event(self, event_type: str, count: int = 1) -> Event:
        """The `count`-th event of that type, once published."""

        async def probe() -> list[Event] | None:
            found = self.published(event_type)
            return found if len(found) >= count else None

        return (await wait_for(probe))[count - 1]

    def orders(self) -> list[PaymentOrder]:
        return [r.value for r in self.doubles.orders if r.value.application_id == self.id]

    async def order(self, count: int) -> PaymentOrder:
        """The `count`-th payment order, once requested."""

        async def probe() -> list[PaymentOrder] | None:
            found = self.orders()
            return found if len(found) >= count else None

        return (await wait_for(probe))[count - 1]

    def unconfirmed(self) -> list[PaymentOrder]:
        return [r.value for r in self.doubles.unconfirmed if r.value.application_id == self.id]

    def releases(self) -> list[ReleaseBudgetRequest]:
        return [r.value for r in self.doubles.releases if r.value.application_id == self.id]

    # The bank.

    async def bank(self, order: PaymentOrder, outcome: str = "confirmed", **extra: Any) -> None:
        result = PaymentResult.model_validate(
            {"reference": order.reference, "attempt": order.attempt, "outcome": outcome, **extra}
        )
        await self.handle.signal(SIGNAL_PAYMENT_RESULT, result)

    async def payment_state(self, reference: str, state: str) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            for payment in await self.payments():
                if payment["reference"] == reference and payment["state"] == state:
                    return payment
            return None

        return await wait_for(probe)

    async def running(self) -> bool:
        return (await self.handle.describe()).status == WorkflowExecutionStatus.RUNNING


async def wait_for(probe: Callable[[], Awaitable[T | None]]) -> T:
    return await eventually(probe, 10, interval=0.05)


class GrantHarness:
    """Starts grant workflows directly on the payments queue (as the lifecycle would after
    the approval) and moves the test server's clock."""

    def __init__(self, env: WorkflowEnvironment) -> None:
        self.env = env
        self.doubles = GrantDoubles(env.get_current_time)
        self.started: list[Grant] = []

    @asynccontextmanager
    async def worker(self) -> AsyncIterator[GrantHarness]:
        async with Worker(
            self.env.client,
            task_queue=TASK_QUEUE_PAYMENTS,
            workflows=[GrantLifecycle],
            activities=self.doubles.activities(),
        ):
            yield self

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def start(self, sample: str, *, committed: bool = True) -> Grant:
        document = sample_document(sample, today=(await self.now()).date())
        app_id = uuid4()
        grant = Money(amount=document.budget.requested, currency=document.budget.currency)
        inp = GrantInput(
            application_id=app_id,
            correlation_id=uuid4(),
            document=document,
            grant=grant,
            advisor=ADVISOR,
            decided_year=DECIDED_YEAR,
        )
        if committed:
            self.doubles.committed[app_id] = grant
        first_run = await self.env.client.start_workflow(
            GRANT_WORKFLOW,
            inp,
            id=grant_workflow_id(app_id),
            task_queue=TASK_QUEUE_PAYMENTS,
            result_type=GrantOutcome,
        )
        # No run id: queries, updates and signals reach the current run (core support
        # continues as new every year). The result is read from the first run on, following
        # the chain to its end (the test server does not long-poll a history without a run).
        handle = self.env.client.get_workflow_handle(
            grant_workflow_id(app_id), result_type=GrantOutcome
        )
        started = Grant(self.env, self.doubles, app_id, inp, handle, first_run)
        self.started.append(started)
        return started

    async def skip(self, duration: timedelta) -> None:
        await self.env.sleep(duration)

    async def skip_to(self, moment: datetime) -> None:
        """Move the clock to `moment` (nothing when it has passed)."""
        now = await self.now()
        if moment > now:
            await self.env.sleep(moment - now)

    async def clean_up(self) -> None:
        """Terminate what a test left running, so no timer of an earlier test moves the
        shared clock for a later one."""
        for grant in self.started:
            if await grant.running():
                await grant.handle.terminate(reason="test finished")
        self.started.clear()
        for gate in self.doubles.gates.values():
            gate.released.set()
        self.doubles.gates.clear()
