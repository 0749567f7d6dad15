"""After the decision: the grant workflow's contracts (agreement, payments, reporting,
closure), the bank/ERP messages and the events published on the way."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.contracts.application import ApplicationDocument
from shared.contracts.lifecycle import ApplicationStatus
from shared.contracts.money import Currency, Money
from shared.contracts.review import Comment, Text, UserId

GRANT_WORKFLOW = "GrantLifecycle"
CORE_YEAR_WORKFLOW = "CoreSupportYear"

# Updates on the grant workflow (id `grant-<application id>`).
UPDATE_ACCEPT_AGREEMENT = "accept_agreement"
UPDATE_SUBMIT_REPORT = "submit_report"
UPDATE_REVIEW_REPORT = "review_report"
UPDATE_BANK_DETAILS_CORRECTED = "bank_details_corrected"
UPDATE_CLAIM_BACK_SETTLED = "claim_back_settled"
# Signal from the payments service when the bank answers a payment.
SIGNAL_PAYMENT_RESULT = "payment_result"
# Signal from a stage to the lifecycle: status and next deadline (same shape as review's).
SIGNAL_GRANT_PROGRESS = "grant_progress"

PaymentKind = Literal["advance", "final", "installment"]
Reference = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9-]{6,35}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GrantInput(_Model):
    application_id: UUID
    correlation_id: UUID
    document: ApplicationDocument
    grant: Money
    advisor: str
    # The year whose budget the grant was committed from (payments are booked against it).
    decided_year: int
    # Core support: which year this run handles (continue-as-new per year); None at the start.
    year: int | None = None


class GrantOutcome(_Model):
    status: Literal["lapsed", "closed"]
    paid: Money | None = None
    claimed_back: Money | None = None


# --- human actions ---------------------------------------------------------------------------


class AcceptAgreement(_Model):
    """The applicant accepts the grant agreement (the contact person, by name)."""

    accepted_by: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00]*$"
        ),
    ]


class FinalReport(_Model):
    actual_costs: Money
    results: Text
    # For core support: which year's annual report (1-based); None for a project's final report.
    year: int | None = Field(default=None, ge=1, le=10)


class ReviewReport(_Model):
    advisor: UserId
    outcome: Literal["approve", "request_changes"]
    comment: Comment = ""


class BankDetailsCorrected(_Model):
    reference: Reference
    corrected_by: UserId


class ClaimBackSettled(_Model):
    settled_by: UserId
    amount: Money


class GrantActionResult(_Model):
    status: ApplicationStatus
    message: str
    amount: Money | None = None


# --- payments --------------------------------------------------------------------------------


class PaymentOrder(_Model):
    """Activity input: request one payment from the bank/ERP, exactly once per attempt."""

    application_id: UUID
    correlation_id: UUID
    reference: Reference
    attempt: int = Field(ge=1)
    kind: PaymentKind
    amount: Money
    funding_line: str
    year: int
    # Who is paid: the organisation; account details live in the bank/ERP.
    payee_name: str
    payee_org_number: str


class PaymentResult(_Model):
    """Signal to the grant workflow: the bank's answer to one payment attempt."""

    reference: Reference
    attempt: int
    outcome: Literal["confirmed", "rejected"]
    reason: str | None = None


class BankPaymentRequested(_Model):
    """To the bank/ERP (topic grants.bank.payment-requests)."""

    reference: Reference
    attempt: int
    application_id: UUID
    kind: PaymentKind
    amount: Money
    # Who is paid: the organisation's number; account details live in the ERP.
    payee_org_number: str
    payee_name: str


class BankPaymentAnswer(_Model):
    """From the bank/ERP (topic grants.bank.payment-answers)."""

    reference: Reference
    attempt: int = Field(ge=1)
    outcome: Literal["confirmed", "rejected"]
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class Settlement(_Model):
    """The money outcome of an approved final report."""

    eligible: Money
    advance: Money
    final_payment: Money
    claim_back: Money
    release: Money


