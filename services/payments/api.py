"""Payments's HTTP API: the budget ledgers (read-only), and finance's view of payments and
their actions. Actions are Temporal updates on the grant workflow: a wrong one is refused
(409) with the workflow's reason and changes nothing."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from fastapi import FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict

from services.payments.repository import PaymentRecord, PaymentStatus, Repository
from shared.auth import DECIDERS, Caller, Role
from shared.contracts.grant import (
    UPDATE_BANK_DETAILS_CORRECTED,
    UPDATE_CLAIM_BACK_SETTLED,
    BankDetailsCorrected,
    ClaimBackSettled,
    GrantActionResult,
    PaymentKind,
)
from shared.contracts.ledger import LedgerView
from shared.contracts.money import Currency
from shared.contracts.review import UserId
from shared.http import Guard, create_app, perform_action
from shared.runtime import ServiceContext
from shared.temporal import grant_workflow_id

_LINE = re.compile(r"[A-Z][A-Z0-9-]{1,39}")
_REFERENCE = re.compile(r"[A-Z0-9-]{6,35}")


class PaymentAttemptView(BaseModel):
    """One attempt at a payment; the amount an exact decimal string in its currency."""

    reference: str
    attempt: int
    application_id: UUID
    kind: PaymentKind
    amount: Decimal
    currency: Currency
    funding_line: str
    year: int
    payee_name: str
    payee_org_number: str
    status: PaymentStatus
    reason: str | None
    requested_at: datetime
    answered_at: datetime | None
    alerted_at: datetime | None

    @classmethod
    def of(cls, record: PaymentRecord) -> PaymentAttemptView:
        return cls(
            reference=record.reference,
            attempt=record.attempt,
            application_id=record.application_id,
            kind=record.kind,
            amount=record.amount.amount,
            currency=record.amount.currency,
            funding_line=record.funding_line,
            year=record.year,
            payee_name=record.payee_name,
            payee_org_number=record.payee_org_number,
            status=record.status,
            reason=record.reason,
            requested_at=record.requested_at,
            answered_at=record.answered_at,
            alerted_at=record.alerted_at,
        )


class PaymentView(BaseModel):
    """A payment and every attempt at it. `status`: confirmed once an attempt is confirmed,
    otherwise the latest attempt's."""

    reference: str
    application_id: UUID
    kind: PaymentKind
    amount: Decimal
    currency: Currency
    status: PaymentStatus
    attempts: list[PaymentAttemptView]


class BankDetailsCorrection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    corrected_by: UserId


