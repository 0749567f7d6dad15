"""The application lifecycle workflow: one per application, id derived from the application id.

It carries the application from submission on; each later stage (review, decision, agreement,
payments, reporting) runs as children and activities on the owning service's task queue."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from shared.contracts.lifecycle import (
        LIFECYCLE_WORKFLOW,
        ApplicationStatus,
        LifecycleInput,
        LifecycleState,
    )
    from shared.temporal import SA_STATUS

TERMINAL: frozenset[str] = frozenset({"ineligible", "withdrawn", "rejected"})


@workflow.defn(name=LIFECYCLE_WORKFLOW)
class ApplicationLifecycle:
    def __init__(self) -> None:
        self._status: ApplicationStatus = "submitted"
        self._application_id: str = ""

    @workflow.run
    async def run(self, inp: LifecycleInput) -> LifecycleState:
        # The starter sets every search attribute at start; only the status changes here.
        self._set_status("submitted")
        # Review and decision follow (issue 3); until then the lifecycle waits, durably.
        await workflow.wait_condition(lambda: self._status in TERMINAL)
        return LifecycleState(application_id=inp.application_id, status=self._status)

    def _set_status(self, status: ApplicationStatus) -> None:
        self._status = status
        workflow.upsert_search_attributes([SA_STATUS.value_set(status)])

    @workflow.query
    def status(self) -> ApplicationStatus:
        return self._status


WORKFLOWS: list[type] = [ApplicationLifecycle]
