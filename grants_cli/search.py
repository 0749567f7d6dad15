"""Finding applications by status, funding line and advisor in Temporal's visibility store:
every application is one `ApplicationLifecycle` workflow whose search attributes carry its
status, line, advisor and next deadline (never personal data)."""

from __future__ import annotations

from typing import Any

from grants_cli.client import STACK_HINT, CliError, CliSettings
from shared import temporal


async def search(settings: CliSettings, query: str, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` applications matching the visibility `query`, the newest first."""
    try:
        client = await temporal.connect(settings, attempts=1)
    except Exception as exc:
        raise CliError(
            f"cannot reach Temporal at {settings.temporal_address}: {STACK_HINT}"
        ) from exc
    rows: list[dict[str, Any]] = []
    try:
        async for execution in client.list_workflows(query, limit=limit):
            attrs = execution.typed_search_attributes
            deadline = attrs.get(temporal.SA_NEXT_DEADLINE)
            requested = attrs.get(temporal.SA_REQUESTED)
            rows.append(
                {
                    "application_id": execution.id.removeprefix("application-"),
                    "status": attrs.get(temporal.SA_STATUS),
                    "funding_line": attrs.get(temporal.SA_FUNDING_LINE),
                    "funding_type": attrs.get(temporal.SA_FUNDING_TYPE),
                    "advisor": attrs.get(temporal.SA_ADVISOR),
                    "next_deadline": deadline.isoformat() if deadline else None,
                    "requested": requested,
                    "started_at": execution.start_time.isoformat(),
                    "running": execution.close_time is None,
                }
            )
            if len(rows) >= limit:
                break
    except Exception as exc:
        # A malformed query comes back from the server as an RPC error naming the problem.
        message = getattr(exc, "message", None) or str(exc)
        raise CliError(f"Temporal refused the search ({query}): {message}") from exc
    return rows


def from_assignments(
    assignments: list[dict[str, Any]], line: str | None, limit: int
) -> list[dict[str, Any]]:
    """The review service's read model (`GET /assignments`) in the same shape as `search`."""
    rows = []
    for a in assignments:
        if line is not None and a.get("funding_line") != line:
            continue
        requested = a.get("requested") or {}
        rows.append(
            {
                "application_id": a.get("application_id"),
                "status": a.get("status"),
                "funding_line": a.get("funding_line"),
                "funding_type": None,
                "advisor": a.get("advisor"),
                "next_deadline": a.get("next_deadline"),
                "requested": requested.get("amount"),
                "started_at": a.get("assigned_at"),
                "running": None,
            }
        )
    return rows[:limit]