def build_api(ctx: ServiceContext) -> FastAPI:
    app = create_app(ctx, "Barents Grants — payments")
    repo = Repository(ctx.pool)
    guard = Guard(ctx)
    # Who reads the money: finance and operators; the decision makers see the ledgers too.
    ledger_readers: tuple[Role, ...] = ("finance", "operator", *DECIDERS)

    async def act(application_id: UUID, update: str, action: BaseModel) -> GrantActionResult:
        return await perform_action(
            ctx, grant_workflow_id(application_id), update, action, GrantActionResult
        )

    @app.get("/ledgers", response_model=list[LedgerView], tags=["ledgers"])
    async def list_ledgers(
        request: Request,
        caller: Caller,
        year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    ) -> list[LedgerView]:
        await guard.require(request, caller, *ledger_readers)
        return [ledger.view() for ledger in await repo.ledgers(year)]

    @app.get(
        "/ledgers/{funding_line}/{year}",
        response_model=LedgerView,
        tags=["ledgers"],
        responses={404: {"description": "No ledger for that funding line and year"}},
    )
    async def get_ledger(
        funding_line: str, year: int, request: Request, caller: Caller
    ) -> LedgerView:
        await guard.require(request, caller, *ledger_readers)
        # What no ledger can be called is unknown too, and never reaches Postgres (which
        # would fail on a NUL byte or a year beyond its integer range).
        known = _LINE.fullmatch(funding_line) is not None and 2000 <= year <= 2100
        ledger = await repo.ledger(funding_line, year) if known else None
        if ledger is None:
            raise HTTPException(status_code=404, detail="no ledger for that funding line and year")
        return ledger.view()

    @app.get("/payments", response_model=list[PaymentAttemptView], tags=["payments"])
    async def list_payments(
        application_id: UUID | None = None,
        status: Literal["requested", "confirmed", "rejected"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        *,
        request: Request,
        caller: Caller,
    ) -> list[PaymentAttemptView]:
        """Payment attempts, the most recently requested first."""
        await guard.require(request, caller, "finance", "operator")
        records = await repo.payments(application_id=application_id, status=status, limit=limit)
        return [PaymentAttemptView.of(r) for r in records]

    @app.get(
        "/payments/{reference}",
        response_model=PaymentView,
        tags=["payments"],
        responses={404: {"description": "No payment with that reference"}},
    )
    async def get_payment(reference: str, request: Request, caller: Caller) -> PaymentView:
        await guard.require(request, caller, "finance", "operator")
        attempts = await _attempts(reference)
        latest = attempts[-1]
        confirmed = any(a.status == "confirmed" for a in attempts)
        return PaymentView(
            reference=latest.reference,
            application_id=latest.application_id,
            kind=latest.kind,
            amount=latest.amount.amount,
            currency=latest.amount.currency,
            status="confirmed" if confirmed else latest.status,
            attempts=[PaymentAttemptView.of(a) for a in attempts],
        )

    @app.post(
        "/payments/{reference}/bank-details-corrected",
        response_model=GrantActionResult,
        tags=["payments"],
        responses={
            404: {"description": "No payment with that reference, or no open grant"},
            409: {"description": "The grant workflow refused the action (with the reason)"},
        },
    )
    async def bank_details_corrected(
        reference: str, body: BankDetailsCorrection, request: Request, caller: Caller
    ) -> GrantActionResult:
        """Finance corrected the payee's bank details after a rejection: the grant workflow
        requests the payment again."""
        await guard.require(request, caller, "finance")
        await guard.require_self(request, caller, body.corrected_by)
        attempts = await _attempts(reference)
        action = BankDetailsCorrected(reference=reference, corrected_by=body.corrected_by)
        return await act(attempts[-1].application_id, UPDATE_BANK_DETAILS_CORRECTED, action)

    @app.post(
        "/applications/{application_id}/claim-back/settled",
        response_model=GrantActionResult,
        tags=["payments"],
        responses={
            404: {"description": "No open grant for that application"},
            409: {"description": "The grant workflow refused the action (with the reason)"},
        },
    )
    async def claim_back_settled(
        application_id: UUID, body: ClaimBackSettled, request: Request, caller: Caller
    ) -> GrantActionResult:
        """Finance received the money claimed back from the grantee."""
        await guard.require(request, caller, "finance")
        await guard.require_self(request, caller, body.settled_by)
        return await act(application_id, UPDATE_CLAIM_BACK_SETTLED, body)

    @app.get("/alerts", response_model=list[PaymentAttemptView], tags=["payments"])
    async def alerts(
        request: Request,
        caller: Caller,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[PaymentAttemptView]:
        """Payment attempts the bank has not confirmed in time and still has not answered,
        the oldest alert first."""
        await guard.require(request, caller, "finance", "operator")
        return [PaymentAttemptView.of(r) for r in await repo.alerts(limit)]

    async def _attempts(reference: str) -> list[PaymentRecord]:
        # What no payment can be called is unknown too, and never reaches Postgres.
        known = _REFERENCE.fullmatch(reference) is not None
        attempts = await repo.payment(reference) if known else []
        if not attempts:
            raise HTTPException(status_code=404, detail="no payment with that reference")
        return attempts

    return app
