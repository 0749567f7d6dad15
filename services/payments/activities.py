"""Payments' activities on the `payments` task queue: budget commitments for other services'
workflows (the review service's decision calls them by name), and the grant workflow's
payments, events and plan. An exhausted budget is a normal result the decider acts on, never
an exception; a payment that must not be made is a non-retryable failure with the reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.payments.repository import SERVICE, PaymentRefused, Repository
from shared.contracts.grant import GrantPlan, PaymentOrder, PublishGrantEvent
from shared.contracts.ledger import (
    COMMIT_BUDGET_ACTIVITY,
    RELEASE_BUDGET_ACTIVITY,
    CommitBudgetRequest,
    CommitBudgetResult,
    ReleaseBudgetRequest,
    ReleaseBudgetResult,
)
from shared.events import PAYLOADS, Envelope
from shared.funding import FundingConfig, get_funding_config
from shared.runtime import ServiceContext

# Activity names: the grant workflow calls them with `workflow.execute_activity(name, ...)`.
REQUEST_PAYMENT_ACTIVITY = "payments.request_payment"
MARK_UNCONFIRMED_ACTIVITY = "payments.mark_unconfirmed"
PUBLISH_ACTIVITY = "payments.publish"
GRANT_PLAN_ACTIVITY = "payments.grant_plan"

# ApplicationError types the workflow may tell apart (never retried).
PAYMENT_REFUSED = "PaymentRefused"
UNKNOWN_PAYMENT = "UnknownPayment"
UNKNOWN_FUNDING_LINE = "UnknownFundingLine"
INVALID_EVENT = "InvalidEvent"


class LedgerActivities:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    @activity.defn(name=COMMIT_BUDGET_ACTIVITY)
    async def commit_budget(self, request: CommitBudgetRequest) -> CommitBudgetResult:
        # Safe to retry: the repository commits at most once per application.
        outcome = await self._repo.commit(
            request.application_id,
            request.funding_line,
            request.year,
            request.amount,
            request.budget,
            correlation_id=request.correlation_id,
        )
        return CommitBudgetResult(
            application_id=outcome.application_id,
            funding_line=outcome.funding_line,
            year=outcome.year,
            outcome="committed" if outcome.committed else "refused",
            reason=outcome.reason,
            amount=outcome.amount,
            available=outcome.available,
            repeated=outcome.repeated,
            commitment_status=outcome.commitment_status,
        )

    @activity.defn(name=RELEASE_BUDGET_ACTIVITY)
    async def release_budget(self, request: ReleaseBudgetRequest) -> ReleaseBudgetResult:
        outcome = await self._repo.release(
            request.application_id, request.reason, correlation_id=request.correlation_id
        )
        if outcome is None:
            return ReleaseBudgetResult(
                application_id=request.application_id, outcome="not_committed"
            )
        return ReleaseBudgetResult(
            application_id=outcome.application_id,
            outcome="released" if outcome.released_now else "already_released",
            funding_line=outcome.funding_line,
            year=outcome.year,
            amount=outcome.amount,
            available=outcome.available,
        )


class PaymentActivities:
    """What the grant workflow asks of the payments service."""

    def __init__(self, repo: Repository, config: FundingConfig) -> None:
        self._repo = repo
        self._config = config

    @activity.defn(name=REQUEST_PAYMENT_ACTIVITY)
    async def request_payment(self, order: PaymentOrder) -> None:
        """Ask the bank/ERP to pay one attempt: exactly once per (reference, attempt), so
        safe to retry. Refused (non-retryable `PaymentRefused`) when the order contradicts
        an earlier one of its reference, an earlier attempt is not rejected, or the
        application's budget commitment does not cover it."""
        try:
            requested = await self._repo.request_payment(order)
        except PaymentRefused as exc:
            raise ApplicationError(str(exc), type=PAYMENT_REFUSED, non_retryable=True) from exc
        activity.logger.info(
            "payment %s attempt %d %s",
            order.reference,
            order.attempt,
            "requested" if requested else "was requested already",
        )

    @activity.defn(name=MARK_UNCONFIRMED_ACTIVITY)
    async def mark_unconfirmed(self, order: PaymentOrder) -> None:
        """The bank has not confirmed in time: mark the attempt alerted (finance's
        `GET /alerts`) and publish `payment.unconfirmed_alert`, once. Nothing when the bank
        has answered meanwhile."""
        try:
            await self._repo.mark_unconfirmed(order.reference, order.attempt)
        except LookupError as exc:
            raise ApplicationError(str(exc), type=UNKNOWN_PAYMENT, non_retryable=True) from exc

    @activity.defn(name=PUBLISH_ACTIVITY)
    async def publish(self, request: PublishGrantEvent) -> None:
        """A lifecycle event on the application-events topic, once per event id."""
        payload: dict[str, Any] = dict(request.payload)
        try:
            application_id = UUID(str(payload["application_id"]))
        except (KeyError, ValueError) as exc:
            raise ApplicationError(
                f"{request.event_type}: the payload needs a valid application_id",
                type=INVALID_EVENT,
                non_retryable=True,
            ) from exc
        model = PAYLOADS.get((request.event_type, 1))
        if model is None:
            raise ApplicationError(
                f"unknown event type {request.event_type!r}", type=INVALID_EVENT, non_retryable=True
            )
        try:
            model.model_validate(payload)
        except ValidationError as exc:
            # Consumers would dead-letter it: fail here, where the bug is.
            raise ApplicationError(
                f"invalid payload for {request.event_type}: {exc}",
                type=INVALID_EVENT,
                non_retryable=True,
            ) from exc
        await self._repo.publish(
            Envelope(
                event_id=request.event_id,
                type=request.event_type,
                application_id=application_id,
                correlation_id=request.correlation_id,
                source=SERVICE,
                actor=request.actor,
                occurred_at=datetime.now(UTC),
                payload=payload,
            )
        )

    @activity.defn(name=GRANT_PLAN_ACTIVITY)
    async def grant_plan(self, funding_line: str) -> GrantPlan:
        """The line's payment plan and the grant's deadlines, from the configuration."""
        line = self._config.lines.get(funding_line)
        if line is None:
            raise ApplicationError(
                f"unknown funding line {funding_line!r}; configured: "
                f"{', '.join(self._config.lines)}",
                type=UNKNOWN_FUNDING_LINE,
                non_retryable=True,
            )
        deadlines = self._config.deadlines
        return GrantPlan(
            advance_share=line.advance_share,
            agreement_acceptance_seconds=deadlines.agreement_acceptance.total_seconds(),
            agreement_reminder_seconds=deadlines.agreement_reminder.total_seconds(),
            payment_confirmation_alert_seconds=deadlines.payment_confirmation_alert.total_seconds(),
            final_report_due_seconds=deadlines.final_report_due.total_seconds(),
            report_reminder_before_seconds=deadlines.report_reminder_before.total_seconds(),
            report_overdue_notice_seconds=deadlines.report_overdue_notice.total_seconds(),
            report_escalation_seconds=deadlines.report_escalation.total_seconds(),
            currency=line.currency,
        )


def build_activities(ctx: ServiceContext) -> Sequence[Callable[..., Any]]:
    repo = Repository(ctx.pool)
    ledger = LedgerActivities(repo)
    payments = PaymentActivities(repo, get_funding_config())
    return [
        ledger.commit_budget,
        ledger.release_budget,
        payments.request_payment,
        payments.mark_unconfirmed,
        payments.publish,
        payments.grant_plan,
    ]


__all__ = [
    "GRANT_PLAN_ACTIVITY",
    "MARK_UNCONFIRMED_ACTIVITY",
    "PUBLISH_ACTIVITY",
    "REQUEST_PAYMENT_ACTIVITY",
    "LedgerActivities",
    "PaymentActivities",
    "build_activities",
]
