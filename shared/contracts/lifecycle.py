"""Inputs and results of the application lifecycle workflow, shared by the services that
start it, signal it or run its children (each on its own task queue)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from shared.contracts.application import ApplicationDocument, FundingType
from shared.contracts.money import Currency

ApplicationStatus = Literal[
    "submitted",
    "screening",
    "ineligible",
    "in_review",
    "information_requested",
    "withdrawn",
    "awaiting_decision",
    "approved",
    "rejected",
    "agreement_pending",
    "lapsed",
    "active",
    "report_due",
    "report_overdue",
    "report_submitted",
    "report_changes_requested",
    "final_payment",
    "claim_back",
    "closed",
]

LIFECYCLE_WORKFLOW = "ApplicationLifecycle"


class LifecycleInput(BaseModel):
    """What the lifecycle needs: the application and the facts it is searched by."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    application_id: UUID
    correlation_id: UUID
    document: ApplicationDocument
    external_ref: str
    funding_line: str
    funding_type: FundingType
    applicant_country: str
    requested_amount: Decimal
    currency: Currency


class LifecycleState(BaseModel):
    application_id: UUID
    status: ApplicationStatus
