"""The public project register's rules (services/intake/register.py): what each lifecycle event
does to a project's entry, when it is public, and the public HTML page — with the KO188
sample, the funded project whose public record the register reproduces."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import BaseModel

from services.intake import register
from services.intake.register import RegisterState
from shared.contracts.application import ApplicationDocument
from shared.contracts.grant import (
    AGREEMENT_ACCEPTED,
    GRANT_CLOSED,
    GRANT_LAPSED,
    PAYMENT_CONFIRMED,
    REPORT_APPROVED,
    REPORT_SUBMITTED,
    AgreementAccepted,
    GrantClosed,
    GrantLapsed,
    PaymentEvent,
    ReportReviewed,
    ReportSubmitted,
)
from shared.contracts.money import Money
from shared.contracts.review import (
    APPLICATION_SCREENED,
    DECISION_MADE,
    ApplicationScreened,
    DecisionMade,
)
from shared.events import APPLICATION_SUBMITTED, ApplicationSubmitted
from tests.conftest import load_sample

T0 = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
RESULTS = (
    "The project has created a network of new contacts and concrete multilateral projects "
    "between cultural and artists' institutions."
)
CONTACT = ("Anna Lindqvist", "Anna", "Lindqvist", "anna.lindqvist@example.se", "+46920243500")
# What the KOLARCTIC line's owner is called in these tests.
PROGRAMME = "Kolarctic ENPI 2007-2013"


def eur(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


def ko188(**changes: Any) -> ApplicationDocument:
    data = load_sample("ko188-cultural-network.json")
    data.update(changes)
    return ApplicationDocument.model_validate(data)


def programme(line: str) -> str:
    return PROGRAMME if line == "KOLARCTIC" else line


Event = tuple[str, BaseModel, datetime]


def events(app_id: UUID, document: ApplicationDocument) -> dict[str, Event]:
    """One funded project's events, submitted → approved → accepted → report → closed."""
    return {
        "submitted": (
            APPLICATION_SUBMITTED,
            ApplicationSubmitted(
                application_id=app_id, received_at=T0, channel="http", document=document
            ),
            T0,
        ),
        "approved": (
            DECISION_MADE,
            DecisionMade(
                application_id=app_id,
                status="approved",
                decider="dina.director",
                role="director",
                outcome="approved",
                amount=eur("150310.00"),
                comment="",
            ),
            T0 + timedelta(days=20),
        ),
        "accepted": (
            AGREEMENT_ACCEPTED,
            AgreementAccepted(
                application_id=app_id,
                status="active",
                accepted_by="Anna Lindqvist",
                grant=eur("150310.00"),
            ),
            T0 + timedelta(days=25),
        ),
        "report": (
            REPORT_SUBMITTED,
            ReportSubmitted(
                application_id=app_id,
                status="report_submitted",
                actual_costs=eur("171645.00"),
                results=RESULTS,
            ),
            T0 + timedelta(days=400),
        ),
        "report_approved": (
            REPORT_APPROVED,
            ReportReviewed(
                application_id=app_id, status="final_payment", advisor="kari.nordmann", comment=""
            ),
            T0 + timedelta(days=410),
        ),
        "closed": (
            GRANT_CLOSED,
            GrantClosed(
                application_id=app_id,
                status="closed",
                paid=eur("150310.00"),
                claimed_back=None,
                results=RESULTS,
            ),
            T0 + timedelta(days=420),
        ),
    }


def fold(app_id: UUID, sequence: list[Event]) -> RegisterState:
    state = RegisterState(application_id=app_id)
    for event_type, payload, at in sequence:
        state = register.project(state, event_type, payload, at)
    return state


def run(*names: str, document: ApplicationDocument | None = None) -> RegisterState:
    app_id = uuid4()
    all_events = events(app_id, document or ko188())
    return fold(app_id, [all_events[n] for n in names])


# --- projection ------------------------------------------------------------------------------


def test_submitted_keeps_the_project_facts_but_is_not_public() -> None:
    state = run("submitted")
    facts = state.facts
    assert facts is not None
    assert facts.code == "KO188"
    assert facts.title == "Barents Cultural Co-Production Network"
    assert facts.funding_line == "KOLARCTIC"
    assert facts.main_activities == (
        "Network meetings and seminars",
        "Mapping of co-production interests",
        "Practical programme for cultural management 2012-2015",
    )
    assert facts.total_budget == eur("171645.00")
    # No partner has the role "lead": the applicant organisation leads.
    assert facts.lead_partner == register.Party("Norrbotten Regional Museum", "SE")
    assert [p.name for p in facts.partners] == [
        "Arts Council of Lapland",
        "Department of Culture, Regional Government of Murmansk Region",
        "Aine Art Museum",
    ]
    assert not register.is_public(state)
    assert register.entry(state, programme) is None


def test_approved_decision_sets_funding_but_is_not_public() -> None:
    state = run("submitted", "approved")
    assert register.programme_funding(state) == eur("150310.00")
    assert not register.is_public(state)


