"""Intake's Kafka side: applications published by other systems, and starting the lifecycle
workflow for every stored application (from its own outbox-relayed event)."""

from __future__ import annotations

import logging

from pydantic import BaseModel

from services.intake.lifecycle import start_lifecycle
from services.intake.repository import ExternalRefConflict, Repository
from shared.events import (
    APPLICATION_SUBMIT,
    APPLICATION_SUBMITTED,
    ApplicationSubmitRequested,
    ApplicationSubmitted,
    Envelope,
)
from shared.kafka import BadMessage, subscribe
from shared.runtime import ServiceContext
from shared.topics import APPLICATION_EVENTS, APPLICATIONS_INBOUND

log = logging.getLogger(__name__)


def register_subscribers(ctx: ServiceContext) -> None:
    repo = Repository(ctx.pool)

    async def on_submit(envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, ApplicationSubmitRequested)
        try:
            result = await repo.submit(
                payload.document,
                channel="kafka",
                source=envelope.source,
                correlation_id=envelope.correlation_id,
                received_at=envelope.occurred_at,
                inbound_event_id=envelope.event_id,
            )
        except ExternalRefConflict as exc:
            raise BadMessage(str(exc)) from exc
        log.info(
            "inbound event %s -> application %s (new: %s)",
            envelope.event_id,
            result.application_id,
            result.created,
        )

    async def on_submitted(envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, ApplicationSubmitted)
        started = await start_lifecycle(ctx.temporal, payload, envelope.correlation_id)
        log.info(
            "application %s: lifecycle %s",
            payload.application_id,
            "started" if started else "already running",
        )

    subscribe(
        ctx.broker,
        ctx.settings,
        topic=APPLICATIONS_INBOUND,
        group_id="intake.inbound",
        handles={APPLICATION_SUBMIT: on_submit},
    )
    subscribe(
        ctx.broker,
        ctx.settings,
        topic=APPLICATION_EVENTS,
        group_id="intake.lifecycle",
        handles={APPLICATION_SUBMITTED: on_submitted},
    )
