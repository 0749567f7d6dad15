"""Test doubles for what the lifecycle and review workflows call, and a harness that runs them
on Temporal's time-skipping test server (no Postgres, no Kafka).

- Review's activities are the real `ReviewActivities` (real screening, plan, advisor choice,
  budget lookup and board calendar) over a repository double that keeps every published
  event in memory instead of writing the outbox (and can hold one event type back, to open
  a race window on purpose).
- The configuration is the production one (config/funding.toml, real deadlines in days: the
  time-skipping server makes them as cheap as seconds, and a slow machine can never reach
  one by accident), with the board meeting every two weeks from the harness's start.
- `payments.commit_budget` is a ledger double on the `payments` task queue: it commits until
  the line's budget (or a lower limit a test sets) is used up, then refuses with
  `budget_exhausted`, and publishes `budget.committed` / `budget.refused` like the ledger.
- Three workers as in production: `intake` (lifecycle), `review` (review workflow and its
  activities), `payments` (the ledger double, and a stand-in for the grant stage: the
  lifecycle hands an approved grant to `GrantLifecycle`, whose own tests are
  tests/unit/test_grant_workflow.py; here it only takes the grant and waits).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from uuid import UUID, uuid4

from temporalio import activity, workflow
from temporalio.api.common.v1 import SearchAttributes, WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    DescribeWorkflowExecutionResponse,
)
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.common import TypedSearchAttributes
from temporalio.converter import decode_typed_search_attributes
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from services.intake.lifecycle import start_lifecycle
from services.intake.workflows import ApplicationLifecycle
from services.review.activities import ReviewActivities
from services.review.repository import Repository
from services.review.workflows import ApplicationReview
from shared.contracts.application import ApplicationDocument
from shared.contracts.grant import GRANT_WORKFLOW, GrantInput
from shared.contracts.ledger import (
    BUDGET_COMMITTED,
    BUDGET_REFUSED,
    COMMIT_BUDGET_ACTIVITY,
    BudgetCommitted,
    BudgetRefused,
    CommitBudgetRequest,
    CommitBudgetResult,
)
from shared.contracts.lifecycle import ApplicationStatus, LifecycleState
from shared.contracts.money import Money
from shared.contracts.review import (
    ActionResult,
    Decide,
    DeciderRole,
    RequestInformation,
    ReviewOutcome,
    ReviewState,
    Scores,
    SubmitReview,
)
from shared.events import ApplicationSubmitted, Envelope
from shared.funding import DEFAULT_PATH, Board, FundingConfig, load_funding_config
from shared.temporal import (
    TASK_QUEUE_INTAKE,
    TASK_QUEUE_PAYMENTS,
    TASK_QUEUE_REVIEW,
    grant_workflow_id,
    lifecycle_workflow_id,
    review_workflow_id,
)
from tests.conftest import load_sample
from tests.waiting import eventually

# The board meets every two weeks from two weeks after the harness starts.
BOARD_EVERY = timedelta(days=14)
BOARD_AGENDA_CUTOFF = timedelta(days=7)


def funding_config(today: date) -> FundingConfig:
    """The production configuration with a board that meets every two weeks from `today`:
    the file's fixed dates run out, and cases ready before the same meeting must be decided
    together at it (funding-fast.toml's `meeting_interval` gives every case its own)."""
    config = load_funding_config(DEFAULT_PATH)
    meetings = [today + BOARD_EVERY * i for i in range(1, 60)]
    board = Board(meeting_dates=meetings, agenda_cutoff=BOARD_AGENDA_CUTOFF)
    return config.model_copy(update={"board": board})


def sample_document(name: str, *, today: date, **changes: Any) -> ApplicationDocument:
    """A sample application as submitted today. The samples' periods are fixed dates; a
    period that would start within three months is moved forward by whole years, so the
    workflows (which screen against Temporal's clock, the real date) see the same
    application whatever day the tests run. `changes` replace top-level fields."""
    data = load_sample(name)
    data.update(changes)
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


# --- the people's actions -------------------------------------------------------------

HEAD = "ingrid.solberg"  # config/funding.toml's roster
DIRECTOR = "erik.haugen"
BOARD = "board.chair"
SCORES = Scores(cooperation=4, relevance=5, feasibility=4, budget_realism=3, people_to_people=5)


def review(
    state: ReviewState, recommendation: str = "approve", amount: str | None = None
) -> SubmitReview:
    """The assigned advisor's review."""
    return SubmitReview.model_validate(
        {
            "advisor": state.advisor,
            "scores": SCORES,
            "comment": "Solid cooperation plan across the border.",
            "recommendation": recommendation,
            "recommended_amount": amount,
        }
    )


def ask(state: ReviewState, question: str = "Who leads the exchange in Russia?") -> Any:
    """The assigned advisor asks the applicant."""
    return RequestInformation.model_validate({"advisor": state.advisor, "question": question})


def decide(role: DeciderRole, outcome: str = "approve", amount: str | None = None) -> Decide:
    decider = {"head_of_section": HEAD, "director": DIRECTOR, "board": BOARD}[role]
    return Decide.model_validate(
        {"decider": decider, "role": role, "outcome": outcome, "amount": amount}
    )


# --- what the activities publish ------------------------------------------------------


@dataclass(frozen=True)
class Published:
    envelope: Envelope
    # The read-model change published with the event (review's assignments table).
    status: str | None = None
    next_deadline: datetime | None = None

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def payload(self) -> dict[str, Any]:
        return self.envelope.payload


@dataclass
class EventLog:
    """Every event the doubles published, in order (review's outbox and the ledger's)."""

    events: list[Published] = field(default_factory=list)

    def record(self, published: Published) -> None:
        self.events.append(published)

    def of(self, application_id: UUID) -> list[Published]:
        return [e for e in self.events if e.envelope.application_id == application_id]

    def types(self, application_id: UUID) -> list[str]:
        return [e.type for e in self.of(application_id)]

    def payloads(self, application_id: UUID, event_type: str) -> list[dict[str, Any]]:
        return [e.payload for e in self.of(application_id) if e.type == event_type]


@dataclass
class Gate:
    """Holds back the publishing of one event type until released: the activity stays in
    flight, as it would while Postgres is away, and the workflow meanwhile takes updates."""

    event_type: str
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)


