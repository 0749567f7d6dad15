"""Intake's Kafka side: applications and answers published by other systems, starting the
lifecycle workflow for every stored application (from its own outbox-relayed event), and
the timeline of every application's events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from uuid import UUID

from pydantic import BaseModel

from services.intake.lifecycle import start_lifecycle
from services.intake.register import HANDLED as REGISTER_EVENTS
from services.intake.repository import (
    ExternalRefConflict,
    RegisterRepository,
    Repository,
    TimelineRepository,
)
from shared.actions import ActionRefused, NoSuchWorkflow, perform
from shared.auth import kafka_caller, kafka_require
from shared.contracts.grant import UPDATE_ACCEPT_AGREEMENT, UPDATE_SUBMIT_REPORT
from shared.contracts.review import UPDATE_ANSWER_INFORMATION
from shared.events import (
    AGREEMENT_ACCEPT,
    APPLICATION_SUBMIT,
    APPLICATION_SUBMITTED,
    INFORMATION_ANSWER,
    REPORT_SUBMIT,
    AgreementAcceptance,
    ApplicationSubmitRequested,
    ApplicationSubmitted,
    Envelope,
    InformationAnswerSubmitted,
    ReportSubmission,
)
from shared.kafka import BadMessage, subscribe
from shared.runtime import ServiceContext
from shared.temporal import grant_workflow_id, review_workflow_id
from shared.topics import APPLICATION_EVENTS, APPLICATIONS_INBOUND

log = logging.getLogger(__name__)


def register_subscribers(ctx: ServiceContext) -> None:
    repo = Repository(ctx.pool)
    timeline = TimelineRepository(ctx.pool)

    async def on_submit(envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, ApplicationSubmitRequested)
        caller = kafka_caller("applicant", "operator")
        if caller.role == "applicant":
            kafka_require(
                caller.org == payload.document.applicant.org_number,
                "applicant of another organisation",
            )
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

    async def applicant_action(
        envelope: Envelope, workflow_id: Callable[[UUID], str], update: str, action: BaseModel
    ) -> None:
        """The applicant's action from another system: the same update as over HTTP."""
        if envelope.application_id is None:
            raise BadMessage(f"{envelope.type} must name its application_id")
        caller = kafka_caller("applicant")
        stored = await repo.get(envelope.application_id)
        if stored is None:
            raise BadMessage(f"{envelope.type} for an unknown application")
        kafka_require(
            caller.org == stored.document.applicant.org_number,
            "applicant of another organisation",
        )
        try:
            await perform(
                ctx.temporal, workflow_id(envelope.application_id), update, action, BaseModel
            )
        except (ActionRefused, NoSuchWorkflow) as exc:
            raise BadMessage(f"{envelope.type} refused: {exc}") from exc

    async def on_answer(envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, InformationAnswerSubmitted)
        await applicant_action(
            envelope, review_workflow_id, UPDATE_ANSWER_INFORMATION, payload.answer
        )

    async def on_acceptance(envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, AgreementAcceptance)
        await applicant_action(
            envelope, grant_workflow_id, UPDATE_ACCEPT_AGREEMENT, payload.acceptance
        )

    async def on_report(envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, ReportSubmission)
        await applicant_action(envelope, grant_workflow_id, UPDATE_SUBMIT_REPORT, payload.report)

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
        audit_pool=ctx.pool,
        handles={
            APPLICATION_SUBMIT: on_submit,
            INFORMATION_ANSWER: on_answer,
            AGREEMENT_ACCEPT: on_acceptance,
            REPORT_SUBMIT: on_report,
        },
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

    register = RegisterRepository(ctx.pool)

    async def on_register_event(envelope: Envelope, payload: BaseModel) -> None:
        """The public project register: fold the event into the project's entry (once)."""
        if await register.apply(envelope, payload):
            log.info("register: %s applied to %s", envelope.type, envelope.application_id)

    subscribe(
        ctx.broker,
        ctx.settings,
        topic=APPLICATION_EVENTS,
        group_id="intake.register",
        handles={event_type: on_register_event for event_type in REGISTER_EVENTS},
    )
