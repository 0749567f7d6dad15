"""The application lifecycle workflow: one per application, id derived from the application id.

It owns what operators search by (the search attributes) and runs each stage as a child on
the owning service's task queue: review and decision on `review`, then (later stages)
agreement and payments. Children report progress by signal; the lifecycle mirrors it."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    # pydantic imports it lazily when validating e-mail addresses; load it outside the
    # sandbox once instead of on every run.
    import email_validator  # noqa: F401

    from shared.contracts.grant import (
        GRANT_WORKFLOW,
        SIGNAL_GRANT_PROGRESS,
        GrantInput,
        GrantOutcome,
    )
    from shared.contracts.lifecycle import (
        LIFECYCLE_WORKFLOW,
        ApplicationStatus,
        LifecycleInput,
        LifecycleState,
    )
    from shared.contracts.review import (
        REVIEW_WORKFLOW,
        SIGNAL_REVIEW_PROGRESS,
        ReviewInput,
        ReviewOutcome,
        ReviewProgress,
    )
    from shared.temporal import (
        SA_ADVISOR,
        SA_NEXT_DEADLINE,
        SA_STATUS,
        TASK_QUEUE_PAYMENTS,
        TASK_QUEUE_REVIEW,
        grant_workflow_id,
        review_workflow_id,
    )


@workflow.defn(name=LIFECYCLE_WORKFLOW)
class ApplicationLifecycle:
    def __init__(self) -> None:
        self._status: ApplicationStatus = "submitted"
        self._advisor: str | None = None
        # The latest progress report applied, per stage (signals may arrive out of order).
        self._applied: dict[str, int] = {}

    @workflow.run
    async def run(self, inp: LifecycleInput) -> LifecycleState:
        # The starter set every search attribute at start; from here on they follow the stages.
        outcome: ReviewOutcome = await workflow.execute_child_workflow(
            REVIEW_WORKFLOW,
            ReviewInput(
                application_id=inp.application_id,
                correlation_id=inp.correlation_id,
                document=inp.document,
            ),
            id=review_workflow_id(inp.application_id),
            task_queue=TASK_QUEUE_REVIEW,
            result_type=ReviewOutcome,
        )
        self._apply(ReviewProgress(status=outcome.status, advisor=outcome.advisor))
        if outcome.status == "approved":
            assert outcome.amount is not None and outcome.advisor is not None
            # Agreement, payments, reporting and closure: the payments service's stage.
            grant: GrantOutcome = await workflow.execute_child_workflow(
                GRANT_WORKFLOW,
                GrantInput(
                    application_id=inp.application_id,
                    correlation_id=inp.correlation_id,
                    document=inp.document,
                    grant=outcome.amount,
                    advisor=outcome.advisor,
                    decided_year=workflow.now().year,
                ),
                id=grant_workflow_id(inp.application_id),
                task_queue=TASK_QUEUE_PAYMENTS,
                result_type=GrantOutcome,
            )
            self._apply(ReviewProgress(status=grant.status))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return LifecycleState(application_id=inp.application_id, status=self._status)

    @workflow.signal(name=SIGNAL_REVIEW_PROGRESS)
    def review_progress(self, progress: ReviewProgress) -> None:
        if self._in_order("review", progress):
            self._apply(progress)

    @workflow.signal(name=SIGNAL_GRANT_PROGRESS)
    def grant_progress(self, progress: ReviewProgress) -> None:
        if self._in_order("grant", progress):
            self._apply(progress)

    def _in_order(self, stage: str, progress: ReviewProgress) -> bool:
        """False for a report older than one already applied: a stage's handlers report
        concurrently, and Temporal may deliver their signals in either order."""
        if progress.seq is None:
            return True
        if progress.seq <= self._applied.get(stage, 0):
            return False
        self._applied[stage] = progress.seq
        return True

    def _apply(self, progress: ReviewProgress) -> None:
        self._status = progress.status
        updates: list[SearchAttributeUpdate[Any]] = [SA_STATUS.value_set(progress.status)]
        if progress.advisor and progress.advisor != self._advisor:
            self._advisor = progress.advisor
            updates.append(SA_ADVISOR.value_set(progress.advisor))
        updates.append(
            SA_NEXT_DEADLINE.value_set(progress.next_deadline)
            if progress.next_deadline
            else SA_NEXT_DEADLINE.value_unset()
        )
        workflow.upsert_search_attributes(updates)

    @workflow.query
    def status(self) -> ApplicationStatus:
        return self._status


WORKFLOWS: list[type] = [ApplicationLifecycle]
