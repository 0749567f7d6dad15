"""Authentication and authorization on the real stack: every HTTP route (enumerated from each
service's OpenAPI document, so a new unprotected route fails here) refuses a caller without a
valid token; roles and ownership are enforced; refusals leak nothing and are audited; Kafka
commands are held to the same rules."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.config import Settings
from shared.events import APPLICATION_SUBMIT, DECISION_DECIDE, Envelope
from shared.topics import APPLICATIONS_INBOUND, REVIEW_COMMANDS, dead_letter_topic
from tests.conftest import connect_as, service_url
from tests.integration.flows import Users, fresh
from tests.kafka_helpers import find_record, publish
from tests.tokens import FINANCE, bearer, kafka_auth, token

pytestmark = pytest.mark.integration

SERVICES = ("intake", "review", "payments", "notifications")
# Routes anyone may call: health, metrics (scraped on the pod/host network only), the API
# and event documents and the public project register.
PUBLIC = {
    "/health",
    "/metrics",
    "/asyncapi.json",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/register",
    "/register.html",
    "/register/{code}",
}


@pytest.fixture(scope="module")
async def users(stack: Settings) -> AsyncIterator[Users]:
    u = Users(stack)
    yield u
    await u.close()


async def protected_routes(settings: Settings) -> list[tuple[str, str, str]]:
    routes = []
    async with httpx.AsyncClient(timeout=10) as http:
        for service in SERVICES:
            spec = (await http.get(f"{service_url(settings, service)}/openapi.json")).json()
            for path, methods in spec["paths"].items():
                if path in PUBLIC:
                    continue
                for method in methods:
                    routes.append((service, method.upper(), path))
    return routes


def concrete(path: str) -> str:
    """A path with every parameter filled with something well-formed."""
    fills = {"application_id": str(uuid.uuid4()), "year": "2027", "meeting": "2027-03-10"}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: fills.get(m.group(1), "X-1"), path)


async def test_every_route_but_the_public_ones_needs_a_valid_token(stack: Settings) -> None:
    routes = await protected_routes(stack)
    assert len(routes) >= 20, routes  # the enumeration itself works
    expired = token("operator", "ops.tester").rsplit(".", 1)[0] + ".forged-signature"
    async with httpx.AsyncClient(timeout=10) as http:
        for service, method, path in routes:
            url = f"{service_url(stack, service)}{concrete(path)}"
            for headers in (
                {},
                {"authorization": f"Bearer {expired}"},
                {"authorization": "Basic b3BzOm9wcw=="},
            ):
                response = await http.request(method, url, headers=headers, json={})
                assert response.status_code == 401, (service, method, path, headers, response.text)
                assert response.json() == {"detail": "authentication required"}


async def test_public_routes_answer_without_a_token(stack: Settings) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for service in SERVICES:
            assert (await http.get(f"{service_url(stack, service)}/health")).status_code == 200
        intake = service_url(stack, "intake")
        assert (await http.get(f"{intake}/register")).status_code == 200
        assert (await http.get(f"{intake}/register.html")).status_code == 200


async def audited(settings: Settings, service: str) -> int:
    conn = await connect_as(settings, service)
    try:
        count: int = await conn.fetchval(f"SELECT count(*) FROM {service}.audit_refusals")
        return count
    finally:
        await conn.close()


async def test_an_applicant_sees_and_acts_only_on_its_own_applications(
    users: Users, stack: Settings
) -> None:
    doc = fresh("nb-ungdom-fotball.json")
    app_id = await users.submit(doc)
    own = bearer("applicant", "contact", org=doc["applicant"]["org_number"])
    other = bearer("applicant", "someone", org="999999999")
    before = await audited(stack, "intake")

    assert (await users.intake.get(f"/applications/{app_id}", headers=own)).status_code == 200
    refused = await users.intake.get(f"/applications/{app_id}", headers=other)
    assert refused.status_code == 403
    assert refused.json() == {"detail": "not allowed"}
    assert doc["title"] not in refused.text
    # "Not yours" and "does not exist" look the same to an applicant.
    unknown = await users.intake.get(f"/applications/{uuid.uuid4()}", headers=other)
    assert (unknown.status_code, unknown.json()) == (403, {"detail": "not allowed"})
    listing = await users.intake.get("/applications", headers=own)
    assert listing.status_code == 403
    timeline = await users.intake.get(f"/applications/{app_id}/timeline", headers=other)
    assert timeline.status_code == 403
    # Submitting for another organisation is refused.
    foreign = fresh("nb-ungdom-fotball.json")
    assert (
        await users.intake.post("/applications", json=foreign, headers=other)
    ).status_code == 403
    # Staff cannot act as the applicant.
    accept = await users.intake.post(
        f"/applications/{app_id}/agreement/acceptance",
        json={"accepted_by": "x"},
        headers=bearer("advisor", "kari.nordmann"),
    )
    assert accept.status_code == 403
    assert await audited(stack, "intake") >= before + 5


async def test_advisors_and_deciders_act_only_in_their_own_name_and_role(
    users: Users, stack: Settings
) -> None:
    app_id = await users.submit(fresh("small-grant-head-of-section.json"))
    state = await users.wait_status(app_id, "in_review")
    advisor = state["advisor"]
    other = next(a for a in ("kari.nordmann", "olav.lie", "marina.ivanova") if a != advisor)
    before = await audited(stack, "review")

    body = {
        "advisor": advisor,
        "scores": {
            k: 4
            for k in (
                "cooperation",
                "relevance",
                "feasibility",
                "budget_realism",
                "people_to_people",
            )
        },
        "comment": "ok",
        "recommendation": "approve",
    }
    # Another advisor's token, naming the assigned advisor: refused before the workflow.
    spoof = await users.review.post(
        f"/applications/{app_id}/review", json=body, headers=bearer("advisor", other)
    )
    assert spoof.status_code == 403
    # Another advisor in their own name: the workflow refuses (not assigned to them).
    wrong = await users.review.post(
        f"/applications/{app_id}/review",
        json={**body, "advisor": other},
        headers=bearer("advisor", other),
    )
    assert wrong.status_code == 409
    # An advisor cannot read a review assigned to someone else, nor decide.
    peek = await users.review.get(f"/applications/{app_id}", headers=bearer("advisor", other))
    assert peek.status_code == 403
    assert (await users.review_it(app_id, advisor)).status_code == 200
    as_advisor = await users.review.post(
        f"/applications/{app_id}/decision",
        json={"decider": advisor, "role": "head_of_section", "outcome": "approve"},
        headers=bearer("advisor", advisor),
    )
    assert as_advisor.status_code == 403
    # The finance role reads ledgers but cannot decide.
    as_finance = await users.review.post(
        f"/applications/{app_id}/decision",
        json={"decider": "finance.tester", "role": "head_of_section", "outcome": "approve"},
        headers=FINANCE,
    )
    assert as_finance.status_code == 403
    assert await audited(stack, "review") >= before + 4
    mine = await users.review.get("/assignments", headers=bearer("advisor", other))
    assert app_id not in {a["application_id"] for a in mine.json()}


async def test_money_is_for_finance_and_the_deciders(users: Users, stack: Settings) -> None:
    async with httpx.AsyncClient(base_url=service_url(stack, "payments")) as pay:
        assert (await pay.get("/ledgers", headers=FINANCE)).status_code == 200
        assert (
            await pay.get("/ledgers", headers=bearer("director", "erik.haugen"))
        ).status_code == 200
        for headers in (
            bearer("advisor", "kari.nordmann"),
            bearer("applicant", "x", org="974567123"),
        ):
            assert (await pay.get("/ledgers", headers=headers)).status_code == 403
            assert (await pay.get("/payments", headers=headers)).status_code == 403
        spoof = await pay.post(
            f"/applications/{uuid.uuid4()}/claim-back/settled",
            json={"settled_by": "someone.else", "amount": {"amount": "1.00", "currency": "NOK"}},
            headers=FINANCE,
        )
        assert spoof.status_code == 403


async def test_kafka_commands_need_a_system_token_with_the_right_role(
    users: Users, stack: Settings
) -> None:
    doc = fresh("nb-barentskult-festival.json")
    unsigned = Envelope(type=APPLICATION_SUBMIT, source="portal", payload={"document": doc})
    key = f"auth-{uuid.uuid4()}"
    await publish(
        stack, APPLICATIONS_INBOUND, unsigned.model_dump_json().encode(), key=key.encode()
    )
    dead: dict[str, Any] = await find_record(
        stack, dead_letter_topic(APPLICATIONS_INBOUND), lambda r: r.get("original_key") == key
    )
    assert dead["reason"].startswith("unauthenticated")

    key = f"auth-{uuid.uuid4()}"
    other_org = kafka_auth("applicant", "someone", org="999999999", sys="portal")
    await publish(
        stack,
        APPLICATIONS_INBOUND,
        unsigned.model_dump_json().encode(),
        key=key.encode(),
        headers=other_org,
    )
    dead = await find_record(
        stack, dead_letter_topic(APPLICATIONS_INBOUND), lambda r: r.get("original_key") == key
    )
    assert dead["reason"].startswith("forbidden")
    listed = await users.intake.get("/applications", params={"external_ref": doc["external_ref"]})
    assert listed.json() == []

    app_id = await users.submit(fresh("small-grant-head-of-section.json"))
    await users.wait_status(app_id, "in_review")
    decision = Envelope(
        type=DECISION_DECIDE,
        application_id=uuid.UUID(app_id),
        source="advisor-portal",
        payload={"action": {"decider": "erik.haugen", "role": "director", "outcome": "reject"}},
    )
    key = f"auth-{uuid.uuid4()}"
    # An advisor's token cannot carry a director's decision.
    await publish(
        stack,
        REVIEW_COMMANDS,
        decision.model_dump_json().encode(),
        key=key.encode(),
        headers=kafka_auth("advisor", "erik.haugen", sys="advisor-portal"),
    )
    dead = await find_record(
        stack, dead_letter_topic(REVIEW_COMMANDS), lambda r: r.get("original_key") == key
    )
    assert dead["reason"].startswith("forbidden")
    assert (await users.state(app_id) or {})["status"] == "in_review"
