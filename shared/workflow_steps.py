"""How workflows run their short steps and report progress with few round-trips to Temporal.

- `step`: an activity of the worker's own service that is a short, idempotent read or write in
  its own schema (publish through the outbox, screen, assign, plan) runs as a *local* activity
  in the workflow's own course: a marker in the history instead of scheduled/started/completed
  events and a workflow task each. If the worker dies mid-task the step runs again, which is
  why each one is idempotent. A step that carries out a path a timer chose while a human
  action could still race it (releasing a lapsed grant's money, withdrawing an unanswered
  application) passes `local=False`: were the worker to die mid-task, the retried task would
  take the action first and go the other way, with the local step's effect already done.
- `Progress`: status reports to the parent are signalled without waiting for each delivery;
  `drain()` before the workflow ends keeps them ahead of its completion in the parent.

Both are behind the `PATCH` marker, so workflows started before them replay unchanged."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

PATCH = "local-steps-and-unawaited-progress"

STEP_TIMEOUT = timedelta(seconds=30)
# Steps talk to Postgres: retried while it is away (backing off to 30 s between attempts).
STEP_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=0)


def _fast() -> bool:
    return workflow.patched(PATCH)


async def step(
    activity: str,
    arg: Any,
    *,
    result_type: type | None = None,
    start_to_close: timedelta = STEP_TIMEOUT,
    retry: RetryPolicy = STEP_RETRY,
    local: bool = True,
) -> Any:
    """Run one of this worker's own activities: locally once patched, as before otherwise.
    While a human action (an update) is being handled it stays a scheduled activity, as the
    action's own steps are: a local step would overtake them (publishing, say,
    `decision.board_scheduled` before the `review.submitted` that led to it)."""
    if local and _fast() and workflow.all_handlers_finished():
        return await workflow.execute_local_activity(
            activity,
            arg,
            result_type=result_type,
            start_to_close_timeout=start_to_close,
            retry_policy=retry,
        )
    return await workflow.execute_activity(
        activity,
        arg,
        result_type=result_type,
        start_to_close_timeout=start_to_close,
        retry_policy=retry,
    )


class Progress:
    """Progress signals to the parent workflow, sent in order, awaited only by `drain()`."""

    def __init__(self) -> None:
        self._pending: list[asyncio.Task[None]] = []

    async def signal(self, name: str, report: Any) -> None:
        parent = workflow.info().parent
        if parent is None:
            return
        handle = workflow.get_external_workflow_handle(parent.workflow_id)
        if not _fast():
            await handle.signal(name, report)
            return
        # Commands go out in the order they are issued; the parent orders reports by `seq`.
        self._pending = [t for t in self._pending if not t.done()]
        self._pending.append(asyncio.ensure_future(handle.signal(name, report)))

    async def drain(self) -> None:
        """Wait until every report was delivered (call before completing or continuing as
        new, so the parent has them before it hears the outcome)."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
