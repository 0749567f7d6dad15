"""The public project register: which funded projects are published and what they show.

A read model built from the events on the lifecycle topic. The rules here are pure (no I/O):
`project` folds one event into an application's register state, `is_public` says whether the
state is published, `entry` shapes the public JSON entry and `render_page` the public HTML page.
The repository stores the state; the consumer and the HTTP API only call these.

Rules:
- `application.submitted`: the project facts (code = external_ref, title, funding line,
  objective, main activities, period, total budget, lead partner, partners). Never the
  contact person. Not public yet.
- `decision.made`, approved: programme funding = the approved amount. Not public yet.
- `agreement.accepted`: the grant is funded: public, status "active"; programme funding =
  the grant.
- `grant.lapsed`: never public.
- `report.submitted` / `report.approved`: the approved report's results (kept, not shown,
  until the report is approved).
- `grant.closed`: status "closed", programme funding = what was paid, results = the closing
  results (authoritative over the report's).

Every rule sets its own fields only, so events arriving out of order give the same state
(a closed grant stays closed when a late `agreement.accepted` arrives).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from shared.contracts.application import ApplicationDocument
from shared.contracts.grant import (
    AGREEMENT_ACCEPTED,
    GRANT_CLOSED,
    GRANT_LAPSED,
    REPORT_APPROVED,
    REPORT_SUBMITTED,
    AgreementAccepted,
    GrantClosed,
    GrantLapsed,
    ReportReviewed,
    ReportSubmitted,
)
from shared.contracts.money import Money
from shared.contracts.review import DECISION_MADE, DecisionMade
from shared.events import APPLICATION_SUBMITTED, ApplicationSubmitted

# The event types the register consumes; every other type leaves it unchanged.
HANDLED: tuple[str, ...] = (
    APPLICATION_SUBMITTED,
    DECISION_MADE,
    AGREEMENT_ACCEPTED,
    GRANT_LAPSED,
    REPORT_SUBMITTED,
    REPORT_APPROVED,
    GRANT_CLOSED,
)

RegisterStatus = Literal["active", "closed"]


# --- the stored state ------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    """An organisation as published: its name and country, nothing about its people."""

    name: str
    country: str


@dataclass(frozen=True)
class ProjectFacts:
    code: str
    title: str
    funding_line: str
    objective: str
    main_activities: tuple[str, ...]
    period_start: date
    period_end: date
    total_budget: Money
    lead_partner: Party
    partners: tuple[Party, ...]


@dataclass(frozen=True)
class RegisterState:
    """One application's register row. Holds no personal data by construction."""

    application_id: UUID
    facts: ProjectFacts | None = None
    decided: Money | None = None
    granted: Money | None = None
    paid: Money | None = None
    accepted_at: datetime | None = None
    lapsed_at: datetime | None = None
    closed_at: datetime | None = None
    # The latest submitted report's results (private until approved) and when it came.
    report_results: str | None = None
    report_submitted_at: datetime | None = None
    approved_results: str | None = None
    closed_results: str | None = None


def facts_of(document: ApplicationDocument) -> ProjectFacts:
    """The publishable facts of an application: the lead partner is the partner with role
    "lead", else the applicant organisation; the partners are the other organisations (the
    applicant among them when someone else leads). No contact person, no org number."""
    applicant = Party(name=document.applicant.name, country=document.applicant.country)
    lead = next((p for p in document.partners if p.role == "lead"), None)
    others = [Party(name=p.name, country=p.country) for p in document.partners if p is not lead]
    if lead is None:
        lead_party = applicant
    else:
        lead_party = Party(name=lead.name, country=lead.country)
        if applicant != lead_party and applicant not in others:
            others.insert(0, applicant)
    return ProjectFacts(
        code=document.external_ref,
        title=document.title,
        funding_line=document.funding_line,
        objective=document.objective,
        main_activities=tuple(document.activities),
        period_start=document.period.start,
        period_end=document.period.end,
        total_budget=Money(amount=document.budget.total, currency=document.budget.currency),
        lead_partner=lead_party,
        partners=tuple(others),
    )


