"""The review stage on the real stack: screening outcomes for every sample, advisors, reviews,
decisions by the right person with the budget committed, information requests, Kafka
commands and the timeline."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from services.review.screening import screen
from shared import temporal
from shared.config import Settings
from shared.contracts.application import ApplicationDocument
from shared.events import DECISION_DECIDE, REVIEW_SUBMIT, Envelope
from shared.funding import load_funding_config
from shared.topics import REVIEW_COMMANDS, dead_letter_topic
from tests.conftest import load_sample, sample_names, service_url
from tests.integration.flows import SCORES, Users, fresh
from tests.kafka_helpers import find_record, publish
from tests.tokens import FINANCE, bearer, kafka_auth
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def users(stack: Settings) -> AsyncIterator[Users]:
    u = Users(stack)
    yield u
    await u.close()


@pytest.fixture(scope="module")
async def deadlines(users: Users) -> dict[str, float]:
    config = (await users.review.get("/funding-lines")).json()
    values: dict[str, float] = config["deadlines"]
    return values


@pytest.fixture(scope="module")
async def tclient(stack: Settings) -> Client:
    return await temporal.connect(stack)


def expected_outcome(name: str) -> tuple[bool, list[str], str]:
    """What the rules give for a sample: (eligible, reason codes, applicant's language)."""
    doc = ApplicationDocument.model_validate(load_sample(name))
    from datetime import date

    result = screen(doc, load_funding_config(), date.today())
    return result.eligible, result.codes, doc.applicant.contact.language


@pytest.mark.parametrize("name", sample_names())
async def test_every_sample_reaches_the_outcome_the_rules_give(
    users: Users, tclient: Client, name: str
) -> None:
    eligible, codes, language = expected_outcome(name)
    app_id = await users.submit(fresh(name))
    wf_id = temporal.lifecycle_workflow_id(uuid.UUID(app_id))

    if eligible:
        state = await users.wait_status(app_id, "in_review")
        assert state["advisor"]
        handle = tclient.get_workflow_handle(wf_id)

        async def searchable() -> Any:
            attrs = (await handle.describe()).typed_search_attributes
            return attrs if attrs.get(temporal.SA_STATUS) == "in_review" else None

        attrs = await eventually(searchable)
        assert attrs.get(temporal.SA_ADVISOR) == state["advisor"]
        assert attrs.get(temporal.SA_NEXT_DEADLINE) is not None
    else:
        screened = await users.wait_event(app_id, "application.screened")
        reasons = screened["payload"]["reasons"]
        assert [r["code"] for r in reasons] == codes
        assert codes, "an ineligible sample has reasons"
        for reason in reasons:
            assert reason["text"][language].strip()
        result = await tclient.get_workflow_handle(wf_id).result()
        assert result["status"] == "ineligible"
        closed = await tclient.get_workflow_handle(wf_id).describe()
        assert closed.typed_search_attributes.get(temporal.SA_STATUS) == "ineligible"


async def test_a_small_grant_is_decided_by_the_head_of_section_and_commits_the_budget(
    users: Users, stack: Settings
) -> None:
    app_id = await users.submit(fresh("small-grant-head-of-section.json"))
    state = await users.wait_status(app_id, "in_review")
    advisor = state["advisor"]

    wrong = await users.review_it(app_id, "not.the.advisor")
    assert wrong.status_code == 409
    assert "assigned advisor" in wrong.json()["detail"]
    early = await users.decide(app_id, "head_of_section")
    assert early.status_code == 409
    assert "in_review" in early.json()["detail"]

    assert (await users.review_it(app_id, advisor)).status_code == 200
    director = await users.decide(app_id, "director")
    assert director.status_code == 409
    assert "head_of_section" in director.json()["detail"]

    async with httpx.AsyncClient(base_url=service_url(stack, "payments"), headers=FINANCE) as pay:
        year = (await users.timeline(app_id))[0]["occurred_at"][:4]
        found = await pay.get(f"/ledgers/UD-PROJECT/{year}")
        before = Decimal(found.json()["committed"]) if found.status_code == 200 else Decimal(0)
        approved = await users.decide(app_id, "head_of_section", amount="60000")
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"
        assert approved.json()["amount"] == {"amount": "60000.00", "currency": "NOK"}
        after = Decimal((await pay.get(f"/ledgers/UD-PROJECT/{year}")).json()["committed"])
    assert after - before == Decimal(60000)

    await users.wait_event(app_id, "decision.made")
    events = [e["type"] for e in await users.timeline(app_id)]
    assert events[:3] == [
        "application.submitted",
        "application.screened",
        "review.advisor_assigned",
    ]
    assert events.index("review.submitted") < events.index("budget.committed")
    assert events.index("budget.committed") < events.index("decision.made")
    decided = next(e for e in await users.timeline(app_id) if e["type"] == "decision.made")
    assert decided["actor"] == "ingrid.solberg"
    assert decided["source"] == "review"

    twice = await users.decide(app_id, "head_of_section")
    assert twice.status_code in (404, 409)


async def test_a_large_grant_goes_to_the_director_unless_the_advisor_reduces_it(
    users: Users,
) -> None:
    big = await users.submit(fresh("ru-school-exchange.json"))
    state = await users.wait_status(big, "in_review")
    assert (await users.review_it(big, state["advisor"])).status_code == 200
    assert (await users.state(big) or {})["decider_role"] == "director"
    rejected = await users.decide(big, "director", outcome="reject")
    assert rejected.json()["status"] == "rejected"

    reduced = await users.submit(fresh("ru-school-exchange.json"))
    state = await users.wait_status(reduced, "in_review")
    assert (await users.review_it(reduced, state["advisor"], "90000")).status_code == 200
    assert (await users.state(reduced) or {})["decider_role"] == "head_of_section"


async def test_information_request_answered_over_http_returns_to_review(users: Users) -> None:
    app_id = await users.submit(fresh("nb-ungdom-fotball.json"))
    state = await users.wait_status(app_id, "in_review")
    asked = await users.review.post(
        f"/applications/{app_id}/information-request",
        json={"advisor": state["advisor"], "question": "Hvem er trenerne?"},
        headers=bearer("advisor", state["advisor"]),
    )
    assert asked.status_code == 200, asked.text
    assert asked.json()["status"] == "information_requested"
    answer = await users.intake.post(
        f"/applications/{app_id}/information",
        json={"answer": "To trenere fra hver klubb."},
        headers=await users.as_applicant(app_id),
    )
    assert answer.status_code == 200, answer.text
    await users.wait_status(app_id, "in_review")
    await users.wait_event(app_id, "review.information_answered")


async def test_unanswered_information_request_withdraws_the_application(
    users: Users, deadlines: dict[str, float], tclient: Client
) -> None:
    if deadlines["information_answer"] > 120:
        pytest.skip("the running stack has real deadlines (./dev test starts it with fast ones)")
    app_id = await users.submit(fresh("nb-barentskult-festival.json"))
    state = await users.wait_status(app_id, "in_review")
    await users.review.post(
        f"/applications/{app_id}/information-request",
        json={"advisor": state["advisor"], "question": "Program?"},
        headers=bearer("advisor", state["advisor"]),
    )
    await users.wait_event(
        app_id, "application.withdrawn", timeout=deadlines["information_answer"] + 60
    )
    handle = tclient.get_workflow_handle(temporal.lifecycle_workflow_id(uuid.UUID(app_id)))
    assert (await handle.result())["status"] == "withdrawn"


async def test_review_deadlines_remind_then_escalate(
    users: Users, deadlines: dict[str, float]
) -> None:
    if deadlines["review_escalation"] > 120:
        pytest.skip("the running stack has real deadlines (./dev test starts it with fast ones)")
    app_id = await users.submit(fresh("nb-ungdom-fotball.json"))
    state = await users.wait_status(app_id, "in_review")
    reminder = await users.wait_event(app_id, "review.reminder", deadlines["review_reminder"] + 60)
    assert reminder["payload"]["notify"] == state["advisor"]
    escalation = await users.wait_event(
        app_id, "review.escalated", deadlines["review_escalation"] + 60
    )
    config = (await users.review.get("/funding-lines")).json()
    assert escalation["payload"]["advisor"] == state["advisor"]
    assert escalation["payload"]["notify"] != state["advisor"]
    assert config


async def test_core_support_is_decided_by_the_board_at_its_meeting(
    users: Users, deadlines: dict[str, float]
) -> None:
    app_id = await users.submit(fresh("en-core-support.json"))
    state = await users.wait_status(app_id, "in_review")
    assert state["decider_role"] == "board"
    assert (await users.review_it(app_id, state["advisor"])).status_code == 200
    scheduled = await users.wait_event(app_id, "decision.board_scheduled")
    assert scheduled["payload"]["meeting"]
    board = await users.decide(app_id, "director")
    assert board.status_code == 409
    assert "board" in board.json()["detail"]


async def test_advisor_actions_arrive_as_kafka_commands_with_the_same_validation(
    users: Users, stack: Settings
) -> None:
    app_id = await users.submit(fresh("small-grant-head-of-section.json"))
    state = await users.wait_status(app_id, "in_review")

    # Refused: not the assigned advisor. Dead-lettered with the workflow's reason.
    wrong = Envelope(
        type=REVIEW_SUBMIT,
        application_id=uuid.UUID(app_id),
        source="advisor-portal",
        payload={
            "action": {
                "advisor": "someone.else",
                "scores": SCORES,
                "comment": "ok",
                "recommendation": "approve",
            }
        },
    )
    await publish(
        stack,
        REVIEW_COMMANDS,
        wrong.model_dump_json().encode(),
        key=app_id.encode(),
        headers=kafka_auth("advisor", "someone.else", sys="advisor-portal"),
    )
    dead = await find_record(
        stack, dead_letter_topic(REVIEW_COMMANDS), lambda r: r.get("original_key") == app_id
    )
    assert "assigned advisor" in dead["reason"]

    right = wrong.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "payload": {"action": {**wrong.payload["action"], "advisor": state["advisor"]}},
        }
    )
    await publish(
        stack,
        REVIEW_COMMANDS,
        right.model_dump_json().encode(),
        key=app_id.encode(),
        headers=kafka_auth("advisor", state["advisor"], sys="advisor-portal"),
    )
    await users.wait_status(app_id, "awaiting_decision")

    decision = Envelope(
        type=DECISION_DECIDE,
        application_id=uuid.UUID(app_id),
        source="advisor-portal",
        payload={
            "action": {"decider": "ingrid.solberg", "role": "head_of_section", "outcome": "reject"}
        },
    )
    await publish(
        stack,
        REVIEW_COMMANDS,
        decision.model_dump_json().encode(),
        key=app_id.encode(),
        headers=kafka_auth("head_of_section", "ingrid.solberg", sys="advisor-portal"),
    )
    event = await users.wait_event(app_id, "decision.made")
    assert event["payload"]["outcome"] == "rejected"
    assert event["actor"] == "ingrid.solberg"


async def test_an_advisor_sees_the_applications_assigned_to_them(users: Users) -> None:
    app_id = await users.submit(fresh("nb-barentskult-festival.json"))
    state = await users.wait_status(app_id, "in_review")
    # The newest assignment: its deadline is the furthest away, so read the whole list.
    mine = (
        await users.review.get(f"/advisors/{state['advisor']}/applications", params={"limit": 500})
    ).json()
    assert app_id in {a["application_id"] for a in mine}
    others: list[dict[str, Any]] = (await users.review.get("/advisors/nobody/applications")).json()
    assert others == []
