"""After the decision, on the real stack: KO188 is approved, accepted, its advance confirmed by
the bank, reported with actual costs below budget, paid the exact reduced final payment and
closed; its public register entry carries the seed record's fields."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.config import Settings
from tests.conftest import service_url
from tests.integration.flows import Users, bank_answers, fresh
from tests.tokens import FINANCE, bearer
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def users(stack: Settings) -> AsyncIterator[Users]:
    u = Users(stack)
    yield u
    await u.close()


@pytest.fixture(scope="module")
async def finance(stack: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=service_url(stack, "payments"), timeout=30, headers=FINANCE
    ) as c:
        yield c


async def payments_of(finance: httpx.AsyncClient, app_id: str, count: int) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = (
            await finance.get("/payments", params={"application_id": app_id})
        ).json()
        return rows if len(rows) >= count else None

    return await eventually(probe)


async def test_ko188_from_approval_to_closure_with_a_reduced_final_payment(
    users: Users, finance: httpx.AsyncClient, stack: Settings
) -> None:
    doc = fresh("ko188-cultural-network.json")
    app_id = await users.submit(doc)
    state = await users.wait_status(app_id, "in_review")
    advisor = state["advisor"]
    assert (await users.review_it(app_id, advisor)).status_code == 200
    decided = await users.decide(app_id, "director")
    assert decided.json()["status"] == "approved", decided.text
    await users.wait_event(app_id, "agreement.offered")
    applicant = await users.as_applicant(app_id)

    accepted = await users.intake.post(
        f"/applications/{app_id}/agreement/acceptance",
        json={"accepted_by": "Anna Lindqvist"},
        headers=applicant,
    )
    assert accepted.status_code == 200, accepted.text
    again = await users.intake.post(
        f"/applications/{app_id}/agreement/acceptance",
        json={"accepted_by": "Anna Lindqvist"},
        headers=applicant,
    )
    assert again.status_code == 409

    (advance,) = await payments_of(finance, app_id, 1)
    assert (advance["kind"], advance["amount"], advance["currency"]) == (
        "advance",
        "120248.00",
        "EUR",
    )
    # The report is not accepted before the advance is confirmed.
    early = await users.intake.post(
        f"/applications/{app_id}/reports",
        json={"actual_costs": {"amount": "140000.00", "currency": "EUR"}, "results": "x"},
        headers=applicant,
    )
    assert early.status_code == 409
    await bank_answers(stack, advance["reference"])
    await users.wait_event(app_id, "payment.confirmed")

    wrong_currency = await users.intake.post(
        f"/applications/{app_id}/reports",
        json={"actual_costs": {"amount": "140000.00", "currency": "NOK"}, "results": "x"},
        headers=applicant,
    )
    assert wrong_currency.status_code == 409
    assert "EUR" in wrong_currency.json()["detail"]
    results = "A network of new contacts; the project plan New Horizons was financed later."
    report = await users.intake.post(
        f"/applications/{app_id}/reports",
        json={"actual_costs": {"amount": "140000.00", "currency": "EUR"}, "results": results},
        headers=applicant,
    )
    assert report.json()["status"] == "report_submitted", report.text
    reviewed = await users.review.post(
        f"/applications/{app_id}/final-report/review",
        json={"advisor": advisor, "outcome": "approve"},
        headers=bearer("advisor", advisor),
    )
    assert reviewed.status_code == 200, reviewed.text

    final = (await payments_of(finance, app_id, 2))[0]
    # 150 310 x 140 000 / 171 645 = 122 598.38, minus the advance of 120 248.00.
    assert (final["kind"], final["amount"], final["currency"]) == ("final", "2350.38", "EUR")
    await bank_answers(stack, final["reference"])
    closed = await users.wait_event(app_id, "grant.closed")
    assert closed["payload"]["paid"] == {"amount": "122598.38", "currency": "EUR"}

    entry = (await users.intake.get(f"/register/{doc['external_ref']}")).json()
    assert entry["title"] == "Barents Cultural Co-Production Network"
    assert entry["funding_line"] == "KOLARCTIC"
    assert entry["period"] == {"start": "2027-04-01", "end": "2028-03-31"}
    assert entry["total_budget"] == {"amount": "171645.00", "currency": "EUR"}
    assert entry["programme_funding"] == {"amount": "122598.38", "currency": "EUR"}
    assert entry["lead_partner"]["name"] == "Norrbotten Regional Museum"
    assert [p["name"] for p in entry["partners"]] == [
        "Arts Council of Lapland",
        "Department of Culture, Regional Government of Murmansk Region",
        "Aine Art Museum",
    ]
    assert entry["main_activities"][0] == "Network meetings and seminars"
    assert entry["objective"].startswith("Promote cooperation and communication")
    assert entry["status"] == "closed"
    assert entry["results"] == results
    page = (await users.intake.get("/register.html")).text
    assert f"({doc['external_ref']})" in page


async def test_an_unaccepted_agreement_lapses_and_the_money_returns(
    users: Users, finance: httpx.AsyncClient, stack: Settings
) -> None:
    config = (await users.review.get("/funding-lines")).json()
    if config["deadlines"]["agreement_acceptance"] > 120:
        pytest.skip("the running stack has real deadlines (./dev test starts it with fast ones)")
    app_id = await users.submit(fresh("small-grant-head-of-section.json"))
    state = await users.wait_status(app_id, "in_review")
    await users.review_it(app_id, state["advisor"])
    decided = await users.decide(app_id, "head_of_section")
    assert decided.json()["status"] == "approved"
    applicant = await users.as_applicant(app_id)
    await users.wait_event(app_id, "agreement.reminder", timeout=60)
    lapsed = await users.wait_event(app_id, "grant.lapsed", timeout=60)
    assert lapsed["payload"]["released"] == decided.json()["amount"]
    await users.wait_event(app_id, "budget.released")
    late = await users.intake.post(
        f"/applications/{app_id}/agreement/acceptance",
        json={"accepted_by": "Per"},
        headers=applicant,
    )
    assert late.status_code == 409
