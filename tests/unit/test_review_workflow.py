"""Review and decision as the people involved meet them, on Temporal's time-skipping test
server: the lifecycle (intake queue) starts the review child (review queue), which calls the
real screening and configuration through review's activities and the budget ledger double
(payments queue). What is asserted is what a user would notice: the status both workflows
report, the lifecycle's search attributes operators filter by, the events published, and
the answer a refused action gets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from services.review.screening import screen
from shared.contracts.ledger import BUDGET_COMMITTED, BUDGET_REFUSED
from shared.contracts.lifecycle import ApplicationStatus
from shared.contracts.review import (
    ADVISOR_ASSIGNED,
    APPLICATION_SCREENED,
    APPLICATION_WITHDRAWN,
    BOARD_SCHEDULED,
    DECISION_MADE,
    INFORMATION_ANSWERED,
    INFORMATION_REQUESTED,
    REVIEW_ESCALATED,
    REVIEW_REMINDER,
    REVIEW_SUBMITTED,
    UPDATE_ANSWER_INFORMATION,
    UPDATE_DECIDE,
    UPDATE_REQUEST_INFORMATION,
    UPDATE_SUBMIT_REVIEW,
    AnswerInformation,
)
from shared.temporal import (
    SA_ADVISOR,
    SA_COUNTRY,
    SA_FUNDING_LINE,
    SA_NEXT_DEADLINE,
    SA_STATUS,
    TASK_QUEUE_REVIEW,
    lifecycle_workflow_id,
    review_workflow_id,
)
from tests.temporal_helpers import time_skipping
from tests.waiting import eventually
from tests.workflow_doubles import (
    DIRECTOR,
    HEAD,
    SCORES,
    Application,
    Harness,
    ask,
    decide,
    review,
)

pytestmark = pytest.mark.filterwarnings(
    # pydantic imports email_validator lazily, inside the workflow sandbox (EmailStr in the
    # application document): a warning about sandbox re-imports, not a failure.
    r"ignore:Module (email_validator|idna)\S* was imported after initial workflow load"
)

SMALL = "small-grant-head-of-section.json"  # UD-PROJECT, 75 000 NOK: head of section
LARGE = "ru-school-exchange.json"  # UD-PROJECT, 220 000 NOK: director
CORE = "en-core-support.json"  # UD-CORE core support: the board
INELIGIBLE = [
    "ineligible-no-partner-across-border.json",
    "ineligible-over-share-and-cap.json",
    "ineligible-youth-wrong-target.json",
]


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await time_skipping()
    yield environment
    await environment.shutdown()


@pytest.fixture(scope="module")
async def running(env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    harness = await Harness.create(env)
    async with harness.workers():
        yield harness


@pytest.fixture
async def h(running: Harness) -> AsyncIterator[Harness]:
    yield running
    await running.clean_up()


# --- steps --------------------------------------------------------------------------------


async def submitted(h: Harness, sample: str, **changes: Any) -> Application:
    """A sample application, submitted and waiting for its advisor's review."""
    app = await h.submit(await h.document(sample, **changes))
    await app.reaches("in_review")
    return app


async def reviewed(
    h: Harness,
    sample: str,
    recommendation: str = "approve",
    amount: str | None = None,
    **changes: Any,
) -> Application:
    """A sample application, reviewed and waiting for its decision."""
    app = await submitted(h, sample, **changes)
    action = review(await app.state(), recommendation, amount)
    assert (await app.update(UPDATE_SUBMIT_REVIEW, action)).status == "awaiting_decision"
    return app


async def refused(h: Harness, app: Application, update: str, action: Any) -> str:
    """The update is refused with a reason, and nothing changes: not the status either
    workflow reports, not the review's state, and no event is published."""
    state, status, events = await app.state(), await app.status(), list(h.events.of(app.id))
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await app.update(update, action)
    assert await app.state() == state
    assert await app.status() == status
    assert h.events.of(app.id) == events
    return str(failure.value.cause)


