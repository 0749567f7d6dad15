"""The budget ledger's contracts: the payments activities other services' workflows call by
name on the `payments` task queue (shared.temporal.TASK_QUEUE_PAYMENTS), the events the
ledger publishes on the application-events topic, and the ledger's HTTP view."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from shared.contracts.money import Currency, Money

# Activity names: callers use them with `workflow.execute_activity(name, ...)`.
COMMIT_BUDGET_ACTIVITY = "payments.commit_budget"
RELEASE_BUDGET_ACTIVITY = "payments.release_budget"

# Event types (version 1) on the application-events topic, keyed by application id.
BUDGET_COMMITTED = "budget.committed"
BUDGET_REFUSED = "budget.refused"
BUDGET_RELEASED = "budget.released"

RefusalReason = Literal["budget_exhausted", "currency_mismatch"]
CommitmentStatus = Literal["committed", "released"]

FundingLineCode = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9-]{1,39}$")]
BudgetYear = Annotated[int, Field(ge=2000, le=2100)]
Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300, pattern=r"^[^\x00]*$"),
]

# Stored as bigint minor units; a trillion in major units leaves ample headroom below its max.
_MAX_MAJOR = Decimal(1_000_000_000_000)


def _whole_minor_units(money: Money) -> Money:
    # Money.amount is a bare Decimal: a sub-cent or non-finite amount cannot be stored exactly.
    amount = money.amount
    if not amount.is_finite() or not Decimal(0) <= amount < _MAX_MAJOR:
        raise ValueError(f"amount must be between 0 and {_MAX_MAJOR}")
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError("amount must have at most two decimal places")
    return money


def _positive(money: Money) -> Money:
    if money.amount <= 0:
        raise ValueError("amount must be positive")
    return money


# A budget may be zero (a line without money this year); a commitment is always positive.
BudgetMoney = Annotated[Money, AfterValidator(_whole_minor_units)]
PositiveMoney = Annotated[Money, AfterValidator(_whole_minor_units), AfterValidator(_positive)]


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- activities -----------------------------------------------------------------------


class CommitBudgetRequest(_Contract):
    """Commit an approved grant's money from the line's budget for the year."""

    application_id: UUID
    funding_line: FundingLineCode
    year: BudgetYear
    amount: PositiveMoney
    # The line's annual budget from the caller's configuration: opens the ledger on first use.
    # Once a ledger is open its stored budget stands (a changed configuration does not
    # silently move it under commitments already made).
    budget: BudgetMoney
    correlation_id: UUID | None = None


class CommitBudgetResult(_Contract):
    """`refused` is a normal outcome for the decider, not an error."""

    application_id: UUID
    funding_line: str
    year: int
    outcome: Literal["committed", "refused"]
    reason: RefusalReason | None = None
    # The amount committed (for a repeated call: the amount committed the first time), or
    # the amount that was refused.
    amount: Money
    # What the ledger can still commit after this call, in the ledger's currency.
    available: Money
    # True when the application already had its commitment: nothing new was committed.
    repeated: bool = False
    commitment_status: CommitmentStatus | None = None


class ReleaseBudgetRequest(_Contract):
    """Give a commitment's unpaid money back to the budget (e.g. the grant lapsed)."""

    application_id: UUID
    reason: Reason
    correlation_id: UUID | None = None


class ReleaseBudgetResult(_Contract):
    application_id: UUID
    # `not_committed`: the application has no commitment (nothing to give back).
    outcome: Literal["released", "already_released", "not_committed"]
    funding_line: str | None = None
    year: int | None = None
    # Returned to the budget (by this call, or by the earlier one that released it).
    amount: Money | None = None
    available: Money | None = None


# --- event payloads -------------------------------------------------------------------


class BudgetCommitted(_Contract):
    application_id: UUID
    funding_line: str
    year: int
    amount: Money
    available: Money
    committed_at: datetime


class BudgetRefused(_Contract):
    application_id: UUID
    funding_line: str
    year: int
    reason: RefusalReason
    amount: Money
    available: Money
    refused_at: datetime


class BudgetReleased(_Contract):
    application_id: UUID
    funding_line: str
    year: int
    reason: str
    amount: Money
    available: Money
    released_at: datetime


# --- HTTP -----------------------------------------------------------------------------


class LedgerView(_Contract):
    """A ledger's totals as exact decimal strings in its currency. `committed` and
    `released` are cumulative; available = budget - committed + released."""

    funding_line: str
    year: int
    currency: Currency
    budget: Decimal
    committed: Decimal
    disbursed: Decimal
    released: Decimal
    available: Decimal