def test_accepted_agreement_publishes_the_project_as_active() -> None:
    entry = register.entry(run("submitted", "approved", "accepted"), programme)
    assert entry is not None
    assert entry.status == "active"
    assert entry.programme == PROGRAMME
    assert entry.programme_funding == eur("150310.00")
    assert entry.results is None


def test_the_full_ko188_entry_matches_the_public_record() -> None:
    state = run("submitted", "approved", "accepted", "report", "report_approved", "closed")
    entry = register.entry(state, programme)
    assert entry is not None
    document = ko188()
    assert entry.model_dump(mode="json") == {
        "code": "KO188",
        "title": "Barents Cultural Co-Production Network",
        "funding_line": "KOLARCTIC",
        "programme": PROGRAMME,
        "objective": document.objective,
        "main_activities": document.activities,
        "period": {"start": "2027-04-01", "end": "2028-03-31"},
        "total_budget": {"amount": "171645.00", "currency": "EUR"},
        "programme_funding": {"amount": "150310.00", "currency": "EUR"},
        "lead_partner": {"name": "Norrbotten Regional Museum", "country": "SE"},
        "partners": [
            {"name": "Arts Council of Lapland", "country": "FI"},
            {
                "name": "Department of Culture, Regional Government of Murmansk Region",
                "country": "RU",
            },
            {"name": "Aine Art Museum", "country": "FI"},
        ],
        "status": "closed",
        "results": RESULTS,
    }


def test_closed_pays_what_was_paid_and_its_results_win() -> None:
    app_id = uuid4()
    e = events(app_id, ko188())
    closed = (
        GRANT_CLOSED,
        GrantClosed(
            application_id=app_id,
            status="closed",
            paid=eur("140000.00"),
            claimed_back=eur("10310.00"),
            results="Final results.",
        ),
        T0 + timedelta(days=420),
    )
    state = fold(app_id, [e["submitted"], e["approved"], e["accepted"], e["report"], closed])
    entry = register.entry(state, programme)
    assert entry is not None
    assert entry.programme_funding == eur("140000.00")
    assert entry.results == "Final results."


def test_report_results_are_private_until_the_report_is_approved() -> None:
    submitted_only = register.entry(run("submitted", "approved", "accepted", "report"), programme)
    assert submitted_only is not None and submitted_only.results is None
    approved = register.entry(
        run("submitted", "approved", "accepted", "report", "report_approved"), programme
    )
    assert approved is not None and approved.results == RESULTS
    assert approved.status == "active"


def test_closed_without_results_keeps_the_approved_reports_results() -> None:
    app_id = uuid4()
    e = events(app_id, ko188())
    closed = (
        GRANT_CLOSED,
        GrantClosed(
            application_id=app_id,
            status="closed",
            paid=eur("150310.00"),
            claimed_back=None,
            results=None,
        ),
        T0 + timedelta(days=420),
    )
    state = fold(
        app_id,
        [e["submitted"], e["accepted"], e["report"], e["report_approved"], closed],
    )
    assert register.results_of(state) == RESULTS


def test_lapsed_grant_is_never_public() -> None:
    app_id = uuid4()
    e = events(app_id, ko188())
    lapsed = (
        GRANT_LAPSED,
        GrantLapsed(application_id=app_id, status="lapsed", released=eur("150310.00")),
        T0 + timedelta(days=60),
    )
    assert not register.is_public(fold(app_id, [e["submitted"], e["approved"], lapsed]))
    # Even were an acceptance to follow (out of order, or a mistake), it stays hidden.
    assert not register.is_public(
        fold(app_id, [e["submitted"], e["approved"], lapsed, e["accepted"]])
    )
    assert not register.is_public(fold(app_id, [e["accepted"], lapsed, e["submitted"]]))


def test_rejected_decision_changes_nothing() -> None:
    app_id = uuid4()
    state = run("submitted")
    rejected = DecisionMade(
        application_id=app_id,
        status="rejected",
        decider="hanne.head",
        role="head_of_section",
        outcome="rejected",
        amount=None,
        comment="",
    )
    assert not register.concerns(DECISION_MADE, rejected)
    assert register.project(state, DECISION_MADE, rejected, T0) == state


def test_other_events_change_nothing() -> None:
    state = run("submitted")
    screened = ApplicationScreened(
        application_id=state.application_id, status="in_review", eligible=True, reasons=[]
    )
    payment = PaymentEvent(
        application_id=state.application_id,
        status="active",
        reference="PAY-000001",
        attempt=1,
        kind="advance",
        amount=eur("120248.00"),
    )
    for event_type, payload in [(APPLICATION_SCREENED, screened), (PAYMENT_CONFIRMED, payment)]:
        assert not register.concerns(event_type, payload)
        assert register.project(state, event_type, payload, T0) == state


def test_the_same_event_twice_gives_the_same_state() -> None:
    app_id = uuid4()
    e = events(app_id, ko188())
    once = fold(app_id, list(e.values()))
    twice = fold(app_id, [x for ev in e.values() for x in (ev, ev)])
    assert once == twice