async def concluded(app: Application) -> ApplicationStatus:
    """How the review ended, once the lifecycle reports it too. (After an approval the
    lifecycle goes on with the grant stage, so only the review's workflow completes.)"""
    status = (await app.review.result()).status
    await app.reaches(status)
    return status


async def published(h: Harness, app: Application, event_type: str) -> list[dict[str, Any]]:
    """The payloads of `event_type` published for the application, once there is one."""

    async def probe() -> list[dict[str, Any]]:
        return h.events.payloads(app.id, event_type)

    return await eventually(probe, 10, interval=0.05)


async def next_deadline(app: Application) -> datetime | None:
    return (await app.search_attributes()).get(SA_NEXT_DEADLINE)


async def deadline_becomes(
    app: Application, check: Callable[[datetime | None], bool]
) -> datetime | None:
    """Wait until the lifecycle's NextDeadline passes `check`; its value then."""

    async def probe() -> tuple[datetime | None] | None:
        value = await next_deadline(app)
        return (value,) if check(value) else None

    return (await eventually(probe, 10, interval=0.05))[0]


def amount_of(payload: dict[str, Any]) -> Decimal:
    return Decimal(payload["amount"]["amount"])


def advisor_for(h: Harness, line: str) -> str:
    # Every advisor is free in these tests: the first on the roster for the line gets it.
    return h.config.advisors_for(line)[0].id


# --- screening ----------------------------------------------------------------------------


@pytest.mark.parametrize("sample", ["nb-ungdom-fotball.json", "ko188-cultural-network.json"])
async def test_an_eligible_application_goes_to_its_advisor(h: Harness, sample: str) -> None:
    app = await submitted(h, sample)
    line = app.document.funding_line
    state = await app.state()
    assert state.advisor == advisor_for(h, line)
    assert state.next_deadline is not None
    # The advisor must review within the configured reminder deadline.
    now = await h.env.get_current_time()
    assert now < state.next_deadline <= now + h.config.deadlines.review_reminder

    attributes = await app.search_attributes()
    assert attributes.get(SA_STATUS) == "in_review"
    assert attributes.get(SA_ADVISOR) == state.advisor
    assert attributes.get(SA_NEXT_DEADLINE) == state.next_deadline
    # What intake set at the start is still there for operators.
    assert attributes.get(SA_FUNDING_LINE) == line
    assert attributes.get(SA_COUNTRY) == app.document.applicant.country

    assert h.events.types(app.id) == [APPLICATION_SCREENED, ADVISOR_ASSIGNED]
    [screened] = h.events.payloads(app.id, APPLICATION_SCREENED)
    assert screened["eligible"] is True and screened["reasons"] == []
    [assigned] = h.events.payloads(app.id, ADVISOR_ASSIGNED)
    assert assigned["advisor"] == state.advisor
    assert datetime.fromisoformat(assigned["review_due"]) == state.next_deadline


@pytest.mark.parametrize("sample", INELIGIBLE)
async def test_an_ineligible_application_ends_with_every_reason(h: Harness, sample: str) -> None:
    app = await h.submit(await h.document(sample))
    assert (await app.lifecycle.result()).status == "ineligible"
    expected = screen(app.document, h.config, await h.today()).codes
    assert expected

    assert (await app.review.result()).reasons == expected
    assert await app.status() == "ineligible"
    assert (await app.state()).ineligible_reasons == expected
    attributes = await app.search_attributes()
    assert attributes.get(SA_STATUS) == "ineligible"
    assert attributes.get(SA_ADVISOR) is None
    assert attributes.get(SA_NEXT_DEADLINE) is None

    # One event: the applicant hears every reason, in each of the three languages.
    assert h.events.types(app.id) == [APPLICATION_SCREENED]
    [screened] = h.events.payloads(app.id, APPLICATION_SCREENED)
    assert screened["eligible"] is False
    assert screened["status"] == "ineligible"
    assert [r["code"] for r in screened["reasons"]] == expected
    for reason in screened["reasons"]:
        assert set(reason["text"]) == {"nb", "en", "ru"}
        assert all(text.strip() for text in reason["text"].values())


