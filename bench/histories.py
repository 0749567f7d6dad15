"""What one application costs Temporal: the history events of its workflows (lifecycle, review
and grant children) by kind. Every workflow task, activity, timer and signal is a write to
Temporal's persistence, so this is the work the server does per application."""

from __future__ import annotations

from collections import Counter
from typing import Any
from uuid import UUID

from temporalio.client import Client
from temporalio.service import RPCError

from shared.temporal import grant_workflow_id, lifecycle_workflow_id, review_workflow_id

_KINDS = {
    "workflow_task_scheduled_event_attributes": "workflow tasks",
    "activity_task_scheduled_event_attributes": "activities",
    "timer_started_event_attributes": "timers",
    "workflow_execution_signaled_event_attributes": "signals received",
    "signal_external_workflow_execution_initiated_event_attributes": "signals sent",
    "start_child_workflow_execution_initiated_event_attributes": "child workflows",
    "upsert_workflow_search_attributes_event_attributes": "search attribute upserts",
    "workflow_execution_update_accepted_event_attributes": "updates",
}


async def per_application(client: Client, application_id: str | None) -> dict[str, Any]:
    if application_id is None:
        return {}
    app = UUID(application_id)
    out: dict[str, Any] = {"application_id": application_id, "workflows": {}}
    totals: Counter[str] = Counter()
    events_total = 0
    for workflow_id in (
        lifecycle_workflow_id(app),
        review_workflow_id(app),
        grant_workflow_id(app),
    ):
        try:
            events = [
                e async for e in client.get_workflow_handle(workflow_id).fetch_history_events()
            ]
        except RPCError:
            continue
        kinds: Counter[str] = Counter()
        for event in events:
            kind = _KINDS.get(event.WhichOneof("attributes") or "")
            if kind:
                kinds[kind] += 1
        out["workflows"][workflow_id.split("-", 1)[0]] = {"events": len(events), **kinds}
        totals.update(kinds)
        events_total += len(events)
    out["total"] = {"events": events_total, **totals}
    return out
