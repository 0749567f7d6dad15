"""Which lifecycle events the applicant hears about, on which channels, and what each message
is rendered from. Pure: no I/O, so every event type's mapping is unit-tested.

A milestone's key is unique per occurrence (`payment_sent:<reference>`), because the
deliveries table's unique key (application, milestone key, channel) is what makes "never
twice" hold: a redelivered or republished event maps to the same key and records nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from shared.contracts.grant import (
    AGREEMENT_ACCEPTED,
    AGREEMENT_OFFERED,
    AGREEMENT_REMINDER,
    CLAIM_BACK_RAISED,
    CLAIM_BACK_SETTLED,
    GRANT_CLOSED,
    GRANT_LAPSED,
    PAYMENT_CONFIRMED,
    PAYMENT_REJECTED,
    PAYMENT_REQUESTED,
    PAYMENT_UNCONFIRMED,
    REPORT_APPROVED,
    REPORT_CHANGES_REQUESTED,
    REPORT_ESCALATED,
    REPORT_OVERDUE,
    REPORT_REMINDER,
    REPORT_SUBMITTED,
    AgreementOffered,
    AgreementReminder,
    GrantClosed,
    GrantLapsed,
    PaymentEvent,
    ReportDeadline,
    ReportReviewed,
)
from shared.contracts.ledger import BUDGET_COMMITTED, BUDGET_REFUSED, BUDGET_RELEASED
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
    ApplicationScreened,
    ApplicationWithdrawn,
    DecisionMade,
    InformationRequested,
)
from shared.events import (
    AGREEMENT_ACCEPT,
    APPLICATION_SUBMIT,
    APPLICATION_SUBMITTED,
    DECISION_DECIDE,
    INFORMATION_ANSWER,
    REPORT_SUBMIT,
    REVIEW_REQUEST_INFORMATION,
    REVIEW_SUBMIT,
    ApplicationSubmitted,
    Envelope,
)

Channel = Literal["email", "sms"]
EMAIL: tuple[Channel, ...] = ("email",)
# SMS as well where the applicant must act or money moves.
EMAIL_AND_SMS: tuple[Channel, ...] = ("email", "sms")

# Template name -> channels. Every template exists for every language (unit-tested).
TEMPLATES: dict[str, tuple[Channel, ...]] = {
    "received": EMAIL,
    "ineligible": EMAIL,
    "information_requested": EMAIL_AND_SMS,
    "decision": EMAIL_AND_SMS,
    "agreement_offered": EMAIL,
    "agreement_reminder": EMAIL_AND_SMS,
    "payment_sent": EMAIL_AND_SMS,
    "report_reminder": EMAIL_AND_SMS,
    "report_overdue": EMAIL_AND_SMS,
    "report_approved": EMAIL,
    "closed": EMAIL,
    "withdrawn": EMAIL,
    "lapsed": EMAIL,
}


@dataclass(frozen=True)
class Milestone:
    key: str
    template: str
    channels: tuple[Channel, ...]
    # JSON-serialisable facts the template renders (stored on the delivery row).
    context: dict[str, Any]


def channels_for(milestone: Milestone, sms_opt_out: bool) -> tuple[Channel, ...]:
    """The channels to record: an applicant who opted out of SMS gets e-mail only."""
    return tuple(c for c in milestone.channels if not (c == "sms" and sms_opt_out))


def _money(value: Money | None) -> dict[str, str] | None:
    # Exact decimal string with its currency; formatted for the locale only when rendered.
    return None if value is None else {"amount": str(value.amount), "currency": value.currency}


def _positive(value: Money | None) -> dict[str, str] | None:
    return _money(value) if value is not None and value.amount > 0 else None


def _make(template: str, key: str | None = None, **context: Any) -> Milestone:
    return Milestone(key or template, template, TEMPLATES[template], context)


def _received(envelope: Envelope, p: BaseModel) -> Milestone | None:
    assert isinstance(p, ApplicationSubmitted)
    budget = p.document.budget
    return _make(
        "received",
        received_at=p.received_at.isoformat(),
        requested={"amount": str(budget.requested), "currency": budget.currency},
    )


def _screened(envelope: Envelope, p: BaseModel) -> Milestone | None:
    assert isinstance(p, ApplicationScreened)
    if p.eligible:
        return None  # nothing to tell yet: the review starts
    return _make("ineligible", reasons=[r.model_dump(mode="json") for r in p.reasons])


def _information_requested(envelope: Envelope, p: BaseModel) -> Milestone | None:
    assert isinstance(p, InformationRequested)
    # An advisor may ask more than once; each request has its own answer-by moment.
    return _make(
        "information_requested",
        f"information_requested:{p.answer_by.isoformat()}",
        question=p.question,
        answer_by=p.answer_by.isoformat(),
    )


def _decision(envelope: Envelope, p: BaseModel) -> Milestone | None:
    assert isinstance(p, DecisionMade)
    return _make("decision", outcome=p.outcome, amount=_money(p.amount))


def _agreement_offered(envelope: Envelope, p: BaseModel) -> Milestone | None:
    assert isinstance(p, AgreementOffered)
    return _make("agreement_offered", grant=_money(p.grant), accept_by=p.accept_by.isoformat())


def _agreement_reminder(envelope: Envelope, p: BaseModel) -> Milestone | None:
    assert isinstance(p, AgreementReminder)
    return _make("agreement_reminder", accept_by=p.accept_by.isoformat())


def _payment_sent(envelope: Envelope, p: BaseModel) -> Milestone | None:
    assert isinstance(p, PaymentEvent)
    return _make(
        "payment_sent",
        f"payment_sent:{p.reference}",
        amount=_money(p.amount),
        kind=p.kind,
        reference=p.reference,
    )


def _report_reminder(envelope: Envelope, p: BaseModel) -> Milestone | None:
    assert isinstance(p, ReportDeadline)
    # Two reminders per report: one before the due date, one on it. They are told apart by
    # when the event happened; should both fall on the due date (a lead time under a day),
    # the applicant gets one "due today" message, not the same one twice.
    step = "before" if envelope.occurred_at.date() < p.due else "due"
    return _make(
        "report_reminder",
        f"report_reminder:{p.due.isoformat()}:{step}",
        due=p.due.isoformat(),
        year=p.year,
        step=step,
    )


def _report_overdue(envelope: Envelope, p: BaseModel) -> Milestone | None:
    assert isinstance(p, ReportDeadline)
    return _make(
        "report_overdue", f"report_overdue:{p.due.isoformat()}", due=p.due.isoformat(), year=p.year
    )


def _report_approved(envelope: Envelope, p: BaseModel) -> Milestone | None:
    assert isinstance(p, ReportReviewed)
    settlement = p.settlement
    return _make(
        "report_approved",
        f"report_approved:{p.year if p.year is not None else 'final'}",
        year=p.year,
        final_payment=_positive(settlement.final_payment) if settlement else None,
        claim_back=_positive(settlement.claim_back) if settlement else None,
    )


def _closed(envelope: Envelope, p: BaseModel) -> Milestone | None:
    assert isinstance(p, GrantClosed)
    return _make("closed", paid=_money(p.paid), claimed_back=_positive(p.claimed_back))


def _withdrawn(envelope: Envelope, p: BaseModel) -> Milestone | None:
    assert isinstance(p, ApplicationWithdrawn)
    return _make("withdrawn", reason=p.reason)


def _lapsed(envelope: Envelope, p: BaseModel) -> Milestone | None:
    assert isinstance(p, GrantLapsed)
    return _make("lapsed")


Mapper = Callable[[Envelope, BaseModel], Milestone | None]

# Event type -> how it becomes a milestone for the applicant.
MILESTONE_EVENTS: dict[str, Mapper] = {
    APPLICATION_SUBMITTED: _received,
    APPLICATION_SCREENED: _screened,
    INFORMATION_REQUESTED: _information_requested,
    DECISION_MADE: _decision,
    AGREEMENT_OFFERED: _agreement_offered,
    AGREEMENT_REMINDER: _agreement_reminder,
    PAYMENT_CONFIRMED: _payment_sent,
    REPORT_REMINDER: _report_reminder,
    REPORT_OVERDUE: _report_overdue,
    REPORT_APPROVED: _report_approved,
    GRANT_CLOSED: _closed,
    APPLICATION_WITHDRAWN: _withdrawn,
    GRANT_LAPSED: _lapsed,
}

# Every other known event type, and why the applicant is not told about it. A new event type
# must be put in one of the two tables (unit-tested), so none is forgotten silently.
NOT_FOR_THE_APPLICANT: dict[str, str] = {
    REVIEW_REMINDER: "to staff: the advisor's reminder",
    REVIEW_ESCALATED: "to staff: escalation to the head of section",
    REPORT_ESCALATED: "to staff: escalation to the advisor",
    ADVISOR_ASSIGNED: "internal progress",
    REVIEW_SUBMITTED: "internal progress",
    INFORMATION_ANSWERED: "the applicant's own action",
    BOARD_SCHEDULED: "internal progress: the decision itself is told",
    AGREEMENT_ACCEPTED: "the applicant's own action",
    PAYMENT_REQUESTED: "told when the bank confirms the payment",
    PAYMENT_REJECTED: "finance corrects the bank details; the applicant hears when paid",
    PAYMENT_UNCONFIRMED: "to finance: an alert",
    REPORT_SUBMITTED: "the applicant's own action",
    REPORT_CHANGES_REQUESTED: "not a milestone of the domain's notification list",
    CLAIM_BACK_RAISED: "told in the report-approved message",
    CLAIM_BACK_SETTLED: "internal: the closing message follows",
    BUDGET_COMMITTED: "internal: the ledger",
    BUDGET_REFUSED: "internal: the ledger",
    BUDGET_RELEASED: "internal: the ledger",
    # Commands and messages on other topics, never on the application-events topic.
    APPLICATION_SUBMIT: "inbound command",
    INFORMATION_ANSWER: "inbound command",
    REVIEW_SUBMIT: "inbound command",
    REVIEW_REQUEST_INFORMATION: "inbound command",
    DECISION_DECIDE: "inbound command",
    AGREEMENT_ACCEPT: "inbound command",
    REPORT_SUBMIT: "inbound command",
    "bank.payment_requested": "bank/ERP message",
    "bank.payment_answer": "bank/ERP message",
}


def milestone_for(envelope: Envelope, payload: BaseModel) -> Milestone | None:
    """The milestone an event means for the applicant, or None when it means none."""
    mapper = MILESTONE_EVENTS.get(envelope.type)
    return None if mapper is None else mapper(envelope, payload)
