"""The grant workflow's configuration and event activities, without Postgres: the plan comes
from the funding configuration, and an event consumers would refuse fails here, never
retried, before anything is written."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast
from uuid import uuid4

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from services.payments.activities import PaymentActivities
from services.payments.repository import Repository
from shared.config import REPO_ROOT
from shared.contracts.grant import PublishGrantEvent
from shared.events import Envelope
from shared.funding import DEFAULT_PATH, load_funding_config

FAST = REPO_ROOT / "tests" / "fixtures" / "funding-fast.toml"


class _Repo:
    def __init__(self) -> None:
        self.published: list[Envelope] = []

    async def publish(self, envelope: Envelope) -> None:
        self.published.append(envelope)


def activities(repo: _Repo | None = None, path: Any = DEFAULT_PATH) -> PaymentActivities:
    return PaymentActivities(cast(Repository, repo or _Repo()), load_funding_config(path))


async def test_the_plan_comes_from_the_configuration() -> None:
    plan = await ActivityEnvironment().run(activities().grant_plan, "UD-PROJECT")
    assert plan.advance_share == Decimal("0.8")
    assert plan.currency == "NOK"
    assert plan.agreement_acceptance_seconds == 30 * 86400
    assert plan.payment_confirmation_alert_seconds == 3 * 86400
    assert plan.report_reminder_before_seconds == 14 * 86400
    assert plan.report_overdue_notice_seconds == 7 * 86400
    assert plan.report_escalation_seconds == 30 * 86400
    kolarctic = await ActivityEnvironment().run(activities().grant_plan, "KOLARCTIC")
    assert kolarctic.currency == "EUR"


async def test_the_fast_configuration_gives_seconds() -> None:
    fast = load_funding_config(FAST)
    plan = await ActivityEnvironment().run(activities(path=FAST).grant_plan, "UD-PROJECT")
    assert plan.final_report_due_seconds == fast.deadlines.final_report_due.total_seconds()
    assert plan.final_report_due_seconds < 3600


async def test_an_unknown_line_fails_without_retrying() -> None:
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(activities().grant_plan, "NO-SUCH-LINE")
    assert failed.value.non_retryable
    assert "NO-SUCH-LINE" in str(failed.value)


def event(event_type: str, payload: dict[str, object]) -> PublishGrantEvent:
    return PublishGrantEvent(
        event_id=uuid4(),
        correlation_id=uuid4(),
        event_type=event_type,
        actor=None,
        payload=payload,
    )


async def test_publish_writes_the_envelope() -> None:
    repo = _Repo()
    app = uuid4()
    request = event(
        "grant.lapsed", {"application_id": str(app), "status": "lapsed", "released": None}
    )
    await ActivityEnvironment().run(activities(repo).publish, request)
    (envelope,) = repo.published
    assert (envelope.event_id, envelope.type, envelope.application_id) == (
        request.event_id,
        "grant.lapsed",
        app,
    )
    assert envelope.source == "payments"
    assert envelope.correlation_id == request.correlation_id
    assert envelope.payload == request.payload


@pytest.mark.parametrize(
    ("event_type", "payload", "reason"),
    [
        ("grant.lapsed", {"status": "lapsed", "released": None}, "application_id"),
        ("grant.lapsed", {"application_id": "nope", "status": "lapsed"}, "application_id"),
        ("grant.teleported", {"application_id": str(uuid4())}, "unknown event type"),
        ("grant.lapsed", {"application_id": str(uuid4()), "status": "gone"}, "invalid payload"),
    ],
)
async def test_publish_refuses_what_consumers_would_refuse(
    event_type: str, payload: dict[str, object], reason: str
) -> None:
    repo = _Repo()
    with pytest.raises(ApplicationError, match=reason) as failed:
        await ActivityEnvironment().run(activities(repo).publish, event(event_type, payload))
    assert failed.value.non_retryable
    assert repo.published == []
