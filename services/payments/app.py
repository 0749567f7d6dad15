"""Payments's Kafka side: the bank/ERP's answers to payment requests.

Each answer settles one payment attempt in one transaction (inbox claim, status, on
confirmation the disbursement on the budget ledger, the `payment.confirmed` or
`payment.rejected` event), then tells the grant workflow by a signal. A repeated answer
changes nothing but is signalled again (the workflow ignores an attempt it has settled), so
a crash between the commit and the signal heals on redelivery. An answer for an unknown
payment, or one contradicting an earlier answer, is dead-lettered with the reason."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

from pydantic import BaseModel
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from services.payments.repository import BANK_ANSWERS_CONSUMER, AnswerRefused, Repository
from shared.auth import kafka_caller
from shared.contracts.grant import (
    BANK_PAYMENT_ANSWER,
    SIGNAL_PAYMENT_RESULT,
    BankPaymentAnswer,
    PaymentResult,
)
from shared.events import Envelope
from shared.kafka import BadMessage, subscribe
from shared.runtime import ServiceContext
from shared.temporal import grant_workflow_id
from shared.topics import BANK_PAYMENT_ANSWERS

log = logging.getLogger(__name__)

# Delivers a payment result to the application's grant workflow.
SignalPaymentResult = Callable[[UUID, PaymentResult], Awaitable[None]]


def temporal_signal(client: Client) -> SignalPaymentResult:
    async def signal(application_id: UUID, result: PaymentResult) -> None:
        handle = client.get_workflow_handle(grant_workflow_id(application_id))
        try:
            await handle.signal(SIGNAL_PAYMENT_RESULT, result)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise  # Temporal away: the consumer retries, and signals again
            # The grant workflow has finished (or was ended by an operator): nobody waits.
            log.warning(
                "payment %s attempt %d: no running grant workflow for %s; result not signalled",
                result.reference,
                result.attempt,
                application_id,
            )

    return signal


class BankAnswers:
    """The handler of `bank.payment_answer` events (separate so tests can drive it)."""

    def __init__(self, repo: Repository, signal: SignalPaymentResult) -> None:
        self._repo = repo
        self._signal = signal

    async def __call__(self, envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, BankPaymentAnswer)
        try:
            outcome = await self._repo.record_answer(
                payload, event_id=envelope.event_id, application_id=envelope.application_id
            )
        except AnswerRefused as exc:
            raise BadMessage(str(exc)) from exc
        if outcome.changed:
            log.info(
                "payment %s attempt %d %s",
                payload.reference,
                payload.attempt,
                outcome.result.outcome,
            )
        # After the commit; again for a repeated answer (the workflow ignores what it knows).
        await self._signal(outcome.application_id, outcome.result)


def register_subscribers(ctx: ServiceContext, signal: SignalPaymentResult | None = None) -> None:
    answers = BankAnswers(Repository(ctx.pool), signal or temporal_signal(ctx.temporal))

    async def authorized_answer(envelope: Envelope, payload: BaseModel) -> None:
        # Only the bank/ERP's system identity (a finance token) answers payments.
        kafka_caller("finance")
        await answers(envelope, payload)

    subscribe(
        ctx.broker,
        ctx.settings,
        topic=BANK_PAYMENT_ANSWERS,
        group_id=BANK_ANSWERS_CONSUMER,
        handles={BANK_PAYMENT_ANSWER: authorized_answer},
        audit_pool=ctx.pool,
    )