async def test_the_review_runs_as_the_lifecycles_child_on_the_review_queue(h: Harness) -> None:
    app = await submitted(h, SMALL)
    assert app.lifecycle.id == lifecycle_workflow_id(app.id)
    described = await app.review.describe()
    assert described.id == review_workflow_id(app.id)
    assert described.parent_id == lifecycle_workflow_id(app.id)
    assert described.task_queue == TASK_QUEUE_REVIEW


# --- review deadlines ---------------------------------------------------------------------


async def test_an_unreviewed_application_reminds_the_advisor_then_escalates(h: Harness) -> None:
    app = await submitted(h, SMALL)
    state = await app.state()
    started = await h.env.get_current_time()
    reminder_at = state.next_deadline
    assert reminder_at is not None

    await h.skip_past(reminder_at)
    [reminder] = await published(h, app, REVIEW_REMINDER)
    assert reminder["advisor"] == state.advisor and reminder["notify"] == state.advisor
    # Next up for operators: the escalation.
    escalation_at = await deadline_becomes(app, lambda d: d is not None and d > reminder_at)
    assert escalation_at is not None
    assert escalation_at - started <= h.config.deadlines.review_escalation
    assert REVIEW_ESCALATED not in h.events.types(app.id)

    await h.skip_past(escalation_at)
    [escalation] = await published(h, app, REVIEW_ESCALATED)
    assert escalation["notify"] == h.config.roster.head_of_section
    assert escalation["advisor"] == state.advisor
    await deadline_becomes(app, lambda d: d is None)
    assert await app.status() == "in_review"

    # Late, but the review still counts.
    assert (await app.update(UPDATE_SUBMIT_REVIEW, review(state))).status == "awaiting_decision"
    await app.reaches("awaiting_decision")
    assert h.events.types(app.id) == [
        APPLICATION_SCREENED,
        ADVISOR_ASSIGNED,
        REVIEW_REMINDER,
        REVIEW_ESCALATED,
        REVIEW_SUBMITTED,
    ]


async def test_a_review_submitted_while_the_reminder_goes_out_stands(h: Harness) -> None:
    # Publishing the reminder hangs (Postgres away) while the advisor submits the review.
    app = await submitted(h, SMALL)
    state = await app.state()
    assert state.next_deadline is not None
    gate = h.repository.hold(REVIEW_REMINDER)
    skipping = asyncio.create_task(h.skip_past(state.next_deadline))
    await asyncio.wait_for(gate.reached.wait(), 10)

    assert (await app.update(UPDATE_SUBMIT_REVIEW, review(state))).status == "awaiting_decision"
    gate.released.set()
    await skipping
    await published(h, app, REVIEW_REMINDER)
    await h.skip(timedelta(hours=1))

    # The review is not lost: the application stays with its decider.
    assert (await app.reaches("awaiting_decision")).decider_role == "head_of_section"
    assert await next_deadline(app) is None
    assert (await app.update(UPDATE_DECIDE, decide("head_of_section"))).status == "approved"


# --- information requests -----------------------------------------------------------------


async def test_an_answered_information_request_goes_back_to_review(h: Harness) -> None:
    app = await submitted(h, SMALL)
    state = await app.state()
    result = await app.update(UPDATE_REQUEST_INFORMATION, ask(state))
    assert result.status == "information_requested"

    waiting = await app.reaches("information_requested")
    answer_by = waiting.next_deadline
    assert answer_by is not None
    assert await next_deadline(app) == answer_by
    now = await h.env.get_current_time()
    assert now < answer_by <= now + h.config.deadlines.information_answer
    [request] = h.events.payloads(app.id, INFORMATION_REQUESTED)
    assert request["question"] == ask(state).question
    assert datetime.fromisoformat(request["answer_by"]) == answer_by

    # The applicant answers a day before the deadline.
    await h.skip(answer_by - now - timedelta(days=1))
    answer = AnswerInformation(answer="Murmansk Regional Youth Centre leads it.")
    assert (await app.update(UPDATE_ANSWER_INFORMATION, answer)).status == "in_review"
    back = await app.reaches("in_review")
    # The advisor gets a fresh review deadline in place of the answer deadline.
    assert back.next_deadline is not None and back.next_deadline > answer_by
    await deadline_becomes(app, lambda d: d == back.next_deadline)
    [answered] = h.events.payloads(app.id, INFORMATION_ANSWERED)
    assert answered["answer"] == answer.answer

    # Past the old answer deadline nothing is withdrawn.
    await h.skip(timedelta(days=2))
    assert await app.status() == "in_review"
    assert APPLICATION_WITHDRAWN not in h.events.types(app.id)