class RecordingRepository(Repository):
    """Review's repository without Postgres: assignment as the real one makes it while every
    advisor is free (the first on the roster for the line), publishing into an EventLog."""

    def __init__(self, log: EventLog) -> None:  # no pool: nothing here talks to Postgres
        self._log = log
        self._assigned: dict[UUID, str] = {}
        self.gates: dict[str, Gate] = {}

    def hold(self, event_type: str) -> Gate:
        gate = self.gates[event_type] = Gate(event_type)
        return gate

    async def assign(
        self,
        *,
        application_id: UUID,
        funding_line: str,
        title: str,
        requested: Money,
        candidates: list[tuple[str, int | None]],
    ) -> str | None:
        if application_id not in self._assigned:
            if not candidates:
                return None
            self._assigned[application_id] = candidates[0][0]
        return self._assigned[application_id]

    async def publish(
        self, envelope: Envelope, *, status: str | None, next_deadline: datetime | None
    ) -> None:
        gate = self.gates.pop(envelope.type, None)
        if gate is not None:
            gate.reached.set()
            await gate.released.wait()
        # The real outbox is keyed by event id: a retried activity publishes once.
        if all(e.envelope.event_id != envelope.event_id for e in self._log.events):
            self._log.record(Published(envelope, status=status, next_deadline=next_deadline))


