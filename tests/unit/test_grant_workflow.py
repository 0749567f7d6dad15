"""The grant after its approval, as the people involved meet it, on Temporal's time-skipping
test server: the applicant accepts the agreement (or lets it lapse), the bank answers the
payments, the applicant reports and the advisor reviews the report, finance settles a
claim-back. The workflow runs on the payments queue against the doubles in
tests/grant_doubles.py; the test plays the bank. What is asserted is what a user would
notice: the status the workflow reports, the events published, the payment orders, the
budget releases and the outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from pydantic import BaseModel
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from shared.contracts.grant import (
    AGREEMENT_ACCEPTED,
    AGREEMENT_OFFERED,
    AGREEMENT_REMINDER,
    CLAIM_BACK_RAISED,
    CLAIM_BACK_SETTLED,
    GRANT_CLOSED,
    GRANT_LAPSED,
    REPORT_APPROVED,
    REPORT_CHANGES_REQUESTED,
    REPORT_ESCALATED,
    REPORT_OVERDUE,
    REPORT_REMINDER,
    REPORT_SUBMITTED,
    UPDATE_ACCEPT_AGREEMENT,
    UPDATE_BANK_DETAILS_CORRECTED,
    UPDATE_CLAIM_BACK_SETTLED,
    UPDATE_REVIEW_REPORT,
    UPDATE_SUBMIT_REPORT,
    AcceptAgreement,
    BankDetailsCorrected,
    ClaimBackSettled,
    FinalReport,
    GrantOutcome,
    PaymentOrder,
    ReviewReport,
)
from shared.contracts.ledger import RELEASE_BUDGET_ACTIVITY
from shared.contracts.lifecycle import ApplicationStatus
from shared.contracts.money import Money
from shared.temporal import payment_reference
from tests.grant_doubles import ADVISOR, DAY, DECIDED_YEAR, Grant, GrantHarness, wait_for
from tests.temporal_helpers import time_skipping

pytestmark = pytest.mark.filterwarnings(
    # pydantic imports email_validator lazily, inside the workflow sandbox (EmailStr in the
    # application document): a warning, not a failure.
    r"ignore:Module (email_validator|idna)\S* was imported after initial workflow load"
)

KO188 = "ko188-cultural-network.json"  # KOLARCTIC project: 150 310 EUR of 171 645
CORE = "en-core-support.json"  # UD-CORE: 3 600 000 NOK over 3 years
ACCEPT = AcceptAgreement(accepted_by="Anna Lindqvist")
FINANCE = "finance.ola"
OTHER_ADVISOR = "ingrid.solberg"
MINUTE = timedelta(minutes=1)


def eur(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


def nok(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="NOK")


def money(data: dict[str, Any]) -> Money:
    return Money.model_validate(data)


def report(actual: Money, year: int | None = None) -> FinalReport:
    return FinalReport(
        actual_costs=actual,
        results="Three network meetings held; a joint exhibition toured Luleå, Rovaniemi "
        "and Murmansk.",
        year=year,
    )


def review(outcome: str = "approve", advisor: str = ADVISOR) -> ReviewReport:
    return ReviewReport.model_validate(
        {"advisor": advisor, "outcome": outcome, "comment": "Costs match the budget lines."}
    )


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await time_skipping()
    yield environment
    await environment.shutdown()


@pytest.fixture(scope="module")
async def running(env: WorkflowEnvironment) -> AsyncIterator[GrantHarness]:
    harness = GrantHarness(env)
    async with harness.worker():
        yield harness


@pytest.fixture
async def h(running: GrantHarness) -> AsyncIterator[GrantHarness]:
    yield running
    await running.clean_up()


# --- helpers ------------------------------------------------------------------------------


async def refused(g: Grant, update: str, action: BaseModel) -> str:
    """The update is refused with a reason and nothing changes: not the status, not the
    payments, and no event is published."""
    status, payments, events = await g.status(), await g.payments(), g.events()
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await g.update(update, action)
    assert await g.status() == status
    assert await g.payments() == payments
    assert g.events() == events
    return str(failure.value.cause)


async def accepted(h: GrantHarness, sample: str) -> tuple[Grant, PaymentOrder]:
    """A grant whose agreement the applicant has accepted: the first payment is ordered."""
    g = await h.start(sample)
    await g.event(AGREEMENT_OFFERED)
    result = await g.update(UPDATE_ACCEPT_AGREEMENT, ACCEPT)
    assert result.status == "active"
    return g, await g.order(1)


async def reporting(h: GrantHarness, sample: str) -> tuple[Grant, PaymentOrder]:
    """A grant whose first payment the bank has confirmed: the report is expected."""
    g, first = await accepted(h, sample)
    await g.bank(first)
    await g.payment_state(first.reference, "confirmed")
    return g, first


def report_due(g: Grant) -> datetime:
    return datetime.combine(g.document.period.end, time(0), tzinfo=UTC) + 90 * DAY


def close_to(moment: datetime, expected: datetime) -> bool:
    return abs(moment - expected) < MINUTE


# --- the agreement ------------------------------------------------------------------------


async def test_an_agreement_not_accepted_in_30_days_lapses_and_the_money_returns(
    h: GrantHarness,
) -> None:
    g = await h.start(KO188)
    offered = await g.event(AGREEMENT_OFFERED)
    assert await g.status() == "agreement_pending"
    assert money(offered.payload["grant"]) == eur("150310.00")
    accept_by = datetime.fromisoformat(offered.payload["accept_by"])
    assert close_to(accept_by, offered.at + 30 * DAY)

    # The reminder goes out on day 23, not before.
    await h.skip_to(offered.at + 23 * DAY - MINUTE)
    assert g.types() == [AGREEMENT_OFFERED]
    await h.skip(2 * MINUTE)
    reminder = await g.event(AGREEMENT_REMINDER)
    assert close_to(reminder.at, offered.at + 23 * DAY)
    assert reminder.payload["accept_by"] == offered.payload["accept_by"]
    assert reminder.payload["status"] == "agreement_pending"

    await h.skip_to(accept_by - MINUTE)
    assert await g.status() == "agreement_pending"
    assert g.releases() == []

    # Day 30: the grant lapses and the committed money goes back to the line's budget.
    assert await g.result() == GrantOutcome(status="lapsed")
    assert await g.status() == "lapsed"
    assert [r.reason for r in g.releases()] == ["lapsed"]
    assert g.types() == [AGREEMENT_OFFERED, AGREEMENT_REMINDER, GRANT_LAPSED]
    [lapsed] = g.published(GRANT_LAPSED)
    assert close_to(lapsed.at, accept_by)
    assert lapsed.payload["status"] == "lapsed"
    assert money(lapsed.payload["released"]) == eur("150310.00")
    assert g.orders() == []

    # Too late to accept: the workflow has ended (while it lapses, the next test).
    with pytest.raises(RPCError):
        await g.update(UPDATE_ACCEPT_AGREEMENT, ACCEPT)
    assert g.orders() == []


async def test_an_acceptance_while_the_grant_lapses_is_refused(h: GrantHarness) -> None:
    # The deadline has passed and the money is being released when the acceptance arrives.
    g = await h.start(KO188)
    offered = await g.event(AGREEMENT_OFFERED)
    accept_by = datetime.fromisoformat(offered.payload["accept_by"])
    gate = h.doubles.hold(RELEASE_BUDGET_ACTIVITY)
    skipping = asyncio.create_task(h.skip_to(accept_by + MINUTE))
    try:
        await asyncio.wait_for(gate.reached.wait(), 10)
        reason = await refused(g, UPDATE_ACCEPT_AGREEMENT, ACCEPT)
        assert "no agreement awaits acceptance" in reason
    finally:
        gate.released.set()
        await skipping
    assert (await g.result()).status == "lapsed"
    assert AGREEMENT_ACCEPTED not in g.types()
    assert g.orders() == []


async def test_acceptance_orders_the_advance_of_80_percent(h: GrantHarness) -> None:
    g = await h.start(KO188)
    await g.event(AGREEMENT_OFFERED)

    result = await g.update(UPDATE_ACCEPT_AGREEMENT, ACCEPT)
    assert result.status == "active"
    assert result.amount == eur("150310.00")
    order = await g.order(1)
    assert order.kind == "advance"
    assert order.amount == eur("120248.00")
    assert order.reference == payment_reference(g.id, "advance", 1)
    assert order.attempt == 1
    assert order.funding_line == "KOLARCTIC"
    assert order.year == DECIDED_YEAR
    assert order.payee_name == "Norrbotten Regional Museum"
    assert order.payee_org_number == "232100-0230"
    assert await g.reaches("active") == "active"
    assert await g.payments() == [
        {
            "reference": order.reference,
            "attempt": 1,
            "kind": "advance",
            "amount": {"amount": "120248.00", "currency": "EUR"},
            "state": "requested",
        }
    ]

    assert g.types() == [AGREEMENT_OFFERED, AGREEMENT_ACCEPTED]
    [acceptance] = g.published(AGREEMENT_ACCEPTED)
    assert acceptance.actor == "applicant"
    assert acceptance.payload["accepted_by"] == "Anna Lindqvist"
    assert acceptance.payload["status"] == "active"

    assert "no agreement awaits acceptance" in await refused(g, UPDATE_ACCEPT_AGREEMENT, ACCEPT)
    assert len(g.orders()) == 1


# --- payments -----------------------------------------------------------------------------


async def test_an_unconfirmed_payment_alerts_finance_once_and_the_wait_goes_on(
    h: GrantHarness,
) -> None:
    g, advance = await accepted(h, KO188)
    ordered_at = h.doubles.orders[-1].at

    await h.skip_to(ordered_at + 3 * DAY - MINUTE)
    assert g.unconfirmed() == []
    await h.skip(2 * MINUTE)

    async def alerted() -> list[PaymentOrder] | None:
        return g.unconfirmed() or None

    assert await wait_for(alerted) == [advance]
    assert close_to(h.doubles.unconfirmed[-1].at, ordered_at + 3 * DAY)

    # Still waiting, ten days on: no second alert, no second order, no report expected yet.
    await h.skip(10 * DAY)
    assert g.unconfirmed() == [advance]
    assert g.orders() == [advance]
    assert await g.status() == "active"
    reason = await refused(g, UPDATE_SUBMIT_REPORT, report(eur("171645.00")))
    assert "no report is expected now" in reason

    # The bank confirms at last: the grant moves on to its report.
    await g.bank(advance)
    await g.payment_state(advance.reference, "confirmed")
    result = await g.update(UPDATE_SUBMIT_REPORT, report(eur("171645.00")))
    assert result.status == "report_submitted"
    assert await g.reaches("report_submitted")
    assert g.unconfirmed() == [advance]


async def test_a_rejected_payment_is_ordered_again_after_finance_corrects_the_bank_details(
    h: GrantHarness,
) -> None:
    g, advance = await accepted(h, KO188)
    correction = BankDetailsCorrected(reference=advance.reference, corrected_by=FINANCE)
    # Nothing to correct while the bank has not rejected the payment.
    assert "not waiting for corrected bank details" in await refused(
        g, UPDATE_BANK_DETAILS_CORRECTED, correction
    )

    await g.bank(advance, "rejected", reason="account closed")
    await g.payment_state(advance.reference, "rejected")
    await g.bank(advance, "rejected", reason="account closed")  # the bank repeats itself
    assert g.orders() == [advance]
    assert await g.status() == "active"

    unknown = BankDetailsCorrected(
        reference=payment_reference(uuid4(), "advance", 1), corrected_by=FINANCE
    )
    assert "not waiting for corrected bank details" in await refused(
        g, UPDATE_BANK_DETAILS_CORRECTED, unknown
    )

    result = await g.update(UPDATE_BANK_DETAILS_CORRECTED, correction)
    assert result.amount == advance.amount
    retry = await g.order(2)
    assert retry.reference == advance.reference
    assert retry.attempt == 2
    assert retry.amount == eur("120248.00")
    assert retry.kind == "advance"
    await g.payment_state(advance.reference, "requested")
    # The new attempt is with the bank: there is nothing to correct.
    assert "not waiting for corrected bank details" in await refused(
        g, UPDATE_BANK_DETAILS_CORRECTED, correction
    )

    # Late and repeated answers change nothing: the first answer per attempt counts.
    await g.bank(advance, "confirmed")
    await g.bank(retry)
    await g.bank(retry)
    await g.bank(retry, "rejected", reason="duplicate")
    payment = await g.payment_state(advance.reference, "confirmed")
    assert payment["attempt"] == 2
    assert len(await g.payments()) == 1
    assert g.orders() == [advance, retry]
    assert g.unconfirmed() == []
    # The grant moved on, once: the report is expected.
    result = await g.update(UPDATE_SUBMIT_REPORT, report(eur("171645.00")))
    assert result.status == "report_submitted"
    assert g.orders() == [advance, retry]


# --- the final report ---------------------------------------------------------------------


async def test_report_reminders_overdue_notice_and_escalation_to_the_advisor(
    h: GrantHarness,
) -> None:
    g, _ = await reporting(h, KO188)
    due = report_due(g)

    steps: list[tuple[datetime, str, ApplicationStatus, str]] = [
        (due - 14 * DAY, REPORT_REMINDER, "report_due", "applicant"),
        (due, REPORT_REMINDER, "report_due", "applicant"),
        (due + 7 * DAY, REPORT_OVERDUE, "report_overdue", "applicant"),
        (due + 30 * DAY, REPORT_ESCALATED, "report_overdue", ADVISOR),
    ]
    deadline_events = {REPORT_REMINDER, REPORT_OVERDUE, REPORT_ESCALATED}
    status_before: ApplicationStatus = "active"
    for count, (at, event_type, status, notify) in enumerate(steps, start=1):
        await h.skip_to(at - MINUTE)
        assert len([t for t in g.types() if t in deadline_events]) == count - 1
        assert await g.status() == status_before
        await h.skip(2 * MINUTE)
        nth = sum(1 for _, t, _, _ in steps[:count] if t == event_type)
        event = await g.event(event_type, nth)
        assert close_to(event.at, at), (event_type, event.at, at)
        assert event.payload["due"] == due.date().isoformat()
        assert event.payload["notify"] == notify
        assert event.payload["status"] == status
        assert event.payload["year"] is None
        assert await g.reaches(status) == status
        status_before = status

    # Nothing more happens by itself; the applicant can still report.
    await h.skip(60 * DAY)
    assert len([t for t in g.types() if t in deadline_events]) == len(steps)
    result = await g.update(UPDATE_SUBMIT_REPORT, report(eur("171645.00")))
    assert result.status == "report_submitted"
    assert await g.reaches("report_submitted")
    submitted = await g.event(REPORT_SUBMITTED)
    assert submitted.actor == "applicant"
    assert money(submitted.payload["actual_costs"]) == eur("171645.00")


async def test_costs_below_budget_reduce_the_final_payment_and_confirmation_closes_the_grant(
    h: GrantHarness,
) -> None:
    g, advance = await reporting(h, KO188)

    assert "no report awaits review" in await refused(g, UPDATE_REVIEW_REPORT, review())
    assert "actual costs must be in EUR" in await refused(
        g, UPDATE_SUBMIT_REPORT, report(nok("140000.00"))
    )
    assert "expected the final report" in await refused(
        g, UPDATE_SUBMIT_REPORT, report(eur("140000.00"), year=1)
    )
    result = await g.update(UPDATE_SUBMIT_REPORT, report(eur("140000.00")))
    assert result.status == "report_submitted"
    assert await g.reaches("report_submitted")
    assert "no report is expected now" in await refused(
        g, UPDATE_SUBMIT_REPORT, report(eur("140000.00"))
    )
    assert "only the application's advisor" in await refused(
        g, UPDATE_REVIEW_REPORT, review(advisor=OTHER_ADVISOR)
    )

    # The advisor asks for changes; the applicant reports again.
    result = await g.update(UPDATE_REVIEW_REPORT, review("request_changes"))
    assert result.status == "report_changes_requested"
    assert await g.reaches("report_changes_requested")
    changes = await g.event(REPORT_CHANGES_REQUESTED)
    assert changes.actor == ADVISOR
    assert changes.payload["comment"] == "Costs match the budget lines."
    assert "no report awaits review" in await refused(g, UPDATE_REVIEW_REPORT, review())
    await g.update(UPDATE_SUBMIT_REPORT, report(eur("140000.00")))
    assert await g.reaches("report_submitted")

    result = await g.update(UPDATE_REVIEW_REPORT, review())
    final = await g.order(2)
    assert final.kind == "final"
    assert final.amount == eur("2350.38")
    assert final.reference == payment_reference(g.id, "final", 1)
    assert final.attempt == 1
    assert await g.reaches("final_payment")
    approved = await g.event(REPORT_APPROVED)
    assert approved.actor == ADVISOR
    assert approved.payload["status"] == "active"
    settlement = {k: money(v) for k, v in approved.payload["settlement"].items()}
    assert settlement == {
        "eligible": eur("122598.38"),
        "advance": eur("120248.00"),
        "final_payment": eur("2350.38"),
        "claim_back": eur("0.00"),
        "release": eur("27711.62"),
    }
    assert g.releases() == []

    # The bank confirms the final payment: the grant is closed.
    await g.bank(final)
    assert await g.result() == GrantOutcome(status="closed", paid=eur("122598.38"))
    assert await g.status() == "closed"
    assert [r.reason for r in g.releases()] == ["closed"]
    assert g.orders() == [advance, final]
    [closed] = g.published(GRANT_CLOSED)
    assert money(closed.payload["paid"]) == eur("122598.38")
    assert closed.payload["claimed_back"] is None
    assert closed.payload["results"] == report(eur("1.00")).results
    assert g.types() == [
        AGREEMENT_OFFERED,
        AGREEMENT_ACCEPTED,
        REPORT_SUBMITTED,
        REPORT_CHANGES_REQUESTED,
        REPORT_SUBMITTED,
        REPORT_APPROVED,
        GRANT_CLOSED,
    ]


async def test_an_approval_while_changes_are_being_requested_is_refused(
    h: GrantHarness,
) -> None:
    # The advisor asks for changes and, while that is being recorded, approves as well.
    g, advance = await reporting(h, KO188)
    await g.update(UPDATE_SUBMIT_REPORT, report(eur("140000.00")))
    gate = h.doubles.hold(REPORT_CHANGES_REQUESTED)
    asking = asyncio.create_task(g.update(UPDATE_REVIEW_REPORT, review("request_changes")))
    try:
        await asyncio.wait_for(gate.reached.wait(), 10)
        assert "no report awaits review" in await refused(g, UPDATE_REVIEW_REPORT, review())
    finally:
        gate.released.set()
        result = await asyncio.wait_for(asking, 10)
    assert result.status == "report_changes_requested"
    assert await g.reaches("report_changes_requested")
    assert REPORT_APPROVED not in g.types()
    assert g.orders() == [advance]
    # The applicant reports again, and that report is what the advisor approves.
    await g.update(UPDATE_SUBMIT_REPORT, report(eur("171645.00")))
    await g.update(UPDATE_REVIEW_REPORT, review())
    final = await g.order(2)
    assert final.amount == eur("30062.00")


async def test_an_advance_above_what_the_costs_justify_is_claimed_back(h: GrantHarness) -> None:
    g, advance = await reporting(h, KO188)
    await g.update(UPDATE_SUBMIT_REPORT, report(eur("100000.00")))
    assert "no claim-back is open" in await refused(
        g, UPDATE_CLAIM_BACK_SETTLED, ClaimBackSettled(settled_by=FINANCE, amount=eur("1.00"))
    )
    await g.update(UPDATE_REVIEW_REPORT, review())

    assert await g.reaches("claim_back")
    raised = await g.event(CLAIM_BACK_RAISED)
    assert money(raised.payload["amount"]) == eur("32677.73")
    assert g.orders() == [advance]

    wrong = ClaimBackSettled(settled_by=FINANCE, amount=eur("32677.00"))
    assert "the claim-back is 32677.73 EUR" in await refused(g, UPDATE_CLAIM_BACK_SETTLED, wrong)
    right = ClaimBackSettled(settled_by=FINANCE, amount=eur("32677.73"))
    result = await g.update(UPDATE_CLAIM_BACK_SETTLED, right)
    assert result.amount == eur("32677.73")

    assert await g.result() == GrantOutcome(
        status="closed", paid=eur("120248.00"), claimed_back=eur("32677.73")
    )
    assert await g.status() == "closed"
    [settled] = g.published(CLAIM_BACK_SETTLED)
    assert settled.actor == FINANCE and settled.payload["settled_by"] == FINANCE
    [closed] = g.published(GRANT_CLOSED)
    assert money(closed.payload["paid"]) == eur("120248.00")
    assert money(closed.payload["claimed_back"]) == eur("32677.73")
    assert [r.reason for r in g.releases()] == ["closed"]
    assert g.orders() == [advance]
    assert g.types()[-4:] == [REPORT_APPROVED, CLAIM_BACK_RAISED, CLAIM_BACK_SETTLED, GRANT_CLOSED]


# --- core support -------------------------------------------------------------------------


async def test_core_support_pays_one_installment_a_year_each_after_the_annual_report(
    h: GrantHarness,
) -> None:
    g, first = await accepted(h, CORE)
    runs = [(await g.handle.describe()).run_id]

    order = first
    for year in (1, 2, 3):
        assert order.kind == "installment"
        assert order.amount == nok("1200000.00")
        assert order.reference == payment_reference(g.id, "installment", year)
        assert order.attempt == 1
        assert order.year == DECIDED_YEAR
        assert await g.status() == "active"
        # No report before the installment is confirmed; none for another year after.
        assert "no report is expected now" in await refused(
            g, UPDATE_SUBMIT_REPORT, report(nok("1150000.00"), year=year)
        )
        await g.bank(order)
        await g.payment_state(order.reference, "confirmed")
        for wrong in {1, 2, 3} - {year}:
            assert f"expected the annual report for year {year}" in await refused(
                g, UPDATE_SUBMIT_REPORT, report(nok("1150000.00"), year=wrong)
            )
        assert "expected the annual report" in await refused(
            g, UPDATE_SUBMIT_REPORT, report(nok("1150000.00"))
        )
        await g.update(UPDATE_SUBMIT_REPORT, report(nok("1150000.00"), year=year))
        result = await g.update(UPDATE_REVIEW_REPORT, review())
        assert result.status == "active"
        approved = await g.event(REPORT_APPROVED, year)
        assert approved.payload["year"] == year
        if year < 3:
            # The next year is a fresh run of the same workflow.
            order = await g.order(year + 1)
            runs.append((await g.handle.describe()).run_id)
            assert "no agreement awaits acceptance" in await refused(
                g, UPDATE_ACCEPT_AGREEMENT, ACCEPT
            )

    assert await g.result() == GrantOutcome(status="closed", paid=nok("3600000.00"))
    assert await g.status() == "closed"
    assert len(set(runs)) == 3
    for run_id in runs:
        history = await h.env.client.get_workflow_handle(g.handle.id, run_id=run_id).fetch_history()
        assert len(history.events) < 200
    assert [o.reference for o in g.orders()] == [
        payment_reference(g.id, "installment", year) for year in (1, 2, 3)
    ]
    assert [r.reason for r in g.releases()] == ["closed"]
    assert g.types().count(AGREEMENT_OFFERED) == 1
    assert g.types().count(REPORT_APPROVED) == 3
    [closed] = g.published(GRANT_CLOSED)
    assert money(closed.payload["paid"]) == nok("3600000.00")