async def test_an_unanswered_information_request_withdraws_the_application(h: Harness) -> None:
    app = await submitted(h, LARGE)
    await app.update(UPDATE_REQUEST_INFORMATION, ask(await app.state()))
    answer_by = (await app.reaches("information_requested")).next_deadline
    assert answer_by is not None

    await h.skip_past(answer_by)
    assert (await app.lifecycle.result()).status == "withdrawn"
    assert (await app.review.result()).status == "withdrawn"
    assert await app.status() == "withdrawn"
    attributes = await app.search_attributes()
    assert attributes.get(SA_STATUS) == "withdrawn"
    assert attributes.get(SA_NEXT_DEADLINE) is None
    assert h.events.types(app.id)[-2:] == [INFORMATION_REQUESTED, APPLICATION_WITHDRAWN]
    [withdrawn] = h.events.payloads(app.id, APPLICATION_WITHDRAWN)
    assert withdrawn["status"] == "withdrawn"
    assert withdrawn["reason"] == "information_not_provided_in_time"


async def test_an_answer_sent_again_while_the_first_is_recorded_is_refused(h: Harness) -> None:
    # The applicant's first answer is accepted but not yet recorded (its request timed out, say,
    # while Temporal restarted); the client sends it again. One answer, one event.
    app = await submitted(h, SMALL)
    await app.update(UPDATE_REQUEST_INFORMATION, ask(await app.state()))
    await app.reaches("information_requested")
    gate = h.repository.hold(INFORMATION_ANSWERED)
    answer = AnswerInformation(answer="School no. 5 in Murmansk.")
    first = asyncio.create_task(app.update(UPDATE_ANSWER_INFORMATION, answer))
    await asyncio.wait_for(gate.reached.wait(), 10)
    with pytest.raises(WorkflowUpdateFailedError) as again:
        await app.update(UPDATE_ANSWER_INFORMATION, answer)
    assert "answered already" in str(again.value.cause)
    gate.released.set()
    assert (await first).status == "in_review"
    assert h.events.types(app.id).count(INFORMATION_ANSWERED) == 1


async def test_an_answer_accepted_just_before_the_deadline_is_not_withdrawn(h: Harness) -> None:
    # The answer is accepted a second before the deadline; recording it takes longer.
    app = await submitted(h, SMALL)
    await app.update(UPDATE_REQUEST_INFORMATION, ask(await app.state()))
    answer_by = (await app.reaches("information_requested")).next_deadline
    assert answer_by is not None
    await h.skip(answer_by - await h.env.get_current_time() - timedelta(seconds=1))

    gate = h.repository.hold(INFORMATION_ANSWERED)
    answer = AnswerInformation(answer="School no. 5 in Murmansk.")
    answering = asyncio.create_task(app.update(UPDATE_ANSWER_INFORMATION, answer))
    await asyncio.wait_for(gate.reached.wait(), 10)
    # The clock does not skip while an activity is in flight: the deadline passes in real time.
    await eventually(lambda: h.clock_passed(answer_by + timedelta(milliseconds=500)), 10)
    await asyncio.sleep(0.3)
    gate.released.set()

    assert (await answering).status == "in_review"
    await h.skip(timedelta(hours=1))
    assert (await app.reaches("in_review")).next_deadline is not None
    assert APPLICATION_WITHDRAWN not in h.events.types(app.id)


# --- refused actions ----------------------------------------------------------------------


