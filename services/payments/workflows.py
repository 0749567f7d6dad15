"""The grant workflow: everything after an approval, on the payments task queue.

Agreement (accept within the deadline or the grant lapses and its money returns), the
advance, the final report with its reminders, the settlement (final payment or claim-back)
and closure. Core support pays one installment a year, each after the previous year's
annual report is approved; every year is a fresh run (continue-as-new), so a three-year grant
keeps a short history. Each payment is requested exactly once per attempt and waits for the
bank's answer, alerting finance when none comes; a rejected payment is retried once finance
has corrected the bank details."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    # pydantic imports it lazily when validating e-mail addresses; load it outside the
    # sandbox once instead of on every run.
    import email_validator  # noqa: F401

    from services.payments.settlement import add_months, advance, installments, settle
    from shared.contracts.grant import (
        AGREEMENT_ACCEPTED,
        AGREEMENT_OFFERED,
        AGREEMENT_REMINDER,
        CLAIM_BACK_RAISED,
        CLAIM_BACK_SETTLED,
        GRANT_CLOSED,
        GRANT_LAPSED,
        GRANT_WORKFLOW,
        REPORT_APPROVED,
        REPORT_CHANGES_REQUESTED,
        REPORT_ESCALATED,
        REPORT_OVERDUE,
        REPORT_REMINDER,
        REPORT_SUBMITTED,
        SIGNAL_GRANT_PROGRESS,
        SIGNAL_PAYMENT_RESULT,
        UPDATE_ACCEPT_AGREEMENT,
        UPDATE_BANK_DETAILS_CORRECTED,
        UPDATE_CLAIM_BACK_SETTLED,
        UPDATE_REVIEW_REPORT,
        UPDATE_SUBMIT_REPORT,
        AcceptAgreement,
        AgreementAccepted,
        AgreementOffered,
        AgreementReminder,
        BankDetailsCorrected,
        ClaimBack,
        ClaimBackSettled,
        FinalReport,
        GrantActionResult,
        GrantClosed,
        GrantInput,
        GrantLapsed,
        GrantOutcome,
        GrantPlan,
        PaymentKind,
        PaymentOrder,
        PaymentResult,
        PublishGrantEvent,
        ReportDeadline,
        ReportReviewed,
        ReportSubmitted,
        ReviewReport,
        Settlement,
    )
    from shared.contracts.ledger import (
        RELEASE_BUDGET_ACTIVITY,
        ReleaseBudgetRequest,
        ReleaseBudgetResult,
    )
    from shared.contracts.lifecycle import ApplicationStatus
    from shared.contracts.money import Money
    from shared.contracts.review import ReviewProgress
    from shared.temporal import payment_reference
    from shared.workflow_steps import Progress, step


@dataclass
class _Payment:
    reference: str
    attempt: int
    kind: PaymentKind
    amount: Money
    state: str = "requested"  # requested | confirmed | rejected
    corrected: bool = False


@workflow.defn(name=GRANT_WORKFLOW)
class GrantLifecycle:
    def __init__(self) -> None:
        self._inp: GrantInput | None = None
        self._status: ApplicationStatus = "agreement_pending"
        self._accepted: AcceptAgreement | None = None
        self._report: FinalReport | None = None
        self._report_year: int | None = None
        self._report_review: ReviewReport | None = None
        self._payments: dict[str, _Payment] = {}
        self._results: dict[tuple[str, int], PaymentResult] = {}
        self._claim_back: Money | None = None
        self._claim_settled: ClaimBackSettled | None = None
        self._accepting_reports = False
        self._plan: GrantPlan | None = None
        self._progress_sent = 0
        self._signals = Progress()

    # ---------------------------------------------------------------- the run

    @workflow.run
    async def run(self, inp: GrantInput) -> GrantOutcome:
        outcome = await self._run(inp)
        await self._signals.drain()
        return outcome

    async def _run(self, inp: GrantInput) -> GrantOutcome:
        self._inp = inp
        plan: GrantPlan = await step(
            "payments.grant_plan",
            inp.document.funding_line,
            result_type=GrantPlan,
        )
        self._plan = plan
        if inp.year is not None:
            # A later year of core support (a fresh run): the agreement was accepted in year 1.
            self._status = "active"
        if inp.year is None:
            if not await self._agreement(plan):
                return await self._lapse()
        if inp.document.funding_type == "core":
            return await self._core_year(plan, inp.year or 1)
        return await self._project(plan)

    async def _agreement(self, plan: GrantPlan) -> bool:
        inp = self._need_input()
        offered = workflow.now()
        accept_by = offered + timedelta(seconds=plan.agreement_acceptance_seconds)
        remind_at = offered + timedelta(seconds=plan.agreement_reminder_seconds)
        await self._progress("agreement_pending", next_deadline=accept_by)
        await self._publish(
            AGREEMENT_OFFERED,
            AgreementOffered(
                application_id=inp.application_id,
                status="agreement_pending",
                grant=inp.grant,
                accept_by=accept_by,
            ),
        )
        if not await self._wait_until(lambda: self._accepted is not None, remind_at):
            await self._publish(
                AGREEMENT_REMINDER,
                AgreementReminder(
                    application_id=inp.application_id,
                    status="agreement_pending",
                    accept_by=accept_by,
                ),
            )
            if not await self._wait_until(lambda: self._accepted is not None, accept_by):
                return False
        assert self._accepted is not None
        await self._publish(
            AGREEMENT_ACCEPTED,
            AgreementAccepted(
                application_id=inp.application_id,
                status="active",
                accepted_by=self._accepted.accepted_by,
                grant=inp.grant,
            ),
            actor="applicant",
        )
        await self._progress("active")
        return True

    async def _lapse(self) -> GrantOutcome:
        inp = self._need_input()
        # First: an acceptance arriving while the money is released is refused.
        await self._progress("lapsed")
        released: ReleaseBudgetResult = await step(
            RELEASE_BUDGET_ACTIVITY,
            ReleaseBudgetRequest(
                application_id=inp.application_id,
                reason="lapsed",
                correlation_id=inp.correlation_id,
            ),
            result_type=ReleaseBudgetResult,
            local=False,  # the deadline chose this path; an acceptance may race it
        )
        await self._publish(
            GRANT_LAPSED,
            GrantLapsed(
                application_id=inp.application_id, status="lapsed", released=released.amount
            ),
            local=False,
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return GrantOutcome(status="lapsed")

    async def _project(self, plan: GrantPlan) -> GrantOutcome:
        inp = self._need_input()
        doc = inp.document
        advance_paid = advance(inp.grant, plan.advance_share)
        await self._pay("advance", advance_paid, 1)
        project_end = datetime.combine(doc.period.end, datetime.min.time(), workflow.now().tzinfo)
        due = project_end + timedelta(seconds=plan.final_report_due_seconds)
        report = await self._report_phase(plan, due, None)
        approved_total = Money(amount=doc.budget.total, currency=doc.budget.currency)
        settlement = settle(inp.grant, advance_paid, approved_total, report.actual_costs)
        await self._report_approved(settlement, None)
        paid = advance_paid
        if settlement.final_payment.amount > 0:
            await self._progress("final_payment")
            await self._pay("final", settlement.final_payment, 1)
            paid = Money(
                amount=paid.amount + settlement.final_payment.amount, currency=paid.currency
            )
        claimed: Money | None = None
        if settlement.claim_back.amount > 0:
            claimed = settlement.claim_back
            await self._claim(settlement.claim_back)
        return await self._close(paid, claimed, report.results)

    async def _core_year(self, plan: GrantPlan, year: int) -> GrantOutcome:
        inp = self._need_input()
        doc = inp.document
        years = doc.core_years or 1
        amounts = installments(inp.grant, years)
        await self._pay("installment", amounts[year - 1], year)
        year_end = min(add_months(doc.period.start, 12 * year), doc.period.end)
        due = datetime.combine(year_end, datetime.min.time(), workflow.now().tzinfo) + timedelta(
            seconds=plan.final_report_due_seconds
        )
        report = await self._report_phase(plan, due, year)
        await self._report_approved(None, year)
        paid = Money(
            amount=sum((a.amount for a in amounts[:year]), start=amounts[0].amount * 0),
            currency=inp.grant.currency,
        )
        if year < years:
            await workflow.wait_condition(workflow.all_handlers_finished)
            await self._signals.drain()
            # A fresh run per year keeps the history bounded; the id (and signals) stay.
            workflow.continue_as_new(inp.model_copy(update={"year": year + 1}))
        return await self._close(paid, None, report.results)

    async def _close(self, paid: Money, claimed: Money | None, results: str) -> GrantOutcome:
        inp = self._need_input()
        # Whatever was committed and not paid goes back to the line's budget.
        await step(
            RELEASE_BUDGET_ACTIVITY,
            ReleaseBudgetRequest(
                application_id=inp.application_id,
                reason="closed",
                correlation_id=inp.correlation_id,
            ),
            result_type=ReleaseBudgetResult,
        )
        await self._publish(
            GRANT_CLOSED,
            GrantClosed(
                application_id=inp.application_id,
                status="closed",
                paid=paid,
                claimed_back=claimed,
                results=results,
            ),
        )
        await self._progress("closed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return GrantOutcome(status="closed", paid=paid, claimed_back=claimed)

    # ---------------------------------------------------------------- reporting

    async def _report_phase(self, plan: GrantPlan, due: datetime, year: int | None) -> FinalReport:
        inp = self._need_input()
        self._report_year = year
        self._report = None
        self._report_review = None
        self._accepting_reports = True
        before = timedelta(seconds=plan.report_reminder_before_seconds)
        overdue = timedelta(seconds=plan.report_overdue_notice_seconds)
        escalation = timedelta(seconds=plan.report_escalation_seconds)
        steps: list[tuple[datetime, str, ApplicationStatus, str]] = [
            (due - before, REPORT_REMINDER, "report_due", "applicant"),
            (due, REPORT_REMINDER, "report_due", "applicant"),
            (due + overdue, REPORT_OVERDUE, "report_overdue", "applicant"),
            (due + escalation, REPORT_ESCALATED, "report_overdue", inp.advisor),
        ]
        await self._progress(self._status, next_deadline=steps[0][0])
        for index, (at, event, status, notify) in enumerate(steps):
            if await self._wait_until(lambda: self._report is not None, at):
                break
            following = steps[index + 1][0] if index + 1 < len(steps) else None
            await self._progress(status, next_deadline=following)
            await self._publish(
                event,
                ReportDeadline(
                    application_id=inp.application_id,
                    status=status,
                    due=due.date(),
                    year=year,
                    notify=notify,
                ),
            )
        while True:
            await workflow.wait_condition(lambda: self._report is not None)
            await workflow.wait_condition(lambda: self._report_review is not None)
            review = self._report_review
            assert review is not None
            if review.outcome == "approve":
                break
            # Changes requested: the applicant submits again.
            self._report = None
            self._report_review = None
        self._accepting_reports = False
        assert self._report is not None
        return self._report

    async def _report_approved(self, settlement: Settlement | None, year: int | None) -> None:
        review = self._report_review
        assert review is not None
        await self._progress("active")
        await self._publish(
            REPORT_APPROVED,
            ReportReviewed(
                application_id=self._need_input().application_id,
                status=self._status,
                advisor=review.advisor,
                comment=review.comment,
                year=year,
                settlement=settlement,
            ),
            actor=review.advisor,
        )

    async def _claim(self, amount: Money) -> None:
        inp = self._need_input()
        self._claim_back = amount
        await self._progress("claim_back")
        await self._publish(
            CLAIM_BACK_RAISED,
            ClaimBack(application_id=inp.application_id, status="claim_back", amount=amount),
        )
        await workflow.wait_condition(lambda: self._claim_settled is not None)
        settled = self._claim_settled
        assert settled is not None
        await self._publish(
            CLAIM_BACK_SETTLED,
            ClaimBack(
                application_id=inp.application_id,
                status="claim_back",
                amount=settled.amount,
                settled_by=settled.settled_by,
            ),
            actor=settled.settled_by,
        )

    # ---------------------------------------------------------------- payments

    async def _pay(self, kind: PaymentKind, amount: Money, number: int) -> None:
        inp = self._need_input()
        reference = payment_reference(inp.application_id, kind, number)
        attempt = 1
        while True:
            payment = _Payment(reference=reference, attempt=attempt, kind=kind, amount=amount)
            self._payments[reference] = payment
            order = PaymentOrder(
                application_id=inp.application_id,
                correlation_id=inp.correlation_id,
                reference=reference,
                attempt=attempt,
                kind=kind,
                amount=amount,
                funding_line=inp.document.funding_line,
                year=inp.decided_year,
                payee_name=inp.document.applicant.name,
                payee_org_number=inp.document.applicant.org_number,
            )
            await step(
                "payments.request_payment",
                order,
            )
            key = (reference, attempt)
            alert_at = workflow.now() + timedelta(
                seconds=self._need_plan().payment_confirmation_alert_seconds
            )

            def answered(k: tuple[str, int] = key) -> bool:
                return k in self._results

            if not await self._wait_until(answered, alert_at):
                # No answer from the bank in time: finance hears of it, the wait goes on.
                await step(
                    "payments.mark_unconfirmed",
                    order,
                )
                await workflow.wait_condition(answered)
            result = self._results[key]
            payment.state = result.outcome
            if result.outcome == "confirmed":
                return

            # Rejected: wait until finance has corrected the bank details, then try again.
            def corrected(p: _Payment = payment) -> bool:
                return p.corrected

            await workflow.wait_condition(corrected)
            attempt += 1

    def _need_plan(self) -> GrantPlan:
        assert self._plan is not None
        return self._plan

    @workflow.signal(name=SIGNAL_PAYMENT_RESULT)
    def payment_result(self, result: PaymentResult) -> None:
        # The bank may answer twice; the first answer for an attempt counts.
        self._results.setdefault((result.reference, result.attempt), result)

    # ---------------------------------------------------------------- human actions

    @workflow.update(name=UPDATE_ACCEPT_AGREEMENT)
    def accept_agreement(self, acceptance: AcceptAgreement) -> GrantActionResult:
        self._accepted = acceptance
        return GrantActionResult(
            status="active", message="agreement accepted", amount=self._need_input().grant
        )

    @accept_agreement.validator
    def _validate_accept(self, acceptance: AcceptAgreement) -> None:
        if self._status != "agreement_pending" or self._accepted is not None:
            raise ValueError(f"no agreement awaits acceptance (status {self._status})")

    @workflow.update(name=UPDATE_SUBMIT_REPORT)
    async def submit_report(self, report: FinalReport) -> GrantActionResult:
        inp = self._need_input()
        self._report = report
        self._report_review = None
        await self._progress("report_submitted")
        await self._publish(
            REPORT_SUBMITTED,
            ReportSubmitted(
                application_id=inp.application_id,
                status="report_submitted",
                actual_costs=report.actual_costs,
                results=report.results,
                year=report.year,
            ),
            actor="applicant",
        )
        return GrantActionResult(
            status="report_submitted", message="report received; the advisor reviews it"
        )

    @submit_report.validator
    def _validate_report(self, report: FinalReport) -> None:
        if not self._accepting_reports or self._report is not None:
            raise ValueError(f"no report is expected now (status {self._status})")
        inp = self._need_input()
        if report.actual_costs.currency != inp.grant.currency:
            raise ValueError(f"actual costs must be in {inp.grant.currency}")
        if report.year != self._report_year:
            expected = (
                f"the annual report for year {self._report_year}"
                if self._report_year
                else "the final report (no year)"
            )
            raise ValueError(f"expected {expected}")

    @workflow.update(name=UPDATE_REVIEW_REPORT)
    async def review_report(self, review: ReviewReport) -> GrantActionResult:
        inp = self._need_input()
        # Recorded first: a second review is refused while this one is being published.
        self._report_review = review
        if review.outcome == "request_changes":
            await self._progress("report_changes_requested")
            await self._publish(
                REPORT_CHANGES_REQUESTED,
                ReportReviewed(
                    application_id=inp.application_id,
                    status="report_changes_requested",
                    advisor=review.advisor,
                    comment=review.comment,
                    year=self._report_year,
                ),
                actor=review.advisor,
            )
        status: ApplicationStatus = (
            "report_changes_requested" if review.outcome == "request_changes" else "active"
        )
        return GrantActionResult(status=status, message=f"report review: {review.outcome}")

    @review_report.validator
    def _validate_review_report(self, review: ReviewReport) -> None:
        if self._report is None or self._report_review is not None:
            raise ValueError(f"no report awaits review (status {self._status})")
        if review.advisor != self._need_input().advisor:
            raise ValueError("only the application's advisor reviews its report")

    @workflow.update(name=UPDATE_BANK_DETAILS_CORRECTED)
    def bank_details_corrected(self, correction: BankDetailsCorrected) -> GrantActionResult:
        payment = self._payments[correction.reference]
        payment.corrected = True
        return GrantActionResult(
            status=self._status,
            message=f"payment {correction.reference} is requested again",
            amount=payment.amount,
        )

    @bank_details_corrected.validator
    def _validate_correction(self, correction: BankDetailsCorrected) -> None:
        payment = self._payments.get(correction.reference)
        if payment is None or payment.state != "rejected" or payment.corrected:
            raise ValueError(
                f"payment {correction.reference} is not waiting for corrected bank details"
            )

    @workflow.update(name=UPDATE_CLAIM_BACK_SETTLED)
    def claim_back_settled(self, settled: ClaimBackSettled) -> GrantActionResult:
        self._claim_settled = settled
        return GrantActionResult(
            status="closed", message="claim-back settled", amount=settled.amount
        )

    @claim_back_settled.validator
    def _validate_claim(self, settled: ClaimBackSettled) -> None:
        if self._claim_back is None or self._claim_settled is not None:
            raise ValueError("no claim-back is open")
        if settled.amount != self._claim_back:
            raise ValueError(
                f"the claim-back is {self._claim_back.amount} {self._claim_back.currency}"
            )

    @workflow.query
    def status(self) -> ApplicationStatus:
        return self._status

    @workflow.query
    def payments(self) -> list[dict[str, Any]]:
        return [
            {
                "reference": p.reference,
                "attempt": p.attempt,
                "kind": p.kind,
                "amount": p.amount.model_dump(mode="json"),
                "state": p.state,
            }
            for p in self._payments.values()
        ]

    # ---------------------------------------------------------------- helpers

    async def _wait_until(self, done: Any, until: datetime) -> bool:
        """Wait until `done()` (True) or `until` passes (False)."""
        remaining = (until - workflow.now()).total_seconds()
        if remaining <= 0:
            return bool(done())
        try:
            await workflow.wait_condition(done, timeout=timedelta(seconds=remaining))
            return True
        except TimeoutError:
            return bool(done())

    async def _progress(
        self, status: ApplicationStatus, *, next_deadline: datetime | None = None
    ) -> None:
        self._status = status
        # Numbered in the order of the calls; each year of core support (a fresh run) counts
        # on from a higher base, so the parent sees one increasing sequence across runs.
        self._progress_sent += 1
        year = self._inp.year if self._inp is not None else None
        seq = (year or 1) * 1_000_000 + self._progress_sent
        await self._signals.signal(
            SIGNAL_GRANT_PROGRESS,
            ReviewProgress(status=status, next_deadline=next_deadline, seq=seq),
        )

    async def _publish(
        self, event_type: str, payload: Any, actor: str | None = None, *, local: bool = True
    ) -> None:
        await step(
            "payments.publish",
            PublishGrantEvent(
                event_id=workflow.uuid4(),
                correlation_id=self._need_input().correlation_id,
                event_type=event_type,
                actor=actor,
                payload=payload.model_dump(mode="json"),
            ),
            local=local,
        )

    def _need_input(self) -> GrantInput:
        if self._inp is None:
            raise ApplicationError("the grant workflow has not started", non_retryable=True)
        return self._inp


WORKFLOWS: list[type] = [GrantLifecycle]