# --- the rules -------------------------------------------------------------------------------


def concerns(event_type: str, payload: BaseModel) -> bool:
    """Whether the event can change the register (a rejection, say, cannot)."""
    if event_type not in HANDLED:
        return False
    if isinstance(payload, DecisionMade):
        return payload.outcome == "approved" and payload.amount is not None
    return True


def project(
    state: RegisterState, event_type: str, payload: BaseModel, occurred_at: datetime
) -> RegisterState:
    """Fold one event into the state. Applying the same event twice gives the same state."""
    if not concerns(event_type, payload):
        return state
    if event_type == APPLICATION_SUBMITTED and isinstance(payload, ApplicationSubmitted):
        return replace(state, facts=facts_of(payload.document))
    if event_type == DECISION_MADE and isinstance(payload, DecisionMade):
        return replace(state, decided=payload.amount)
    if event_type == AGREEMENT_ACCEPTED and isinstance(payload, AgreementAccepted):
        return replace(state, granted=payload.grant, accepted_at=state.accepted_at or occurred_at)
    if event_type == GRANT_LAPSED and isinstance(payload, GrantLapsed):
        return replace(state, lapsed_at=state.lapsed_at or occurred_at)
    if event_type == REPORT_SUBMITTED and isinstance(payload, ReportSubmitted):
        if state.report_submitted_at is not None and occurred_at < state.report_submitted_at:
            return state  # an older report, arriving late
        return replace(state, report_results=payload.results, report_submitted_at=occurred_at)
    if event_type == REPORT_APPROVED and isinstance(payload, ReportReviewed):
        # Should the event carry the results itself one day, they win over the stored ones.
        carried = getattr(payload, "results", None)
        results = carried if isinstance(carried, str) else state.report_results
        return replace(state, approved_results=results or state.approved_results)
    if event_type == GRANT_CLOSED and isinstance(payload, GrantClosed):
        return replace(
            state,
            paid=payload.paid,
            closed_at=state.closed_at or occurred_at,
            closed_results=payload.results or state.closed_results,
        )
    return state


def is_public(state: RegisterState) -> bool:
    """Published: the facts are known, the grant was accepted (or closed), it never lapsed."""
    funded = state.accepted_at is not None or state.closed_at is not None
    return state.facts is not None and funded and state.lapsed_at is None


def status_of(state: RegisterState) -> RegisterStatus:
    return "closed" if state.closed_at is not None else "active"


def programme_funding(state: RegisterState) -> Money | None:
    """What the programme funds: what was paid once closed, else the grant, else the
    approved amount."""
    if state.closed_at is not None and state.paid is not None:
        return state.paid
    return state.granted or state.decided


def results_of(state: RegisterState) -> str | None:
    """grant.closed's results are authoritative; else the approved report's."""
    return state.closed_results or state.approved_results


# --- the public JSON entry -------------------------------------------------------------------


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class PartyView(_View):
    name: str
    country: str


class PeriodView(_View):
    start: date
    end: date


class RegisterEntry(_View):
    """One funded project as published (`GET /register`): no personal data."""

    code: str
    title: str
    funding_line: str
    programme: str
    objective: str
    main_activities: list[str]
    period: PeriodView
    total_budget: Money
    programme_funding: Money | None
    lead_partner: PartyView
    partners: list[PartyView]
    status: RegisterStatus
    results: str | None


def entry(state: RegisterState, programme: Callable[[str], str]) -> RegisterEntry | None:
    """The public entry of a state, or None when it is not public. `programme` names the
    funding line's owner (from the funding configuration)."""
    facts = state.facts
    if facts is None or not is_public(state):
        return None
    return RegisterEntry(
        code=facts.code,
        title=facts.title,
        funding_line=facts.funding_line,
        programme=programme(facts.funding_line),
        objective=facts.objective,
        main_activities=list(facts.main_activities),
        period=PeriodView(start=facts.period_start, end=facts.period_end),
        total_budget=facts.total_budget,
        programme_funding=programme_funding(state),
        lead_partner=PartyView(name=facts.lead_partner.name, country=facts.lead_partner.country),
        partners=[PartyView(name=p.name, country=p.country) for p in facts.partners],
        status=status_of(state),
        results=results_of(state),
    )