async def test_wrong_actions_during_review_are_refused(h: Harness) -> None:
    app = await submitted(h, SMALL)
    state = await app.state()
    other = next(a.id for a in h.config.roster.advisors if a.id != state.advisor)
    impostor = state.model_copy(update={"advisor": other})

    reason = await refused(h, app, UPDATE_SUBMIT_REVIEW, review(impostor))
    assert "only the assigned advisor" in reason
    reason = await refused(h, app, UPDATE_REQUEST_INFORMATION, ask(impostor))
    assert "only the assigned advisor" in reason
    reason = await refused(h, app, UPDATE_DECIDE, decide("head_of_section"))
    assert "cannot decide while the application is in_review" in reason
    reason = await refused(h, app, UPDATE_ANSWER_INFORMATION, AnswerInformation(answer="Here."))
    assert "cannot answer an information request while the application is in_review" in reason
    too_much = str(app.document.budget.requested + 1)
    reason = await refused(h, app, UPDATE_SUBMIT_REVIEW, review(state, amount=too_much))
    assert "exceeds the requested" in reason

    # The assigned advisor still can.
    assert (await app.update(UPDATE_SUBMIT_REVIEW, review(state))).status == "awaiting_decision"


async def test_wrong_decisions_are_refused(h: Harness) -> None:
    app = await reviewed(h, SMALL)
    assert (await app.state()).decider_role == "head_of_section"
    too_much = str(app.document.budget.requested + 1)

    reason = await refused(h, app, UPDATE_DECIDE, decide("director"))
    assert "decided by the head_of_section" in reason
    reason = await refused(h, app, UPDATE_DECIDE, decide("board"))
    assert "decided by the head_of_section" in reason
    reason = await refused(h, app, UPDATE_DECIDE, decide("head_of_section", amount=too_much))
    assert "exceeds the requested" in reason
    action = decide("head_of_section", outcome="reject", amount="1000")
    assert "a rejection carries no amount" in await refused(h, app, UPDATE_DECIDE, action)
    reason = await refused(h, app, UPDATE_SUBMIT_REVIEW, review(await app.state()))
    assert "cannot submit a review while the application is awaiting_decision" in reason

    # The right decider still decides, once: the review is over after it.
    assert (await app.update(UPDATE_DECIDE, decide("head_of_section"))).status == "approved"
    assert await concluded(app) == "approved"
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):
        await app.update(UPDATE_DECIDE, decide("head_of_section", outcome="reject"))
    assert await app.status() == "approved"
    assert h.events.types(app.id).count(DECISION_MADE) == 1


async def test_the_head_of_section_cannot_approve_beyond_their_limit(h: Harness) -> None:
    # A reduction recommended under the threshold gives the decision to the head of section,
    # who may not then approve more than the threshold: a larger grant is the director's.
    app = await reviewed(h, LARGE, amount="90000")
    assert (await app.state()).decider_role == "head_of_section"
    threshold = h.config.line("UD-PROJECT").decision_threshold
    action = decide("head_of_section", amount=str(threshold + 1))
    assert "director" in await refused(h, app, UPDATE_DECIDE, action)

    action = decide("head_of_section", amount=str(threshold))
    assert (await app.update(UPDATE_DECIDE, action)).status == "approved"
    [committed] = h.events.payloads(app.id, BUDGET_COMMITTED)
    assert amount_of(committed) == threshold


# --- decisions ----------------------------------------------------------------------------