# --- events ----------------------------------------------------------------------------------

AGREEMENT_OFFERED = "agreement.offered"
AGREEMENT_REMINDER = "agreement.reminder"
AGREEMENT_ACCEPTED = "agreement.accepted"
GRANT_LAPSED = "grant.lapsed"
PAYMENT_REQUESTED = "payment.requested"
PAYMENT_CONFIRMED = "payment.confirmed"
PAYMENT_REJECTED = "payment.rejected"
PAYMENT_UNCONFIRMED = "payment.unconfirmed_alert"
REPORT_REMINDER = "report.reminder"
REPORT_OVERDUE = "report.overdue"
REPORT_ESCALATED = "report.escalated"
REPORT_SUBMITTED = "report.submitted"
REPORT_CHANGES_REQUESTED = "report.changes_requested"
REPORT_APPROVED = "report.approved"
CLAIM_BACK_RAISED = "grant.claim_back_raised"
CLAIM_BACK_SETTLED = "grant.claim_back_settled"
GRANT_CLOSED = "grant.closed"


class _Event(_Model):
    application_id: UUID
    status: ApplicationStatus


class AgreementOffered(_Event):
    grant: Money
    accept_by: datetime


class AgreementReminder(_Event):
    accept_by: datetime


class AgreementAccepted(_Event):
    accepted_by: str
    grant: Money


class GrantLapsed(_Event):
    released: Money | None


class PaymentEvent(_Event):
    reference: str
    attempt: int
    kind: PaymentKind
    amount: Money
    reason: str | None = None


class ReportDeadline(_Event):
    due: date
    year: int | None = None
    notify: str


class ReportSubmitted(_Event):
    actual_costs: Money
    results: str
    year: int | None = None


class ReportReviewed(_Event):
    advisor: str
    comment: str
    year: int | None = None
    settlement: Settlement | None = None


class ClaimBack(_Event):
    amount: Money
    settled_by: str | None = None


class GrantClosed(_Event):
    paid: Money
    claimed_back: Money | None
    results: str | None


GRANT_PAYLOADS: dict[str, type[BaseModel]] = {
    AGREEMENT_OFFERED: AgreementOffered,
    AGREEMENT_REMINDER: AgreementReminder,
    AGREEMENT_ACCEPTED: AgreementAccepted,
    GRANT_LAPSED: GrantLapsed,
    PAYMENT_REQUESTED: PaymentEvent,
    PAYMENT_CONFIRMED: PaymentEvent,
    PAYMENT_REJECTED: PaymentEvent,
    PAYMENT_UNCONFIRMED: PaymentEvent,
    REPORT_REMINDER: ReportDeadline,
    REPORT_OVERDUE: ReportDeadline,
    REPORT_ESCALATED: ReportDeadline,
    REPORT_SUBMITTED: ReportSubmitted,
    REPORT_CHANGES_REQUESTED: ReportReviewed,
    REPORT_APPROVED: ReportReviewed,
    CLAIM_BACK_RAISED: ClaimBack,
    CLAIM_BACK_SETTLED: ClaimBack,
    GRANT_CLOSED: GrantClosed,
}

# Bank/ERP messages (their own topics, inside the envelope).
BANK_PAYMENT_REQUEST = "bank.payment_requested"
BANK_PAYMENT_ANSWER = "bank.payment_answer"


class GrantPlan(_Model):
    """What the grant workflow needs from configuration, fetched once by an activity."""

    advance_share: Decimal
    agreement_acceptance_seconds: float
    agreement_reminder_seconds: float
    payment_confirmation_alert_seconds: float
    final_report_due_seconds: float
    report_reminder_before_seconds: float
    report_overdue_notice_seconds: float
    report_escalation_seconds: float
    currency: Currency


class PublishGrantEvent(_Model):
    """Activity input: an event for the payments service's outbox (id made in the workflow)."""

    event_id: UUID
    correlation_id: UUID
    event_type: str
    actor: str | None
    payload: dict[str, object]
