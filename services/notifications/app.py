"""Notifications' Kafka side: lifecycle events become deliveries to send."""

from __future__ import annotations

import logging

from pydantic import BaseModel

from services.notifications.repository import Repository
from shared.events import APPLICATION_SUBMITTED, ApplicationSubmitted, Envelope
from shared.kafka import subscribe
from shared.runtime import ServiceContext
from shared.topics import APPLICATION_EVENTS

log = logging.getLogger(__name__)

CONSUMER = "notifications.milestones"


def register_subscribers(ctx: ServiceContext) -> None:
    repo = Repository(ctx.pool)

    async def on_submitted(envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, ApplicationSubmitted)
        # "Received": an acknowledgement by e-mail; nobody must act yet, so no SMS.
        recorded = await repo.record(
            consumer=CONSUMER,
            event_id=envelope.event_id,
            application_id=payload.application_id,
            contact=payload.document.applicant.contact,
            milestone="received",
            channels=["email"],
        )
        log.info("application %s: %d acknowledgement(s) recorded", payload.application_id, recorded)

    subscribe(
        ctx.broker,
        ctx.settings,
        topic=APPLICATION_EVENTS,
        group_id=CONSUMER,
        handles={APPLICATION_SUBMITTED: on_submitted},
    )