def test_any_order_of_the_events_gives_the_same_entry() -> None:
    app_id = uuid4()
    e = events(app_id, ko188())
    names = ["submitted", "approved", "accepted", "closed"]
    expected = register.entry(fold(app_id, [e[n] for n in names]), programme)
    assert expected is not None and expected.status == "closed"
    for order in itertools.permutations(names):
        assert register.entry(fold(app_id, [e[n] for n in order]), programme) == expected


def test_a_late_older_report_does_not_replace_a_newer_one() -> None:
    app_id = uuid4()
    e = events(app_id, ko188())
    older = (
        REPORT_SUBMITTED,
        ReportSubmitted(
            application_id=app_id,
            status="report_submitted",
            actual_costs=eur("171645.00"),
            results="first draft",
        ),
        T0 + timedelta(days=300),
    )
    state = fold(app_id, [e["submitted"], e["accepted"], e["report"], older])
    assert state.report_results == RESULTS


def test_a_named_lead_partner_leads_and_the_applicant_becomes_a_partner() -> None:
    data = load_sample("ko188-cultural-network.json")
    data["partners"][0]["role"] = "lead"
    facts = register.facts_of(ApplicationDocument.model_validate(data))
    assert facts.lead_partner == register.Party("Arts Council of Lapland", "FI")
    assert [p.name for p in facts.partners] == [
        "Norrbotten Regional Museum",
        "Department of Culture, Regional Government of Murmansk Region",
        "Aine Art Museum",
    ]


def test_no_contact_data_in_the_state_the_entry_or_the_page() -> None:
    state = run("submitted", "approved", "accepted", "report", "report_approved", "closed")
    entry = register.entry(state, programme)
    assert entry is not None
    texts = [repr(state), json.dumps(entry.model_dump(mode="json")), register.render_page([entry])]
    for text in texts:
        for personal in CONTACT:
            assert personal not in text
        assert "232100-0230" not in text  # nor the organisation number


# --- money and HTML --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (eur("171645.00"), "171 645 €"),
        (eur("150310.00"), "150 310 €"),
        (eur("12345.50"), "12 345,50 €"),
        (eur("999.00"), "999 €"),
        (eur("0.00"), "0 €"),
        (Money(amount=Decimal("1000000.00"), currency="NOK"), "1 000 000 kr"),
        (Money(amount=Decimal("300000.05"), currency="NOK"), "300 000,05 kr"),
    ],
)
def test_money_is_written_like_the_public_record(money: Money, text: str) -> None:
    assert register.format_money(money) == text


def closed_entry(document: ApplicationDocument | None = None) -> register.RegisterEntry:
    names = ("submitted", "approved", "accepted", "report", "report_approved", "closed")
    entry = register.entry(run(*names, document=document), programme)
    assert entry is not None
    return entry


def test_the_page_is_shaped_like_the_public_record() -> None:
    page = register.render_page([closed_entry()])
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page
    assert '<html lang="en">' in page
    in_order = [
        "Barents Cultural Co-Production Network (KO188)",
        f"Funded by {PROGRAMME}",
        "Objective of the project",
        "Promote cooperation and communication between cultural institutions",
        "Main activities",
        "<li>Network meetings and seminars</li>",
        "Basic information",
        "2027-04-01 - 2028-03-31",
        "Total Budget / Programme funding",
        "171 645 € / 150 310 €",
        "Lead partner",
        "Norrbotten Regional Museum (SE)",
        "Arts Council of Lapland (FI)",
        "Department of Culture, Regional Government of Murmansk Region (RU)",
        "Aine Art Museum (FI)",
        "Results",
        RESULTS.replace("'", "&#x27;"),
    ]
    positions = [page.find(text) for text in in_order]
    assert -1 not in positions, [t for t, p in zip(in_order, positions, strict=True) if p < 0]
    assert positions == sorted(positions)


def test_an_active_project_has_no_results_section() -> None:
    entry = register.entry(run("submitted", "approved", "accepted"), programme)
    assert entry is not None
    page = register.render_page([entry])
    assert "<h3>Results</h3>" not in page
    assert "<dd>Active</dd>" in page


def test_every_text_is_escaped() -> None:
    hostile = "<script>alert('x')</script>"
    data = load_sample("ko188-cultural-network.json")
    data["title"] = f"Network {hostile}"
    data["objective"] = f'Objective "{hostile}" & more'
    data["activities"] = [hostile]
    data["partners"][0]["name"] = f"Partner {hostile}"
    data["applicant"]["name"] = f"Museum {hostile}"
    page = register.render_page([closed_entry(ApplicationDocument.model_validate(data))])
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&quot;" in page and "&amp; more" in page


def test_russian_and_norwegian_text_renders_as_utf8() -> None:
    title = "Культурная сеть Баренц — Kultursamarbeid på tvers av grensa"
    data = load_sample("ko188-cultural-network.json")
    data["title"] = title
    data["partners"][1]["name"] = "Министерство культуры Мурманской области"
    page = register.render_page([closed_entry(ApplicationDocument.model_validate(data))])
    assert f"{title} (KO188)" in page
    assert "Министерство культуры Мурманской области (RU)" in page
    page.encode("utf-8")


def test_an_empty_register_says_so() -> None:
    page = register.render_page([])
    assert "No funded projects are published yet." in page
