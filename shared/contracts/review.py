"""The review stage's contracts: the review workflow's input and outcome, the human actions
(Temporal updates, HTTP bodies and Kafka commands alike) and the events review publishes."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.contracts.application import ApplicationDocument
from shared.contracts.lifecycle import ApplicationStatus
from shared.contracts.money import Amount, Money

REVIEW_WORKFLOW = "ApplicationReview"

# Update names on the review workflow (id `review-<application id>`).
UPDATE_SUBMIT_REVIEW = "submit_review"
UPDATE_REQUEST_INFORMATION = "request_information"
UPDATE_ANSWER_INFORMATION = "answer_information"
UPDATE_DECIDE = "decide"
# Signal from the review workflow to its parent lifecycle: status, advisor, next deadline.
SIGNAL_REVIEW_PROGRESS = "review_progress"

Role = Literal[
    "applicant", "advisor", "head_of_section", "director", "board", "finance", "operator"
]
DeciderRole = Literal["head_of_section", "director", "board"]
UserId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")]
# Free text from people: no NUL (Postgres text cannot hold it, and every consumer refuses it).
Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=5000, pattern=r"^[^\x00]*$"),
]
Comment = Annotated[str, StringConstraints(max_length=5000, pattern=r"^[^\x00]*$")]
Score = Annotated[int, Field(ge=1, le=5)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReviewInput(_Model):
    application_id: UUID
    correlation_id: UUID
    document: ApplicationDocument


class Scores(_Model):
    cooperation: Score
    relevance: Score
    feasibility: Score
    budget_realism: Score
    people_to_people: Score

    @property
    def total(self) -> int:
        return (
            self.cooperation
            + self.relevance
            + self.feasibility
            + self.budget_realism
            + self.people_to_people
        )


class SubmitReview(_Model):
    advisor: UserId
    scores: Scores
    comment: Text
    recommendation: Literal["approve", "reject"]
    # A reduced amount the advisor recommends; the requested amount when absent.
    recommended_amount: Amount | None = None


class RequestInformation(_Model):
    advisor: UserId
    question: Text


class AnswerInformation(_Model):
    answer: Text


class Decide(_Model):
    decider: UserId
    role: DeciderRole
    outcome: Literal["approve", "reject"]
    # A decision may reduce the amount; the recommended (or requested) amount when absent.
    amount: Amount | None = None
    comment: Comment = ""


class ActionResult(_Model):
    """What a human action did: the status it led to, and for a decision the money outcome."""

    status: ApplicationStatus
    message: str
    amount: Money | None = None
    available: Money | None = None


class ReviewProgress(_Model):
    status: ApplicationStatus
    advisor: str | None = None
    next_deadline: datetime | None = None
    # The order in which the stage reported its progress. Reports sent from concurrent
    # handlers (the run and an update) can reach the parent out of order; the parent ignores
    # one older than what it has applied. None: unordered (from before the field existed).
    seq: int | None = None


class ReviewState(_Model):
    application_id: UUID
    status: ApplicationStatus
    funding_line: str
    advisor: str | None
    decider_role: DeciderRole | None
    next_deadline: datetime | None
    board_meeting: date | None
    requested: Money
    recommended: Money | None
    ineligible_reasons: list[str]


class ReviewOutcome(_Model):
    status: Literal["ineligible", "withdrawn", "approved", "rejected"]
    amount: Money | None = None
    reasons: list[str] = Field(default_factory=list)
    advisor: str | None = None


# --- events (payloads on grants.application-events, keyed by application id) ---------------

APPLICATION_SCREENED = "application.screened"
ADVISOR_ASSIGNED = "review.advisor_assigned"
REVIEW_SUBMITTED = "review.submitted"
INFORMATION_REQUESTED = "review.information_requested"
INFORMATION_ANSWERED = "review.information_answered"
REVIEW_REMINDER = "review.reminder"
REVIEW_ESCALATED = "review.escalated"
BOARD_SCHEDULED = "decision.board_scheduled"
DECISION_MADE = "decision.made"
APPLICATION_WITHDRAWN = "application.withdrawn"


class _Event(_Model):
    application_id: UUID
    status: ApplicationStatus


class ScreeningReason(_Model):
    code: str
    text: dict[Literal["nb", "en", "ru"], str]


class ApplicationScreened(_Event):
    eligible: bool
    reasons: list[ScreeningReason]


class AdvisorAssigned(_Event):
    advisor: str
    review_due: datetime


class ReviewSubmitted(_Event):
    advisor: str
    scores: Scores
    total_score: int
    recommendation: Literal["approve", "reject"]
    recommended_amount: Money
    decider_role: DeciderRole


class InformationRequested(_Event):
    advisor: str
    question: str
    answer_by: datetime


class InformationAnswered(_Event):
    answer: str


class ReviewDeadline(_Event):
    """A reminder to the advisor, or an escalation to the head of section."""

    advisor: str
    notify: str
    overdue_since: datetime


class BoardScheduled(_Event):
    meeting: date


class DecisionMade(_Event):
    decider: str
    role: DeciderRole
    outcome: Literal["approved", "rejected"]
    amount: Money | None
    comment: str


class ApplicationWithdrawn(_Event):
    reason: str


REVIEW_PAYLOADS: dict[str, type[BaseModel]] = {
    APPLICATION_SCREENED: ApplicationScreened,
    ADVISOR_ASSIGNED: AdvisorAssigned,
    REVIEW_SUBMITTED: ReviewSubmitted,
    INFORMATION_REQUESTED: InformationRequested,
    INFORMATION_ANSWERED: InformationAnswered,
    REVIEW_REMINDER: ReviewDeadline,
    REVIEW_ESCALATED: ReviewDeadline,
    BOARD_SCHEDULED: BoardScheduled,
    DECISION_MADE: DecisionMade,
    APPLICATION_WITHDRAWN: ApplicationWithdrawn,
}


class PublishEvent(_Model):
    """Activity input: an event for review's outbox, with the read-model change it implies.
    The event id is made in the workflow (deterministic), so a retried activity publishes once."""

    event_id: UUID
    correlation_id: UUID
    event_type: str
    actor: str | None
    payload: dict[str, object]
    advisor: str | None = None
    next_deadline: datetime | None = None


class PlanRequest(_Model):
    document: ApplicationDocument
    # The workflow's today (Temporal time), so screening replays the same way.
    today: date


class ReviewPlan(_Model):
    """What the review workflow needs from configuration, fetched once by an activity."""

    eligible: bool
    reasons: list[ScreeningReason]
    review_reminder_seconds: float
    review_escalation_seconds: float
    information_answer_seconds: float
    head_of_section: str
    director: str
    # Who decides the requested amount; a recommended reduction may move it to the head
    # of section (project grants at or under the threshold).
    decider_role: DeciderRole
    decision_threshold: Decimal


class AssignAdvisor(_Model):
    application_id: UUID
    funding_line: str
    title: str
    requested: Money


class BudgetQuery(_Model):
    funding_line: str
    year: int


class BoardMeetingQuery(_Model):
    # The workflow's now (Temporal time).
    now: datetime


class BoardMeeting(_Model):
    meeting: date | None
    # When the board "meets" at a fixed interval (tests), the exact moment.
    at: datetime | None


def amount_or(value: Decimal | None, default: Decimal) -> Decimal:
    return default if value is None else value