class LedgerDouble:
    """`payments.commit_budget`: at most one commitment per application; commits while the
    line's budget for the year (or `limits[line]`, when a test sets one) has room, else
    refuses with `budget_exhausted`. Publishes what the real ledger publishes."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self.limits: dict[str, Decimal] = {}
        self.requests: list[CommitBudgetRequest] = []
        self._committed: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
        self._commitments: dict[UUID, CommitBudgetResult] = {}

    def reset(self) -> None:
        self.limits.clear()
        self.requests.clear()
        self._committed.clear()
        self._commitments.clear()

    @activity.defn(name=COMMIT_BUDGET_ACTIVITY)
    async def commit_budget(self, request: CommitBudgetRequest) -> CommitBudgetResult:
        self.requests.append(request)
        previous = self._commitments.get(request.application_id)
        if previous is not None:
            return previous.model_copy(update={"repeated": True})
        key = (request.funding_line, request.year)
        currency = request.budget.currency
        budget = self.limits.get(request.funding_line, request.budget.amount)
        available = budget - self._committed[key]
        now = datetime.now(UTC)
        if request.amount.amount > available:
            refused = BudgetRefused(
                application_id=request.application_id,
                funding_line=request.funding_line,
                year=request.year,
                reason="budget_exhausted",
                amount=request.amount,
                available=Money(amount=available, currency=currency),
                refused_at=now,
            )
            self._emit(BUDGET_REFUSED, refused.model_dump(mode="json"), request)
            return CommitBudgetResult(
                application_id=request.application_id,
                funding_line=request.funding_line,
                year=request.year,
                outcome="refused",
                reason="budget_exhausted",
                amount=request.amount,
                available=refused.available,
            )
        self._committed[key] += request.amount.amount
        left = Money(amount=available - request.amount.amount, currency=currency)
        committed = BudgetCommitted(
            application_id=request.application_id,
            funding_line=request.funding_line,
            year=request.year,
            amount=request.amount,
            available=left,
            committed_at=now,
        )
        self._emit(BUDGET_COMMITTED, committed.model_dump(mode="json"), request)
        result = CommitBudgetResult(
            application_id=request.application_id,
            funding_line=request.funding_line,
            year=request.year,
            outcome="committed",
            amount=request.amount,
            available=left,
            commitment_status="committed",
        )
        self._commitments[request.application_id] = result
        return result

    def _emit(self, event_type: str, payload: dict[str, Any], request: CommitBudgetRequest) -> None:
        self._log.record(
            Published(
                Envelope(
                    type=event_type,
                    application_id=request.application_id,
                    correlation_id=request.correlation_id or uuid4(),
                    source="payments",
                    payload=payload,
                )
            )
        )


@workflow.defn(name=GRANT_WORKFLOW, sandboxed=False)
class GrantStageStandIn:
    """Takes the approved grant and waits, without timers. (A grant workflow no worker polls
    would leave a workflow task outstanding, and the time-skipping server then never skips
    time again, not even after the workflow is terminated.)"""

    @workflow.run
    async def run(self, inp: GrantInput) -> None:
        await workflow.wait_condition(lambda: False)


# --- the harness ----------------------------------------------------------------------


@dataclass
class Application:
    """A submitted application: its lifecycle (parent) and review (child) workflows."""

    client: Client
    id: UUID
    correlation_id: UUID
    document: ApplicationDocument
    lifecycle: WorkflowHandle[Any, LifecycleState]
    review: WorkflowHandle[Any, ReviewOutcome]

    async def state(self) -> ReviewState:
        state: ReviewState = await self.review.query("state", result_type=ReviewState)
        return state

    async def status(self) -> ApplicationStatus:
        """What the lifecycle (the searchable, user-facing status) reports."""
        return cast(ApplicationStatus, await self.lifecycle.query("status", result_type=str))

    async def search_attributes(self) -> TypedSearchAttributes:
        """The lifecycle's search attributes, as operators filter by them."""
        info = (await self._describe()).workflow_execution_info
        # The time-skipping server keeps an unset attribute as a null value where a real
        # server removes it; the SDK cannot decode that, so it is dropped here.
        fields = {
            k: v
            for k, v in info.search_attributes.indexed_fields.items()
            if v.metadata.get("encoding") != b"binary/null"
        }
        return decode_typed_search_attributes(SearchAttributes(indexed_fields=fields))

    async def running(self, handle: WorkflowHandle[Any, Any]) -> bool:
        try:
            info = (await self._describe(handle.id)).workflow_execution_info
        except RPCError:  # never started
            return False
        return info.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING

    async def grant_input(self) -> GrantInput | None:
        """What the lifecycle handed to the grant stage after an approval (None: nothing)."""
        grant = self.client.get_workflow_handle(grant_workflow_id(self.id))
        try:
            async for event in grant.fetch_history_events():
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                [inp] = await self.client.data_converter.decode(list(payloads), [GrantInput])
                assert isinstance(inp, GrantInput)
                return inp
        except RPCError:  # not started
            return None
        return None

    async def stop(self) -> None:
        """Leave nothing behind that could move the shared clock: a review still under way
        (its reminders, answer deadline or board meeting) is cancelled with its lifecycle; a
        concluded one is left to finish (an approval's grant stand-in has no timers).

        Not terminated, and never cancelled while the lifecycle starts the grant stage: either
        can leave the time-skipping server unable to skip time ever again."""
        grant = self.client.get_workflow_handle(grant_workflow_id(self.id))
        try:
            status: str | None = (await self.state()).status
        except (RPCError, WorkflowQueryFailedError):  # the review never started
            status = None

        async def settled() -> bool:
            if status == "approved" and await self.running(grant):
                return True
            return not any([await self.running(h) for h in (self.lifecycle, self.review, grant)])

        if status not in ("approved", "rejected", "ineligible", "withdrawn"):
            if await self.running(self.lifecycle):
                await self.lifecycle.cancel()
        await eventually(settled, 10, interval=0.05)

    async def _describe(self, workflow_id: str | None = None) -> DescribeWorkflowExecutionResponse:
        # Through the raw API: `WorkflowHandle.describe()` fails on the null values above.
        return await self.client.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(
                namespace=self.client.namespace,
                execution=WorkflowExecution(workflow_id=workflow_id or self.lifecycle.id),
            )
        )

    async def update(self, name: str, action: Any) -> ActionResult:
        result: ActionResult = await self.review.execute_update(
            name, action, result_type=ActionResult
        )
        return result

    async def reaches(self, status: ApplicationStatus, timeout: float = 10.0) -> ReviewState:
        """Wait until both workflows report `status` (the lifecycle mirrors the review by
        signal, so it may lag by a moment); the review's state then."""

        async def probe() -> ReviewState | None:
            try:
                state = await self.state()
                mirrored = await self.status()
            except (RPCError, WorkflowQueryFailedError):  # the child is not started yet
                return None
            return state if state.status == status and mirrored == status else None

        return await eventually(probe, timeout, interval=0.05)


