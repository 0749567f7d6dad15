"""Which lifecycle events reach the applicant, as which milestone, on which channels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import BaseModel

from services.notifications.milestones import (
    MILESTONE_EVENTS,
    NOT_FOR_THE_APPLICANT,
    TEMPLATES,
    Milestone,
    channels_for,
    milestone_for,
)
from shared.events import PAYLOADS, Envelope
from tests.conftest import load_sample

APP = UUID("0b3c2d1e-0000-4000-8000-000000000001")
NOK = {"amount": "60000.00", "currency": "NOK"}


def event(event_type: str, payload: dict[str, Any], occurred: str = "2026-11-22T10:00:00Z") -> Any:
    """An envelope and its parsed payload, as the consumer receives them."""
    envelope = Envelope(
        type=event_type,
        application_id=APP,
        occurred_at=datetime.fromisoformat(occurred),
        payload=payload,
    )
    model: type[BaseModel] = PAYLOADS[(event_type, 1)]
    return envelope, model.model_validate(payload)


def deadline(status: str, due: str = "2027-03-01", **extra: Any) -> dict[str, Any]:
    return {"application_id": str(APP), "status": status, "due": due, "notify": "x", **extra}


def payment(reference: str) -> dict[str, Any]:
    return {
        "application_id": str(APP),
        "status": "active",
        "reference": reference,
        "attempt": 1,
        "kind": "advance",
        "amount": {"amount": "48000.00", "currency": "NOK"},
    }


SUBMITTED = {
    "application_id": str(APP),
    "received_at": "2026-11-22T10:00:00Z",
    "channel": "http",
    "document": load_sample("ru-school-exchange.json"),
}
REASON = {"code": "amount_over_max", "text": {"nb": "For høyt", "en": "Too high", "ru": "Много"}}

# Event type, payload -> (milestone key, template, channels, some facts of the context).
CASES: list[tuple[str, dict[str, Any], str, str, tuple[str, ...], dict[str, Any]]] = [
    (
        "application.submitted",
        SUBMITTED,
        "received",
        "received",
        ("email",),
        {"requested": {"amount": "220000", "currency": "NOK"}},
    ),
    (
        "application.screened",
        {
            "application_id": str(APP),
            "status": "ineligible",
            "eligible": False,
            "reasons": [REASON],
        },
        "ineligible",
        "ineligible",
        ("email",),
        {"reasons": [REASON]},
    ),
    (
        "review.information_requested",
        {
            "application_id": str(APP),
            "status": "information_requested",
            "advisor": "kari.nordmann",
            "question": "Which partner leads the exchange?",
            "answer_by": "2026-12-13T10:00:00Z",
        },
        "information_requested:2026-12-13T10:00:00+00:00",
        "information_requested",
        ("email", "sms"),
        {"question": "Which partner leads the exchange?"},
    ),
    (
        "decision.made",
        {
            "application_id": str(APP),
            "status": "approved",
            "decider": "ingrid.solberg",
            "role": "head_of_section",
            "outcome": "approved",
            "amount": NOK,
            "comment": "",
        },
        "decision",
        "decision",
        ("email", "sms"),
        {"outcome": "approved", "amount": NOK},
    ),
    (
        "agreement.offered",
        {
            "application_id": str(APP),
            "status": "agreement_pending",
            "grant": NOK,
            "accept_by": "2026-12-20T10:00:00Z",
        },
        "agreement_offered",
        "agreement_offered",
        ("email",),
        {"grant": NOK},
    ),
    (
        "agreement.reminder",
        {
            "application_id": str(APP),
            "status": "agreement_pending",
            "accept_by": "2026-12-20T10:00:00Z",
        },
        "agreement_reminder",
        "agreement_reminder",
        ("email", "sms"),
        {"accept_by": "2026-12-20T10:00:00+00:00"},
    ),
    (
        "payment.confirmed",
        payment("ADV-000123"),
        "payment_sent:ADV-000123",
        "payment_sent",
        ("email", "sms"),
        {"amount": {"amount": "48000.00", "currency": "NOK"}, "kind": "advance"},
    ),
    (
        "report.reminder",
        deadline("report_due"),
        "report_reminder:2027-03-01:before",
        "report_reminder",
        ("email", "sms"),
        {"due": "2027-03-01", "step": "before"},
    ),
    (
        "report.overdue",
        deadline("report_overdue", year=2),
        "report_overdue:2027-03-01",
        "report_overdue",
        ("email", "sms"),
        {"year": 2},
    ),
    (
        "report.approved",
        {
            "application_id": str(APP),
            "status": "final_payment",
            "advisor": "kari.nordmann",
            "comment": "",
            "settlement": {
                "eligible": NOK,
                "advance": {"amount": "48000.00", "currency": "NOK"},
                "final_payment": {"amount": "12000.00", "currency": "NOK"},
                "claim_back": {"amount": "0.00", "currency": "NOK"},
                "release": {"amount": "0.00", "currency": "NOK"},
            },
        },
        "report_approved:final",
        "report_approved",
        ("email",),
        {"final_payment": {"amount": "12000.00", "currency": "NOK"}, "claim_back": None},
    ),
    (
        "grant.closed",
        {
            "application_id": str(APP),
            "status": "closed",
            "paid": NOK,
            "claimed_back": None,
            "results": "Done",
        },
        "closed",
        "closed",
        ("email",),
        {"paid": NOK},
    ),
    (
        "application.withdrawn",
        {
            "application_id": str(APP),
            "status": "withdrawn",
            "reason": "information_not_provided_in_time",
        },
        "withdrawn",
        "withdrawn",
        ("email",),
        {"reason": "information_not_provided_in_time"},
    ),
    (
        "grant.lapsed",
        {"application_id": str(APP), "status": "lapsed", "released": NOK},
        "lapsed",
        "lapsed",
        ("email",),
        {},
    ),
]


def test_every_event_type_is_either_a_milestone_or_deliberately_not_for_the_applicant() -> None:
    known = {event_type for event_type, _ in PAYLOADS}
    assert set(MILESTONE_EVENTS) | set(NOT_FOR_THE_APPLICANT) == known
    assert not set(MILESTONE_EVENTS) & set(NOT_FOR_THE_APPLICANT)


def test_every_milestone_event_is_covered_here() -> None:
    assert {case[0] for case in CASES} == set(MILESTONE_EVENTS)


@pytest.mark.parametrize(
    ("event_type", "payload", "key", "template", "channels", "facts"),
    CASES,
    ids=[case[0] for case in CASES],
)
def test_milestone_of_each_lifecycle_event(
    event_type: str,
    payload: dict[str, Any],
    key: str,
    template: str,
    channels: tuple[str, ...],
    facts: dict[str, Any],
) -> None:
    found = milestone_for(*event(event_type, payload))
    assert found is not None
    assert (found.key, found.template, found.channels) == (key, template, channels)
    assert facts.items() <= found.context.items()
    assert TEMPLATES[template] == channels


@pytest.mark.parametrize("event_type", ["review.reminder", "review.escalated"])
def test_staff_reminders_and_escalations_of_the_review_reach_no_applicant(event_type: str) -> None:
    payload = {
        "application_id": str(APP),
        "status": "in_review",
        "advisor": "kari.nordmann",
        "notify": "ingrid.solberg",
        "overdue_since": "2026-11-22T10:00:00Z",
    }
    assert milestone_for(*event(event_type, payload)) is None


def test_report_escalation_to_the_advisor_reaches_no_applicant() -> None:
    assert milestone_for(*event("report.escalated", deadline("report_overdue"))) is None


def test_an_eligible_screening_tells_the_applicant_nothing_yet() -> None:
    payload = {"application_id": str(APP), "status": "screening", "eligible": True, "reasons": []}
    assert milestone_for(*event("application.screened", payload)) is None


def test_the_two_report_reminders_are_two_messages_and_each_is_one() -> None:
    before = milestone_for(*event("report.reminder", deadline("report_due"), "2027-02-15T00:00Z"))
    on_due = milestone_for(*event("report.reminder", deadline("report_due"), "2027-03-01T00:00Z"))
    again = milestone_for(*event("report.reminder", deadline("report_due"), "2027-03-01T00:00Z"))
    assert before is not None and on_due is not None and again is not None
    assert before.key == "report_reminder:2027-03-01:before"
    assert on_due.key == "report_reminder:2027-03-01:due"
    # The same reminder redelivered maps to the same key: the unique key records it once.
    assert again.key == on_due.key


def test_each_payment_is_its_own_milestone() -> None:
    first = milestone_for(*event("payment.confirmed", payment("ADV-000123")))
    second = milestone_for(*event("payment.confirmed", payment("FIN-000124")))
    assert first is not None and second is not None
    assert first.key != second.key


def test_an_sms_opt_out_leaves_only_the_email() -> None:
    decision = milestone_for(*event(CASES[3][0], CASES[3][1]))
    assert decision is not None
    assert channels_for(decision, sms_opt_out=False) == ("email", "sms")
    assert channels_for(decision, sms_opt_out=True) == ("email",)
    received = Milestone("received", "received", ("email",), {})
    assert channels_for(received, sms_opt_out=True) == ("email",)


def test_the_milestone_does_not_depend_on_the_event_id() -> None:
    # A republished event (new id, same facts) maps to the same key: still sent once.
    envelope, payload = event(CASES[6][0], CASES[6][1])
    copy = envelope.model_copy(update={"event_id": uuid4(), "occurred_at": datetime.now(UTC)})
    first, second = milestone_for(envelope, payload), milestone_for(copy, payload)
    assert first is not None and second is not None and first.key == second.key
