"""Notifications' HTTP API: what was (or will be) sent, for operators."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import FastAPI, Query
from pydantic import BaseModel

from services.notifications.repository import Repository
from shared.http import create_app
from shared.runtime import ServiceContext


class DeliveryView(BaseModel):
    id: int
    application_id: UUID
    milestone: str
    channel: str
    language: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def build_api(ctx: ServiceContext) -> FastAPI:
    app = create_app(ctx, "Barents Grants — notifications")
    repo = Repository(ctx.pool)

    @app.get("/deliveries", response_model=list[DeliveryView])
    async def deliveries(
        application_id: UUID | None = None,
        status: Literal["pending", "sent", "failed"] | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[DeliveryView]:
        rows = await repo.list(application_id=application_id, status=status, limit=limit)
        return [DeliveryView(**vars(r)) for r in rows]

    return app
