"""Starting the lifecycle workflow for a stored application: exactly once per application."""

from __future__ import annotations

from uuid import UUID

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from shared import observability
from shared.contracts.lifecycle import LIFECYCLE_WORKFLOW, LifecycleInput
from shared.events import ApplicationSubmitted
from shared.temporal import (
    SA_COUNTRY,
    SA_FUNDING_LINE,
    SA_FUNDING_TYPE,
    SA_REQUESTED,
    SA_STATUS,
    TASK_QUEUE_INTAKE,
    lifecycle_workflow_id,
)


def summary(event: ApplicationSubmitted) -> str:
    """One line for the Temporal UI: title, applicant organisation, funding line, amount."""
    doc = event.document
    return (
        f"{doc.title} — {doc.applicant.name} — {doc.funding_line} — "
        f"{doc.budget.requested} {doc.budget.currency}"
    )


async def start_lifecycle(
    client: Client, event: ApplicationSubmitted, correlation_id: UUID
) -> bool:
    """Start the application's workflow; False when it already exists (a redelivered event)."""
    doc = event.document
    inp = LifecycleInput(
        application_id=event.application_id,
        correlation_id=correlation_id,
        document=doc,
        external_ref=doc.external_ref,
        funding_line=doc.funding_line,
        funding_type=doc.funding_type,
        applicant_country=doc.applicant.country,
        requested_amount=doc.budget.requested,
        currency=doc.budget.currency,
    )
    try:
        await client.start_workflow(
            LIFECYCLE_WORKFLOW,
            inp,
            id=lifecycle_workflow_id(event.application_id),
            task_queue=TASK_QUEUE_INTAKE,
            # The id is the application's: a second start never makes a second workflow,
            # not even after the first one closed.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            # What operators read in the Temporal UI's list: a human summary (no contact data).
            memo={"summary": summary(event)},
            static_summary=summary(event),
            static_details=(
                f"**{doc.title}**\n\n{doc.applicant.name} ({doc.applicant.country}), "
                f"{doc.funding_line} {doc.funding_type}, requested {doc.budget.requested} "
                f"{doc.budget.currency} of {doc.budget.total} {doc.budget.currency}, "
                f"{doc.period.start} - {doc.period.end}. Reference {doc.external_ref}."
            ),
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SA_STATUS, "submitted"),
                    SearchAttributePair(SA_FUNDING_LINE, doc.funding_line),
                    SearchAttributePair(SA_FUNDING_TYPE, doc.funding_type),
                    SearchAttributePair(SA_COUNTRY, doc.applicant.country),
                    # A Double for searching ("RequestedAmount > 100000"); money stays Decimal.
                    SearchAttributePair(SA_REQUESTED, float(doc.budget.requested)),
                ]
            ),
        )
    except WorkflowAlreadyStartedError:
        observability.workflow_started(LIFECYCLE_WORKFLOW, started=False)
        return False
    observability.workflow_started(LIFECYCLE_WORKFLOW, started=True)
    return True
