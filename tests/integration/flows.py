"""Driving applications through the real stack the way users do: over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from shared.auth import Role
from shared.config import Settings
from tests.conftest import load_sample, service_url
from tests.tokens import OPERATOR, bearer, kafka_auth
from tests.waiting import eventually

# The user ids of the decision makers in the configuration's roster.
DECIDERS: dict[Role, str] = {
    "head_of_section": "ingrid.solberg",
    "director": "erik.haugen",
    "board": "board.chair",
}

SCORES = {
    "cooperation": 5,
    "relevance": 4,
    "feasibility": 4,
    "budget_realism": 3,
    "people_to_people": 5,
}


def fresh(name: str, **changes: Any) -> dict[str, Any]:
    doc = load_sample(name)
    doc["external_ref"] = f"test-{uuid.uuid4()}"
    doc.update(changes)
    return doc


class Users:
    """HTTP clients for intake and review, with helpers for the steps of a lifecycle."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # An operator submits and reads; every action is taken with the actor's own token.
        self.intake = httpx.AsyncClient(
            base_url=service_url(settings, "intake"), timeout=30, headers=OPERATOR
        )
        self.review = httpx.AsyncClient(
            base_url=service_url(settings, "review"), timeout=30, headers=OPERATOR
        )

    async def close(self) -> None:
        await self.intake.aclose()
        await self.review.aclose()

    async def submit(self, doc: dict[str, Any]) -> str:
        response = await self.intake.post("/applications", json=doc)
        assert response.status_code == 201, response.text
        app_id: str = response.json()["application_id"]
        return app_id

    async def state(self, app_id: str) -> dict[str, Any] | None:
        response = await self.review.get(f"/applications/{app_id}")
        if response.status_code != 200:
            return None
        state: dict[str, Any] = response.json()
        return state

    async def wait_status(self, app_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            state = await self.state(app_id)
            return state if state and state["status"] in statuses else None

        return await eventually(probe, timeout=timeout)

    async def timeline(self, app_id: str) -> list[dict[str, Any]]:
        response = await self.intake.get(f"/applications/{app_id}/timeline")
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()
        return events

    async def wait_event(self, app_id: str, event_type: str, timeout: float = 60) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            for event in await self.timeline(app_id):
                if event["type"] == event_type:
                    return event
            return None

        return await eventually(probe, timeout=timeout)

    async def review_it(
        self, app_id: str, advisor: str, recommended: str | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "advisor": advisor,
            "scores": SCORES,
            "comment": "Solid cross-border content.",
            "recommendation": "approve",
        }
        if recommended:
            body["recommended_amount"] = recommended
        return await self.review.post(
            f"/applications/{app_id}/review", json=body, headers=bearer("advisor", advisor)
        )

    async def decide(
        self, app_id: str, role: Role, outcome: str = "approve", amount: str | None = None
    ) -> httpx.Response:
        decider = DECIDERS[role]
        body: dict[str, Any] = {"decider": decider, "role": role, "outcome": outcome}
        if amount:
            body["amount"] = amount
        return await self.review.post(
            f"/applications/{app_id}/decision", json=body, headers=bearer(role, decider)
        )

    async def as_applicant(self, app_id: str) -> dict[str, str]:
        """The headers of the application's own applicant (its organisation's token)."""
        shown = (await self.intake.get(f"/applications/{app_id}")).json()
        org: str = shown["document"]["applicant"]["org_number"]
        return bearer("applicant", f"contact-{org}", org=org)


async def bank_answers(
    settings: Settings,
    reference: str,
    attempt: int = 1,
    outcome: str = "confirmed",
    reason: str | None = None,
) -> None:
    """Act as the bank/ERP: answer a payment request on Kafka."""
    from shared.contracts.grant import BANK_PAYMENT_ANSWER
    from shared.events import Envelope
    from shared.topics import BANK_PAYMENT_ANSWERS
    from tests.kafka_helpers import publish

    payload: dict[str, Any] = {"reference": reference, "attempt": attempt, "outcome": outcome}
    if reason:
        payload["reason"] = reason
    envelope = Envelope(type=BANK_PAYMENT_ANSWER, source="bank", payload=payload)
    await publish(
        settings,
        BANK_PAYMENT_ANSWERS,
        envelope.model_dump_json().encode(),
        key=reference.encode(),
        headers=kafka_auth("finance", "bank-erp", sys="bank"),
    )
