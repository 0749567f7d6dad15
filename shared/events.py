"""The event envelope every Kafka message carries, and the event types the services exchange.

An envelope names its payload's type and version; consumers look the pair up in
`PAYLOADS` and refuse (dead-letter) what they do not know.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.application import ApplicationDocument
from shared.contracts.grant import (
    BANK_PAYMENT_ANSWER,
    BANK_PAYMENT_REQUEST,
    GRANT_PAYLOADS,
    AcceptAgreement,
    BankPaymentAnswer,
    BankPaymentRequested,
    FinalReport,
)
from shared.contracts.ledger import (
    BUDGET_COMMITTED,
    BUDGET_REFUSED,
    BUDGET_RELEASED,
    BudgetCommitted,
    BudgetRefused,
    BudgetReleased,
)
from shared.contracts.review import (
    REVIEW_PAYLOADS,
    AnswerInformation,
    Decide,
    RequestInformation,
    SubmitReview,
)


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: UUID = Field(default_factory=uuid4)
    type: str = Field(min_length=1, max_length=100)
    version: int = Field(default=1, ge=1)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # None only on inbound submissions from other systems: intake assigns the id.
    application_id: UUID | None = None
    correlation_id: UUID = Field(default_factory=uuid4)
    # Which system produced the event (a service name, or an external system's identity).
    source: str = Field(default="unknown", max_length=100)
    # Who acted (a user id or role), where a person did.
    actor: str | None = Field(default=None, max_length=100)
    payload: dict[str, Any]


# --- payloads -------------------------------------------------------------------------


class ApplicationSubmitRequested(BaseModel):
    """Inbound: another system (the application portal) submits an application."""

    model_config = ConfigDict(extra="forbid")
    document: ApplicationDocument


class ApplicationSubmitted(BaseModel):
    """Intake stored and accepted an application; its lifecycle starts."""

    model_config = ConfigDict(extra="forbid")
    application_id: UUID
    received_at: datetime
    channel: str
    document: ApplicationDocument


class InformationAnswerSubmitted(BaseModel):
    """Inbound: the applicant answers an information request (envelope names the application)."""

    model_config = ConfigDict(extra="forbid")
    answer: AnswerInformation


class ReviewCommand(BaseModel):
    """Inbound from an advisor portal: an advisor's action (envelope names the application)."""

    model_config = ConfigDict(extra="forbid")
    action: SubmitReview | RequestInformation


class DecisionCommand(BaseModel):
    """Inbound from a decider's portal: a funding decision (envelope names the application)."""

    model_config = ConfigDict(extra="forbid")
    action: Decide


class AgreementAcceptance(BaseModel):
    """Inbound: the applicant accepts the grant agreement (envelope names the application)."""

    model_config = ConfigDict(extra="forbid")
    acceptance: AcceptAgreement


class ReportSubmission(BaseModel):
    """Inbound: the applicant submits a final (or annual) report."""

    model_config = ConfigDict(extra="forbid")
    report: FinalReport


APPLICATION_SUBMIT = "application.submit"
AGREEMENT_ACCEPT = "agreement.accept"
REPORT_SUBMIT = "report.submit"
INFORMATION_ANSWER = "application.information_answer"
REVIEW_SUBMIT = "review.submit"
REVIEW_REQUEST_INFORMATION = "review.request_information"
DECISION_DECIDE = "decision.decide"
APPLICATION_SUBMITTED = "application.submitted"

# (type, version) -> payload model. A consumer dead-letters anything not listed here.
PAYLOADS: dict[tuple[str, int], type[BaseModel]] = {
    (APPLICATION_SUBMIT, 1): ApplicationSubmitRequested,
    (APPLICATION_SUBMITTED, 1): ApplicationSubmitted,
    (INFORMATION_ANSWER, 1): InformationAnswerSubmitted,
    (REVIEW_SUBMIT, 1): ReviewCommand,
    (REVIEW_REQUEST_INFORMATION, 1): ReviewCommand,
    (DECISION_DECIDE, 1): DecisionCommand,
    (AGREEMENT_ACCEPT, 1): AgreementAcceptance,
    (REPORT_SUBMIT, 1): ReportSubmission,
    (BANK_PAYMENT_REQUEST, 1): BankPaymentRequested,
    (BANK_PAYMENT_ANSWER, 1): BankPaymentAnswer,
    **{(event_type, 1): model for event_type, model in GRANT_PAYLOADS.items()},
    (BUDGET_COMMITTED, 1): BudgetCommitted,
    (BUDGET_REFUSED, 1): BudgetRefused,
    (BUDGET_RELEASED, 1): BudgetReleased,
    **{(event_type, 1): model for event_type, model in REVIEW_PAYLOADS.items()},
}


class UnknownEventType(ValueError):
    pass


def parse_payload(envelope: Envelope) -> BaseModel:
    model = PAYLOADS.get((envelope.type, envelope.version))
    if model is None:
        raise UnknownEventType(f"unknown event type {envelope.type!r} version {envelope.version}")
    return model.model_validate(envelope.payload)