async def test_the_head_of_section_approves_a_small_grant(h: Harness) -> None:
    app = await reviewed(h, SMALL)
    awaiting = await app.reaches("awaiting_decision")
    assert awaiting.decider_role == "head_of_section"
    assert await next_deadline(app) is None
    [submitted_review] = h.events.payloads(app.id, REVIEW_SUBMITTED)
    assert submitted_review["decider_role"] == "head_of_section"
    assert submitted_review["total_score"] == SCORES.total

    result = await app.update(UPDATE_DECIDE, decide("head_of_section"))
    requested = app.document.budget.requested
    assert result.status == "approved"
    assert result.amount is not None and result.amount.amount == requested
    assert await concluded(app) == "approved"
    attributes = await app.search_attributes()
    assert attributes.get(SA_STATUS) == "approved"
    assert attributes.get(SA_ADVISOR) == awaiting.advisor

    assert h.events.types(app.id) == [
        APPLICATION_SCREENED,
        ADVISOR_ASSIGNED,
        REVIEW_SUBMITTED,
        BUDGET_COMMITTED,
        DECISION_MADE,
    ]
    [committed] = h.events.payloads(app.id, BUDGET_COMMITTED)
    assert amount_of(committed) == requested
    assert committed["funding_line"] == "UD-PROJECT"
    [decision] = h.events.payloads(app.id, DECISION_MADE)
    assert decision["outcome"] == "approved" and decision["role"] == "head_of_section"
    assert decision["decider"] == HEAD
    assert amount_of(decision) == requested

    # The approved grant goes on to the agreement and payments stage.
    grant = await eventually(app.grant_input, 10, interval=0.05)
    assert grant.grant.amount == requested and grant.advisor == awaiting.advisor


async def test_the_director_decides_a_large_grant_and_commits_a_reduced_amount(
    h: Harness,
) -> None:
    app = await reviewed(h, LARGE)
    assert (await app.state()).decider_role == "director"
    reason = await refused(h, app, UPDATE_DECIDE, decide("head_of_section"))
    assert "decided by the director" in reason

    result = await app.update(UPDATE_DECIDE, decide("director", amount="180000"))
    assert result.status == "approved"
    assert result.amount is not None and result.amount.amount == Decimal("180000")
    assert await concluded(app) == "approved"
    [committed] = h.events.payloads(app.id, BUDGET_COMMITTED)
    assert amount_of(committed) == Decimal("180000")
    [decision] = h.events.payloads(app.id, DECISION_MADE)
    assert decision["role"] == "director" and decision["decider"] == DIRECTOR
    assert amount_of(decision) == Decimal("180000")
    grant = await eventually(app.grant_input, 10, interval=0.05)
    assert grant.grant.amount == Decimal("180000")


async def test_a_reduced_recommendation_is_what_gets_committed(h: Harness) -> None:
    app = await reviewed(h, LARGE, amount="95000")
    state = await app.state()
    assert state.decider_role == "head_of_section"
    assert state.recommended is not None and state.recommended.amount == Decimal("95000")
    assert (await app.update(UPDATE_DECIDE, decide("head_of_section"))).status == "approved"
    [request] = h.ledger.requests
    assert request.amount.amount == Decimal("95000")


async def test_a_rejection_commits_nothing(h: Harness) -> None:
    app = await reviewed(h, LARGE, recommendation="reject")
    result = await app.update(UPDATE_DECIDE, decide("director", outcome="reject"))
    assert result.status == "rejected" and result.amount is None
    assert (await app.lifecycle.result()).status == "rejected"
    assert (await app.search_attributes()).get(SA_STATUS) == "rejected"
    assert h.ledger.requests == []
    assert BUDGET_COMMITTED not in h.events.types(app.id)
    [decision] = h.events.payloads(app.id, DECISION_MADE)
    assert decision["outcome"] == "rejected" and decision["amount"] is None
    assert await app.grant_input() is None


async def test_only_one_of_two_simultaneous_decisions_counts(h: Harness) -> None:
    app = await reviewed(h, SMALL)
    results = await asyncio.gather(
        app.update(UPDATE_DECIDE, decide("head_of_section")),
        app.update(UPDATE_DECIDE, decide("head_of_section", outcome="reject")),
        return_exceptions=True,
    )
    decided = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(decided) == 1 and len(failed) == 1
    assert isinstance(failed[0], WorkflowUpdateFailedError)
    assert "already decided" in str(failed[0].cause)
    assert await concluded(app) == decided[0].status
    assert h.events.types(app.id).count(DECISION_MADE) == 1
    assert len(h.ledger.requests) <= 1


