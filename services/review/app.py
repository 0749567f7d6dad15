"""Review's Kafka side: advisors' and deciders' actions published by other systems (an
advisor portal) on the review commands topic, held to the same validation as the HTTP API.
A refused action is dead-lettered with the workflow's reason."""

from __future__ import annotations

from pydantic import BaseModel

from shared.actions import ActionRefused, NoSuchWorkflow, perform
from shared.auth import DECIDERS, kafka_caller, kafka_require
from shared.contracts.review import (
    UPDATE_DECIDE,
    UPDATE_REQUEST_INFORMATION,
    UPDATE_SUBMIT_REVIEW,
    ActionResult,
    SubmitReview,
)
from shared.events import (
    DECISION_DECIDE,
    REVIEW_REQUEST_INFORMATION,
    REVIEW_SUBMIT,
    DecisionCommand,
    Envelope,
    ReviewCommand,
)
from shared.kafka import BadMessage, subscribe
from shared.runtime import ServiceContext
from shared.temporal import review_workflow_id
from shared.topics import REVIEW_COMMANDS


def register_subscribers(ctx: ServiceContext) -> None:
    async def act(envelope: Envelope, update: str, action: BaseModel) -> None:
        if envelope.application_id is None:
            raise BadMessage(f"{envelope.type} must name its application_id")
        try:
            await perform(
                ctx.temporal,
                review_workflow_id(envelope.application_id),
                update,
                action,
                ActionResult,
            )
        except (ActionRefused, NoSuchWorkflow) as exc:
            raise BadMessage(f"{envelope.type} refused: {exc}") from exc

    async def on_review_command(envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, ReviewCommand)
        caller = kafka_caller("advisor")
        kafka_require(caller.sub == payload.action.advisor, "advisor acting as another")
        expected = SubmitReview if envelope.type == REVIEW_SUBMIT else None
        if expected is not None and not isinstance(payload.action, expected):
            raise BadMessage(f"{envelope.type} carries a {type(payload.action).__name__}")
        update = (
            UPDATE_SUBMIT_REVIEW if envelope.type == REVIEW_SUBMIT else UPDATE_REQUEST_INFORMATION
        )
        await act(envelope, update, payload.action)

    async def on_decision(envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, DecisionCommand)
        caller = kafka_caller(*DECIDERS)
        kafka_require(
            caller.role == payload.action.role and caller.sub == payload.action.decider,
            "decider acting in another's name or role",
        )
        await act(envelope, UPDATE_DECIDE, payload.action)

    subscribe(
        ctx.broker,
        ctx.settings,
        topic=REVIEW_COMMANDS,
        group_id="review.commands",
        audit_pool=ctx.pool,
        handles={
            REVIEW_SUBMIT: on_review_command,
            REVIEW_REQUEST_INFORMATION: on_review_command,
            DECISION_DECIDE: on_decision,
        },
    )
