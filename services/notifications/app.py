"""Notifications' Kafka side: lifecycle events become deliveries to send.

The consumer only records (status pending, with the facts to render), in one transaction
with the inbox claim; the sender loop (sender.py) sends. So a slow or absent mail server
never holds up consumption, and a redelivered event records nothing new."""

from __future__ import annotations

import logging

from pydantic import BaseModel

from services.notifications.milestones import MILESTONE_EVENTS, milestone_for
from services.notifications.repository import ApplicationInfo, Repository
from services.notifications.sender import Clock, utc_now
from shared.events import ApplicationSubmitted, Envelope
from shared.kafka import subscribe
from shared.runtime import ServiceContext
from shared.topics import APPLICATION_EVENTS

log = logging.getLogger(__name__)

CONSUMER = "notifications.milestones"


def register_subscribers(ctx: ServiceContext, clock: Clock = utc_now) -> None:
    repo = Repository(ctx.pool)

    async def on_event(envelope: Envelope, payload: BaseModel) -> None:
        milestone = milestone_for(envelope, payload)
        if milestone is None:
            return  # e.g. an eligible screening: nothing to tell the applicant yet
        application_id = getattr(payload, "application_id", None) or envelope.application_id
        if application_id is None:
            raise ValueError(f"{envelope.type} names no application")
        contact = application = None
        if isinstance(payload, ApplicationSubmitted):
            # The contact comes with the submission; later events name only the application.
            contact = payload.document.applicant.contact
            application = ApplicationInfo(
                external_ref=payload.document.external_ref, title=payload.document.title
            )
        recorded = await repo.record(
            consumer=CONSUMER,
            event_id=envelope.event_id,
            application_id=application_id,
            contact=contact,
            application=application,
            milestone=milestone,
            now=clock(),
        )
        log.info(
            "application %s: %s: %d delivery(ies) recorded", application_id, milestone.key, recorded
        )

    subscribe(
        ctx.broker,
        ctx.settings,
        topic=APPLICATION_EVENTS,
        group_id=CONSUMER,
        handles={event_type: on_event for event_type in MILESTONE_EVENTS},
    )