@pytest.mark.parametrize("then", ["reduce", "reject"])
async def test_an_exhausted_budget_leaves_the_decision_to_the_decider(
    h: Harness, then: str
) -> None:
    h.ledger.limits["UD-PROJECT"] = Decimal("50000")
    app = await reviewed(h, SMALL)

    result = await app.update(UPDATE_DECIDE, decide("head_of_section"))
    assert result.status == "awaiting_decision"
    assert "budget_exhausted" in result.message
    assert result.available is not None and result.available.amount == Decimal("50000")
    assert (await app.reaches("awaiting_decision")).decider_role == "head_of_section"
    assert (await app.search_attributes()).get(SA_STATUS) == "awaiting_decision"
    assert BUDGET_REFUSED in h.events.types(app.id)
    assert DECISION_MADE not in h.events.types(app.id)

    if then == "reduce":
        result = await app.update(UPDATE_DECIDE, decide("head_of_section", amount="50000"))
        assert result.status == "approved"
        assert await concluded(app) == "approved"
        [committed] = h.events.payloads(app.id, BUDGET_COMMITTED)
        assert amount_of(committed) == Decimal("50000")
    else:
        result = await app.update(UPDATE_DECIDE, decide("head_of_section", outcome="reject"))
        assert result.status == "rejected"
        assert await concluded(app) == "rejected"
        assert BUDGET_COMMITTED not in h.events.types(app.id)
    assert h.events.types(app.id).count(DECISION_MADE) == 1


# --- the board ----------------------------------------------------------------------------


async def test_core_support_is_decided_by_the_board_at_its_meeting(h: Harness) -> None:
    today = await h.today()
    app = await reviewed(h, CORE)
    [scheduled] = await published(h, app, BOARD_SCHEDULED)
    meeting = date.fromisoformat(scheduled["meeting"])
    # The first meeting the papers can still reach.
    assert meeting == h.config.board.next_meeting(today)
    meets_at = datetime.combine(meeting, time(0), tzinfo=UTC)

    state = await app.reaches("awaiting_decision")
    assert state.decider_role == "board" and state.board_meeting == meeting
    await deadline_becomes(app, lambda d: d == meets_at)

    reason = await refused(h, app, UPDATE_DECIDE, decide("board"))
    assert f"the board decides at its meeting on {meeting.isoformat()}" in reason
    assert "decided by the board" in await refused(h, app, UPDATE_DECIDE, decide("director"))

    await h.skip_past(meets_at)
    await deadline_becomes(app, lambda d: d is None)
    assert (await app.update(UPDATE_DECIDE, decide("board"))).status == "approved"
    assert await concluded(app) == "approved"
    [committed] = h.events.payloads(app.id, BUDGET_COMMITTED)
    assert amount_of(committed) == app.document.budget.requested
    assert h.events.types(app.id)[-3:] == [BOARD_SCHEDULED, BUDGET_COMMITTED, DECISION_MADE]


async def test_core_cases_ready_before_a_meeting_are_decided_together_at_it(
    h: Harness,
) -> None:
    first = await reviewed(h, CORE)
    await h.skip(timedelta(days=1))
    second = await reviewed(h, CORE, external_ref="CORE-2")
    [one] = await published(h, first, BOARD_SCHEDULED)
    [two] = await published(h, second, BOARD_SCHEDULED)
    assert one["meeting"] == two["meeting"]
    meets_at = datetime.combine(date.fromisoformat(one["meeting"]), time(0), tzinfo=UTC)
    for app in (first, second):
        await deadline_becomes(app, lambda d: d == meets_at)

    await h.skip_past(meets_at)
    for app in (first, second):
        await deadline_becomes(app, lambda d: d is None)
    decided = await asyncio.gather(
        first.update(UPDATE_DECIDE, decide("board")),
        second.update(UPDATE_DECIDE, decide("board", outcome="reject")),
    )
    assert [r.status for r in decided] == ["approved", "rejected"]
    assert [await concluded(first), await concluded(second)] == ["approved", "rejected"]
