"""Payments' activities on the `payments` task queue: budget commitments for other services'
workflows (the review service's decision calls them by name). An exhausted budget is a
normal result the decider acts on, never an exception."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from temporalio import activity

from services.payments.repository import Repository
from shared.contracts.ledger import (
    COMMIT_BUDGET_ACTIVITY,
    RELEASE_BUDGET_ACTIVITY,
    CommitBudgetRequest,
    CommitBudgetResult,
    ReleaseBudgetRequest,
    ReleaseBudgetResult,
)
from shared.runtime import ServiceContext


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


def build_activities(ctx: ServiceContext) -> Sequence[Callable[..., Any]]:
    ledger = LedgerActivities(Repository(ctx.pool))
    return [ledger.commit_budget, ledger.release_budget]
