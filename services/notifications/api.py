"""Notifications' HTTP API: what was (or will be) sent, for operators."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import FastAPI, Query, Request
from pydantic import BaseModel

from services.notifications.repository import Repository
from shared.auth import Caller
from shared.http import Guard, create_app
from shared.runtime import ServiceContext


class DeliveryView(BaseModel):
    """One message to one applicant. No addresses or numbers: operators see the state."""

    id: int
    application_id: UUID
    milestone: str
    channel: str
    language: str
    # pending (waiting for its next attempt), sending (claimed by a sender), sent, failed
    status: str
    attempts: int
    # When a pending delivery is tried next; null once sent or failed.
    next_attempt_at: datetime | None
    # Why the last attempt failed (for failed: why it was given up).
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def build_api(ctx: ServiceContext) -> FastAPI:
    app = create_app(ctx, "Barents Grants — notifications")
    repo = Repository(ctx.pool)
    guard = Guard(ctx)

    @app.get("/deliveries", response_model=list[DeliveryView])
    async def deliveries(
        request: Request,
        caller: Caller,
        application_id: UUID | None = None,
        status: Literal["pending", "sending", "sent", "failed"] | None = None,
        channel: Literal["email", "sms"] | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[DeliveryView]:
        """Deliveries with status, attempts and the last error: for operators."""
        await guard.require(request, caller, "operator")
        rows = await repo.list(
            application_id=application_id, status=status, channel=channel, limit=limit
        )
        return [DeliveryView(**vars(r)) for r in rows]

    return app
