"""Review's activities: what the review workflow asks of configuration and of Postgres."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, time
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.review.repository import Repository
from services.review.screening import screen
from shared.contracts.money import Money
from shared.contracts.review import (
    AssignAdvisor,
    BoardMeeting,
    BoardMeetingQuery,
    BudgetQuery,
    PlanRequest,
    PublishEvent,
    ReviewPlan,
    ScreeningReason,
)
from shared.events import Envelope
from shared.funding import FundingConfig, get_funding_config
from shared.runtime import ServiceContext

SERVICE = "review"


class ReviewActivities:
    def __init__(self, repo: Repository, config: FundingConfig) -> None:
        self._repo = repo
        self._config = config

    @activity.defn(name="review.plan")
    async def plan(self, request: PlanRequest) -> ReviewPlan:
        result = screen(request.document, self._config, request.today)
        deadlines = self._config.deadlines
        doc = request.document
        line = self._config.lines.get(doc.funding_line)
        return ReviewPlan(
            eligible=result.eligible,
            reasons=[ScreeningReason(code=r.code, text=r.text) for r in result.reasons],
            review_reminder_seconds=deadlines.review_reminder.total_seconds(),
            review_escalation_seconds=deadlines.review_escalation.total_seconds(),
            information_answer_seconds=deadlines.information_answer.total_seconds(),
            head_of_section=self._config.roster.head_of_section,
            director=self._config.roster.director,
            decider_role=line.decider_for(doc.budget.requested) if line else "director",
            # An unknown line is ineligible anyway; the threshold is then never used.
            decision_threshold=line.decision_threshold if line else doc.budget.requested,
        )

    @activity.defn(name="review.assign_advisor")
    async def assign_advisor(self, request: AssignAdvisor) -> str:
        candidates = [(a.id, a.max_open) for a in self._config.advisors_for(request.funding_line)]
        advisor = await self._repo.assign(
            application_id=request.application_id,
            funding_line=request.funding_line,
            title=request.title,
            requested=request.requested,
            candidates=candidates,
        )
        if advisor is None:
            # Retried with backoff by Temporal until someone has room.
            raise ApplicationError(f"every advisor for {request.funding_line} is at capacity")
        return advisor

    @activity.defn(name="review.publish")
    async def publish(self, request: PublishEvent) -> None:
        info = activity.info()
        payload: dict[str, Any] = dict(request.payload)
        status = payload.get("status")
        await self._repo.publish(
            Envelope(
                event_id=request.event_id,
                type=request.event_type,
                application_id=payload["application_id"],
                correlation_id=request.correlation_id,
                source=SERVICE,
                actor=request.actor,
                occurred_at=datetime.now(UTC),
                payload=payload,
            ),
            status=str(status) if status else None,
            next_deadline=request.next_deadline,
        )
        activity.logger.debug("published %s for %s", request.event_type, info.workflow_id)

    @activity.defn(name="review.budget_for")
    async def budget_for(self, request: BudgetQuery) -> Money:
        line = self._config.line(request.funding_line)
        return Money(amount=line.budget_for(request.year), currency=line.currency)

    @activity.defn(name="review.next_board_meeting")
    async def next_board_meeting(self, request: BoardMeetingQuery) -> BoardMeeting:
        board = self._config.board
        if board.meeting_interval is not None:
            # Tests: the board meets a fixed time after the case is ready.
            return BoardMeeting(meeting=None, at=request.now + board.meeting_interval)
        meeting = board.next_meeting(request.now.date())
        if meeting is None:
            return BoardMeeting(meeting=None, at=None)
        # The board decides from the start of its meeting day (UTC).
        return BoardMeeting(meeting=meeting, at=datetime.combine(meeting, time(0), tzinfo=UTC))


def build_activities(ctx: ServiceContext) -> Sequence[Callable[..., Any]]:
    acts = ReviewActivities(Repository(ctx.pool), get_funding_config())
    return [acts.plan, acts.assign_advisor, acts.publish, acts.budget_for, acts.next_board_meeting]


__all__ = ["ReviewActivities", "build_activities"]
