"""The review workflow: screening, advisor assignment, review, information requests and the
funding decision with its budget commitment. A child of the application's lifecycle, on the
review task queue; it reports every status change to the parent, which owns the searchable
status. Human actions are updates with validators, so a wrong action is refused with a reason
and never changes the state. Every deadline is a durable timer."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    # pydantic imports it lazily when validating e-mail addresses; load it outside the
    # sandbox once instead of on every run.
    import email_validator  # noqa: F401

    from shared.contracts.ledger import (
        COMMIT_BUDGET_ACTIVITY,
        CommitBudgetRequest,
        CommitBudgetResult,
    )
    from shared.contracts.lifecycle import ApplicationStatus
    from shared.contracts.money import Money
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
        REVIEW_WORKFLOW,
        SIGNAL_REVIEW_PROGRESS,
        UPDATE_ANSWER_INFORMATION,
        UPDATE_DECIDE,
        UPDATE_REQUEST_INFORMATION,
        UPDATE_SUBMIT_REVIEW,
        ActionResult,
        AdvisorAssigned,
        AnswerInformation,
        ApplicationScreened,
        ApplicationWithdrawn,
        AssignAdvisor,
        BoardMeeting,
        BoardMeetingQuery,
        BoardScheduled,
        BudgetQuery,
        Decide,
        DecisionMade,
        InformationAnswered,
        InformationRequested,
        PlanRequest,
        PublishEvent,
        RequestInformation,
        ReviewDeadline,
        ReviewInput,
        ReviewOutcome,
        ReviewPlan,
        ReviewProgress,
        ReviewState,
        ReviewSubmitted,
        SubmitReview,
    )
    from shared.temporal import TASK_QUEUE_PAYMENTS
    from shared.workflow_steps import Progress, step

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Activities talk to Postgres; retry while it is away, but not forever on a bug.
RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=0)


@workflow.defn(name=REVIEW_WORKFLOW)
class ApplicationReview:
    def __init__(self) -> None:
        self._inp: ReviewInput | None = None
        self._plan: ReviewPlan | None = None
        self._status: ApplicationStatus = "screening"
        self._advisor: str | None = None
        self._next_deadline: datetime | None = None
        self._recommended: Decimal | None = None
        self._information_answered = False
        self._board_open = False
        self._board_meeting: BoardMeeting | None = None
        self._decided: ActionResult | None = None
        self._deciding = asyncio.Lock()
        self._progress_sent = 0
        self._signals = Progress()

    # ---------------------------------------------------------------- the run

    @workflow.run
    async def run(self, inp: ReviewInput) -> ReviewOutcome:
        outcome = await self._run(inp)
        await self._signals.drain()
        return outcome

    async def _run(self, inp: ReviewInput) -> ReviewOutcome:
        self._inp = inp
        doc = inp.document
        await self._progress("screening")
        plan: ReviewPlan = await step(
            "review.plan",
            PlanRequest(document=doc, today=workflow.now().date()),
            result_type=ReviewPlan,
        )
        self._plan = plan
        await self._publish(
            APPLICATION_SCREENED,
            ApplicationScreened(
                application_id=inp.application_id,
                status="in_review" if plan.eligible else "ineligible",
                eligible=plan.eligible,
                reasons=plan.reasons,
            ),
        )
        if not plan.eligible:
            await self._progress("ineligible")
            return ReviewOutcome(status="ineligible", reasons=[r.code for r in plan.reasons])

        self._advisor = await step(
            "review.assign_advisor",
            AssignAdvisor(
                application_id=inp.application_id,
                funding_line=doc.funding_line,
                title=doc.title,
                requested=self._requested(),
            ),
            result_type=str,
        )
        while True:
            if self._status in ("screening", "in_review"):
                await self._review_phase()
            elif self._status == "information_requested":
                if not await self._information_phase():
                    return ReviewOutcome(status="withdrawn")
            elif self._status == "awaiting_decision":
                await self._decision_phase()
            else:
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        assert self._decided is not None
        if self._status == "approved":
            return ReviewOutcome(
                status="approved", amount=self._decided.amount, advisor=self._advisor
            )
        return ReviewOutcome(status="rejected")

    async def _review_phase(self) -> None:
        plan = self._need_plan()
        started = workflow.now()
        reminder_at = started + timedelta(seconds=plan.review_reminder_seconds)
        escalation_at = started + timedelta(seconds=plan.review_escalation_seconds)
        await self._progress("in_review", next_deadline=reminder_at)
        await self._publish(
            ADVISOR_ASSIGNED,
            AdvisorAssigned(
                application_id=self._app_id(),
                status="in_review",
                advisor=self._need_advisor(),
                review_due=reminder_at,
            ),
        )
        if await self._wait_while("in_review", reminder_at):
            return
        await self._publish(
            REVIEW_REMINDER,
            ReviewDeadline(
                application_id=self._app_id(),
                status="in_review",
                advisor=self._need_advisor(),
                notify=self._need_advisor(),
                overdue_since=reminder_at,
            ),
        )
        if self._status != "in_review":
            return  # the advisor acted while the reminder went out: do not undo that
        await self._progress("in_review", next_deadline=escalation_at)
        if await self._wait_while("in_review", escalation_at):
            return
        await self._publish(
            REVIEW_ESCALATED,
            ReviewDeadline(
                application_id=self._app_id(),
                status="in_review",
                advisor=self._need_advisor(),
                notify=plan.head_of_section,
                overdue_since=escalation_at,
            ),
        )
        if self._status != "in_review":
            return  # the advisor acted while the escalation went out
        await self._progress("in_review", next_deadline=None)
        await workflow.wait_condition(lambda: self._status != "in_review")

    async def _information_phase(self) -> bool:
        """False when the applicant did not answer in time (the application is withdrawn)."""
        assert self._next_deadline is not None
        if await self._wait_while("information_requested", self._next_deadline):
            return True
        if self._information_answered:
            # The answer was accepted before the deadline and is still being recorded.
            await workflow.wait_condition(lambda: self._status != "information_requested")
            return True
        await self._progress("withdrawn", next_deadline=None)
        await self._publish(
            APPLICATION_WITHDRAWN,
            ApplicationWithdrawn(
                application_id=self._app_id(),
                status="withdrawn",
                reason="information_not_provided_in_time",
            ),
            local=False,  # the deadline chose this path; an answer may race it
        )
        return False

    async def _decision_phase(self) -> None:
        plan = self._need_plan()
        if plan.decider_role == "board" and not self._board_open:
            meeting: BoardMeeting = await step(
                "review.next_board_meeting",
                BoardMeetingQuery(now=workflow.now()),
                result_type=BoardMeeting,
            )
            if meeting.at is None:
                # No meeting scheduled late enough: wait for operators to add dates, asking daily.
                await self._progress("awaiting_decision", next_deadline=None)
                await workflow.sleep(timedelta(days=1))
                return
            self._board_meeting = meeting
            await self._progress("awaiting_decision", next_deadline=meeting.at)
            await self._publish(
                BOARD_SCHEDULED,
                BoardScheduled(
                    application_id=self._app_id(),
                    status="awaiting_decision",
                    meeting=meeting.meeting or meeting.at.date(),
                ),
            )
            delay = meeting.at - workflow.now()
            if delay > timedelta(0):
                await workflow.sleep(delay)
            self._board_open = True
            await self._progress("awaiting_decision", next_deadline=None)
        await workflow.wait_condition(lambda: self._status != "awaiting_decision")

    # ---------------------------------------------------------------- human actions

    @workflow.update(name=UPDATE_SUBMIT_REVIEW)
    async def submit_review(self, action: SubmitReview) -> ActionResult:
        plan = self._need_plan()
        requested = self._need_input().document.budget.requested
        self._recommended = action.recommended_amount or requested
        # Who decides follows the recommended amount: a reduction can bring a grant under the
        # line's threshold. Core support is always the board's.
        role = plan.decider_role
        if role != "board":
            role = "head_of_section" if self._recommended <= plan.decision_threshold else "director"
        self._plan = plan.model_copy(update={"decider_role": role})
        await self._progress("awaiting_decision", next_deadline=None)
        await self._publish(
            REVIEW_SUBMITTED,
            ReviewSubmitted(
                application_id=self._app_id(),
                status="awaiting_decision",
                advisor=action.advisor,
                scores=action.scores,
                total_score=action.scores.total,
                recommendation=action.recommendation,
                recommended_amount=self._money(self._recommended),
                decider_role=role,
            ),
            actor=action.advisor,
        )
        return ActionResult(status="awaiting_decision", message=f"review recorded; {role} decides")

    @submit_review.validator
    def _validate_submit_review(self, action: SubmitReview) -> None:
        self._require_status("in_review", "submit a review")
        self._require_advisor(action.advisor)
        requested = self._need_input().document.budget.requested
        if action.recommended_amount is not None and action.recommended_amount > requested:
            raise ValueError(
                f"recommended amount {action.recommended_amount} exceeds the requested {requested}"
            )

    @workflow.update(name=UPDATE_REQUEST_INFORMATION)
    async def request_information(self, action: RequestInformation) -> ActionResult:
        plan = self._need_plan()
        answer_by = workflow.now() + timedelta(seconds=plan.information_answer_seconds)
        self._information_answered = False
        await self._progress("information_requested", next_deadline=answer_by)
        await self._publish(
            INFORMATION_REQUESTED,
            InformationRequested(
                application_id=self._app_id(),
                status="information_requested",
                advisor=action.advisor,
                question=action.question,
                answer_by=answer_by,
            ),
            actor=action.advisor,
        )
        return ActionResult(
            status="information_requested",
            message=f"the applicant must answer by {answer_by.isoformat()}",
        )

    @request_information.validator
    def _validate_request_information(self, action: RequestInformation) -> None:
        self._require_status("in_review", "request information")
        self._require_advisor(action.advisor)

    @workflow.update(name=UPDATE_ANSWER_INFORMATION)
    async def answer_information(self, action: AnswerInformation) -> ActionResult:
        self._information_answered = True
        await self._publish(
            INFORMATION_ANSWERED,
            InformationAnswered(
                application_id=self._app_id(), status="in_review", answer=action.answer
            ),
            actor="applicant",
        )
        # Back to the advisor; the review phase restarts its reminder timers.
        self._status = "in_review"
        return ActionResult(status="in_review", message="answer received; the review goes on")

    @answer_information.validator
    def _validate_answer_information(self, action: AnswerInformation) -> None:
        self._require_status("information_requested", "answer an information request")
        if self._information_answered:
            # The status changes only once the answer is recorded: a client repeating its
            # request meanwhile (its first one timed out) must not record a second answer.
            raise ValueError("the information request was answered already")

    @workflow.update(name=UPDATE_DECIDE)
    async def decide(self, action: Decide) -> ActionResult:
        async with self._deciding:
            # A second decision that raced the first is refused here, after the lock.
            if self._status != "awaiting_decision":
                raise ApplicationError(f"already decided: {self._status}", non_retryable=True)
            if action.outcome == "reject":
                return await self._conclude(action, "rejected", None)
            amount = self._money(action.amount or self._recommended_or_requested())
            year = workflow.now().year
            budget: Money = await step(
                "review.budget_for",
                BudgetQuery(funding_line=self._need_input().document.funding_line, year=year),
                result_type=Money,
            )
            commit: CommitBudgetResult = await workflow.execute_activity(
                COMMIT_BUDGET_ACTIVITY,
                CommitBudgetRequest(
                    application_id=self._app_id(),
                    funding_line=self._need_input().document.funding_line,
                    year=year,
                    amount=amount,
                    budget=budget,
                    correlation_id=self._need_input().correlation_id,
                ),
                task_queue=TASK_QUEUE_PAYMENTS,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
                result_type=CommitBudgetResult,
            )
            if commit.outcome != "committed":
                # Not a crash: the decider hears why and may reduce the amount or reject.
                return ActionResult(
                    status="awaiting_decision",
                    message=f"not approved: {commit.reason} "
                    f"({commit.available.amount} {commit.available.currency} available)",
                    amount=amount,
                    available=commit.available,
                )
            result = await self._conclude(action, "approved", commit.amount)
            return result.model_copy(update={"available": commit.available})

    @decide.validator
    def _validate_decide(self, action: Decide) -> None:
        self._require_status("awaiting_decision", "decide")
        plan = self._need_plan()
        if action.role != plan.decider_role:
            raise ValueError(f"this application is decided by the {plan.decider_role}")
        if action.role == "board" and not self._board_open:
            meeting = self._board_meeting.meeting if self._board_meeting else None
            raise ValueError(
                "the board decides at its meeting"
                + (f" on {meeting.isoformat()}" if meeting else " (none scheduled yet)")
            )
        limit = self._need_input().document.budget.requested
        if action.amount is not None and action.amount > limit:
            raise ValueError(f"amount {action.amount} exceeds the requested {limit}")
        if (
            action.role == "head_of_section"
            and action.outcome == "approve"
            and (action.amount or self._recommended_or_requested()) > plan.decision_threshold
        ):
            raise ValueError(
                f"the head of section approves up to {plan.decision_threshold}; "
                "a larger grant is the director's decision"
            )
        if action.outcome == "reject" and action.amount is not None:
            raise ValueError("a rejection carries no amount")

    async def _conclude(
        self, action: Decide, status: ApplicationStatus, amount: Money | None
    ) -> ActionResult:
        await self._publish(
            DECISION_MADE,
            DecisionMade(
                application_id=self._app_id(),
                status=status,
                decider=action.decider,
                role=action.role,
                outcome="approved" if status == "approved" else "rejected",
                amount=amount,
                comment=action.comment,
            ),
            actor=action.decider,
        )
        self._decided = ActionResult(
            status=status, message=f"{status} by {action.role}", amount=amount
        )
        await self._progress(status, next_deadline=None)
        return self._decided

    # ---------------------------------------------------------------- queries

    @workflow.query
    def state(self) -> ReviewState:
        inp = self._need_input()
        return ReviewState(
            application_id=inp.application_id,
            status=self._status,
            funding_line=inp.document.funding_line,
            advisor=self._advisor,
            decider_role=self._plan.decider_role if self._plan else None,
            next_deadline=self._next_deadline,
            board_meeting=self._meeting_date(),
            requested=self._requested(),
            recommended=self._money(self._recommended) if self._recommended else None,
            ineligible_reasons=[r.code for r in self._plan.reasons] if self._plan else [],
        )

    @workflow.query
    def status(self) -> ApplicationStatus:
        return self._status

    # ---------------------------------------------------------------- helpers

    async def _wait_while(self, status: ApplicationStatus, until: datetime) -> bool:
        """Wait until the status leaves `status` (True) or `until` passes (False)."""
        remaining = (until - workflow.now()).total_seconds()
        if remaining <= 0:
            return self._status != status
        try:
            await workflow.wait_condition(
                lambda: self._status != status, timeout=timedelta(seconds=remaining)
            )
            return True
        except TimeoutError:
            return False

    async def _progress(
        self, status: ApplicationStatus, *, next_deadline: datetime | None = None
    ) -> None:
        self._status = status
        self._next_deadline = next_deadline
        # Numbered in the order of the calls: the parent drops a report overtaken by a later one.
        self._progress_sent += 1
        await self._signals.signal(
            SIGNAL_REVIEW_PROGRESS,
            ReviewProgress(
                status=status,
                advisor=self._advisor,
                next_deadline=next_deadline,
                seq=self._progress_sent,
            ),
        )

    async def _publish(
        self, event_type: str, payload: Any, actor: str | None = None, *, local: bool = True
    ) -> None:
        await step(
            "review.publish",
            PublishEvent(
                event_id=workflow.uuid4(),
                correlation_id=self._need_input().correlation_id,
                event_type=event_type,
                actor=actor,
                payload=payload.model_dump(mode="json"),
                advisor=self._advisor,
                next_deadline=self._next_deadline,
            ),
            local=local,
        )

    def _meeting_date(self) -> date | None:
        """The board meeting's date, as `decision.board_scheduled` names it (a meeting at a
        fixed interval, in tests, has only its moment)."""
        meeting = self._board_meeting
        if meeting is None:
            return None
        return meeting.meeting or (meeting.at.date() if meeting.at else None)

    def _require_status(self, status: ApplicationStatus, action: str) -> None:
        if self._status != status:
            raise ValueError(f"cannot {action} while the application is {self._status}")

    def _require_advisor(self, advisor: str) -> None:
        if advisor != self._advisor:
            raise ValueError("only the assigned advisor can act on this application")

    def _recommended_or_requested(self) -> Decimal:
        return self._recommended or self._need_input().document.budget.requested

    def _requested(self) -> Money:
        return self._money(self._need_input().document.budget.requested)

    def _money(self, amount: Decimal) -> Money:
        return Money(amount=amount, currency=self._need_input().document.budget.currency)

    def _app_id(self) -> Any:
        return self._need_input().application_id

    def _need_input(self) -> ReviewInput:
        assert self._inp is not None
        return self._inp

    def _need_plan(self) -> ReviewPlan:
        if self._plan is None:
            raise ValueError("the application is still being screened")
        return self._plan

    def _need_advisor(self) -> str:
        assert self._advisor is not None
        return self._advisor


WORKFLOWS: list[type] = [ApplicationReview]
