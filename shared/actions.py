"""Human actions on a running workflow (Temporal updates), as the HTTP APIs and the Kafka
command consumers perform them: one place that turns Temporal's answers into clear outcomes."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

R = TypeVar("R", bound=BaseModel)


class ActionRefused(Exception):
    """The workflow refused the action (its validator or handler said why)."""


class NoSuchWorkflow(Exception):
    """No running workflow takes actions for this application."""


async def perform(client: Client, workflow_id: str, update: str, arg: Any, result: type[R]) -> R:
    handle = client.get_workflow_handle(workflow_id)
    try:
        outcome: R = await handle.execute_update(update, arg, result_type=result)
        return outcome
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise ActionRefused(getattr(cause, "message", None) or str(cause)) from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NoSuchWorkflow(f"no workflow {workflow_id} is open for actions") from exc
        if exc.status == RPCStatusCode.FAILED_PRECONDITION:
            raise ActionRefused("the application is closed") from exc
        raise