@dataclass
class Harness:
    env: WorkflowEnvironment
    config: FundingConfig
    events: EventLog
    repository: RecordingRepository
    ledger: LedgerDouble
    started: list[Application] = field(default_factory=list)

    @classmethod
    async def create(cls, env: WorkflowEnvironment) -> Harness:
        today = (await env.get_current_time()).date()
        events = EventLog()
        return cls(
            env, funding_config(today), events, RecordingRepository(events), LedgerDouble(events)
        )

    @asynccontextmanager
    async def workers(self, *, intake: bool = True) -> AsyncIterator[Harness]:
        """The workers of the three queues (without intake's: a test runs its own). Keep them
        running until the test's workflows are settled: a workflow whose worker went away
        waits for its sticky queue, which the test server never gives up on."""
        client = self.env.client
        review = ReviewActivities(self.repository, self.config)
        async with AsyncExitStack() as stack:
            if intake:
                await stack.enter_async_context(
                    Worker(client, task_queue=TASK_QUEUE_INTAKE, workflows=[ApplicationLifecycle])
                )
            for worker in (
                Worker(
                    client,
                    task_queue=TASK_QUEUE_REVIEW,
                    workflows=[ApplicationReview],
                    activities=[
                        review.plan,
                        review.assign_advisor,
                        review.publish,
                        review.budget_for,
                        review.next_board_meeting,
                    ],
                ),
                Worker(
                    client,
                    task_queue=TASK_QUEUE_PAYMENTS,
                    workflows=[GrantStageStandIn],
                    activities=[self.ledger.commit_budget],
                ),
            ):
                await stack.enter_async_context(worker)
            yield self

    async def today(self) -> date:
        return (await self.env.get_current_time()).date()

    async def document(self, name: str, **changes: Any) -> ApplicationDocument:
        return sample_document(name, today=await self.today(), **changes)

    async def submit(self, document: ApplicationDocument) -> Application:
        """Start the lifecycle exactly as intake does (same id, search attributes, input)."""
        app_id, correlation_id = uuid4(), uuid4()
        event = ApplicationSubmitted(
            application_id=app_id,
            received_at=await self.env.get_current_time(),
            channel="test",
            document=document,
        )
        assert await start_lifecycle(self.env.client, event, correlation_id)
        client = self.env.client
        app = Application(
            client=client,
            id=app_id,
            correlation_id=correlation_id,
            document=document,
            lifecycle=client.get_workflow_handle(
                lifecycle_workflow_id(app_id), result_type=LifecycleState
            ),
            review=client.get_workflow_handle(
                review_workflow_id(app_id), result_type=ReviewOutcome
            ),
        )
        self.started.append(app)
        return app

    async def clock_passed(self, moment: datetime) -> bool:
        return await self.env.get_current_time() > moment

    async def skip(self, duration: timedelta) -> None:
        await self.env.sleep(duration)

    async def skip_past(self, moment: datetime) -> None:
        """Skip Temporal's clock to just after `moment`."""
        now = await self.env.get_current_time()
        if moment > now:
            await self.env.sleep(moment - now + timedelta(seconds=1))

    async def clean_up(self) -> None:
        """Stop what a test left running, so no timer of an earlier test moves the shared
        clock for a later one, and forget the test's ledger limits and gates."""
        for app in self.started:
            await app.stop()
        self.started.clear()
        self.ledger.reset()
        self.repository.gates.clear()