# --- the public HTML page --------------------------------------------------------------------

CURRENCY_SYMBOLS: dict[str, str] = {"EUR": "€", "NOK": "kr"}


def format_money(money: Money) -> str:
    """As the public record writes money: "171 645 €", "1 000 000 kr", "12 345,50 €"."""
    minor = money.minor_units()
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    grouped = f"{whole:,}".replace(",", " ")
    number = grouped if cents == 0 else f"{grouped},{cents:02d}"
    return f"{sign}{number} {CURRENCY_SYMBOLS.get(money.currency, money.currency)}"


def format_period(period: PeriodView) -> str:
    return f"{period.start.isoformat()} - {period.end.isoformat()}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _paragraphs(text: str) -> str:
    blocks = [b.strip() for b in text.replace("\r\n", "\n").split("\n\n")]
    return "\n".join(
        "<p>" + "<br>\n".join(_e(line) for line in b.split("\n")) + "</p>" for b in blocks if b
    )


def _party(party: PartyView) -> str:
    return f"{_e(party.name)} ({_e(party.country)})"


def render_entry(item: RegisterEntry) -> str:
    """One project as an <article>, shaped like the public record."""
    anchor = "project-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in item.code)
    heading = f"{_e(item.title)} ({_e(item.code)})"
    funding = format_money(item.programme_funding) if item.programme_funding is not None else "—"
    parts = [
        f'<article id="{_e(anchor)}" aria-labelledby="{_e(anchor)}-title">',
        f'<h2 id="{_e(anchor)}-title">{heading}</h2>',
        f"<p>Funded by {_e(item.programme)} ({_e(item.funding_line)})</p>",
        "<h3>Objective of the project</h3>",
        _paragraphs(item.objective) or "<p>—</p>",
        "<h3>Main activities</h3>",
    ]
    if item.main_activities:
        parts.append("<ul>")
        parts.extend(f"<li>{_e(a)}</li>" for a in item.main_activities)
        parts.append("</ul>")
    else:
        parts.append("<p>—</p>")
    parts += [
        "<h3>Basic information</h3>",
        "<dl>",
        "<dt>Period</dt>",
        f"<dd>{_e(format_period(item.period))}</dd>",
        "<dt>Total Budget / Programme funding</dt>",
        f"<dd>{_e(format_money(item.total_budget))} / {_e(funding)}</dd>",
        "<dt>Lead partner</dt>",
        f"<dd>{_party(item.lead_partner)}</dd>",
        "<dt>Partners</dt>",
    ]
    if item.partners:
        parts.append("<dd><ul>")
        parts.extend(f"<li>{_party(p)}</li>" for p in item.partners)
        parts.append("</ul></dd>")
    else:
        parts.append("<dd>—</dd>")
    parts += [
        "<dt>Status</dt>",
        f"<dd>{'Closed' if item.status == 'closed' else 'Active'}</dd>",
        "</dl>",
    ]
    if item.results:
        parts += ["<h3>Results</h3>", _paragraphs(item.results)]
    parts.append("</article>")
    return "\n".join(parts)


def render_page(entries: Iterable[RegisterEntry], title: str = "Funded projects") -> str:
    """The whole public page: plain, accessible HTML in UTF-8, every text escaped."""
    items = list(entries)
    body = (
        "\n".join(render_entry(item) for item in items)
        if items
        else "<p>No funded projects are published yet.</p>"
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            "</head>",
            "<body>",
            "<header>",
            f"<h1>{_e(title)}</h1>",
            f"<p>{len(items)} project{'s' if len(items) != 1 else ''} funded.</p>",
            "</header>",
            "<main>",
            body,
            "</main>",
            "</body>",
            "</html>",
            "",
        ]
    )
