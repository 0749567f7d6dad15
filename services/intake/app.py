"""Intake's Kafka side: applications and answers published by other systems, starting the
lifecycle workflow for every stored application (from its own outbox-relayed event), and
the timeline of every application's events."""

from __future__ import annotations

import logging

from pydantic import BaseModel

from services.intake.lifecycle import start_lifecycle
from services.intake.repository import ExternalRefConflict, Repository, TimelineRepository
from shared.actions import ActionRefused, NoSuchWorkflow, perform
from shared.contracts.review import UPDATE_ANSWER_INFORMATION, ActionResult
from shared.events import (
    APPLICATION_SUBMIT,
    APPLICATION_SUBMITTED,
    INFORMATION_ANSWER,
    ApplicationSubmitRequested,
    ApplicationSubmitted,
    Envelope,
    InformationAnswerSubmitted,
)
from shared.kafka import BadMessage, subscribe
from shared.runtime import ServiceContext
from shared.temporal import review_workflow_id
from shared.topics import APPLICATION_EVENTS, APPLICATIONS_INBOUND

log = logging.getLogger(__name__)


def register_subscribers(ctx: ServiceContext) -> None:
    repo = Repository(ctx.pool)
    timeline = TimelineRepository(ctx.pool)

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

    async def on_answer(envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, InformationAnswerSubmitted)
        if envelope.application_id is None:
            raise BadMessage("an information answer must name its application_id")
        try:
            await perform(
                ctx.temporal,
                review_workflow_id(envelope.application_id),
                UPDATE_ANSWER_INFORMATION,
                payload.answer,
                ActionResult,
            )
        except (ActionRefused, NoSuchWorkflow) as exc:
            raise BadMessage(f"answer refused: {exc}") from exc

    async def on_submitted(envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, ApplicationSubmitted)
        started = await start_lifecycle(ctx.temporal, payload, envelope.correlation_id)
        log.info(
            "application %s: lifecycle %s",
            payload.application_id,
            "started" if started else "already running",
        )

    async def on_any_event(envelope: Envelope, payload: BaseModel) -> None:
        await timeline.record(envelope)

    subscribe(
        ctx.broker,
        ctx.settings,
        topic=APPLICATIONS_INBOUND,
        group_id="intake.inbound",
        handles={APPLICATION_SUBMIT: on_submit, INFORMATION_ANSWER: on_answer},
    )
    subscribe(
        ctx.broker,
        ctx.settings,
        topic=APPLICATION_EVENTS,
        group_id="intake.lifecycle",
        handles={APPLICATION_SUBMITTED: on_submitted},
    )
    subscribe(
        ctx.broker,
        ctx.settings,
        topic=APPLICATION_EVENTS,
        group_id="intake.timeline",
        handles={"*": on_any_event},
    )
