"""The public project register against the real Postgres: intake's RegisterRepository fed the
lifecycle events of a funded project (as the "intake.register" consumer is), and the register's
HTTP routes in process over that same database. Each test uses its own project code
(`KO188-<hex>`), and the rows it made are removed afterwards, so the tests collide neither with
each other nor with real data, and no made-up project stays on the public page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from pydantic import BaseModel

from services.intake.api import build_api
from services.intake.repository import REGISTER_CONSUMER, RegisterRepository
from shared.config import REPO_ROOT, Settings
from shared.contracts.application import ApplicationDocument
from shared.contracts.grant import (
    AGREEMENT_ACCEPTED,
    GRANT_CLOSED,
    GRANT_LAPSED,
    REPORT_APPROVED,
    REPORT_SUBMITTED,
    AgreementAccepted,
    GrantClosed,
    GrantLapsed,
    ReportReviewed,
    ReportSubmitted,
)
from shared.contracts.money import Money
from shared.contracts.review import (
    APPLICATION_SCREENED,
    DECISION_MADE,
    ApplicationScreened,
    DecisionMade,
)
from shared.db import create_pool, migrate
from shared.events import APPLICATION_SUBMITTED, ApplicationSubmitted, Envelope
from shared.funding import get_funding_config
from shared.runtime import ServiceContext
from tests.conftest import load_sample

pytestmark = pytest.mark.integration

MIGRATIONS = REPO_ROOT / "services" / "intake" / "migrations"
T0 = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)

# The public record of KO188 (../shared/domain/seeds/000_c4f68d7290aedd58.txt).
SEED_RESULTS = (
    "The project has created a network of new contacts, mutual fields of cooperation and "
    "concrete multilateral projects between cultural and artists’ institutions, organizations "
    "and entrepreneurs. One central result is the project plan “New Horizons” that has been "
    "financed later in the framework of Kolarctic ENPI. The individual contacts between the "
    "participants have contributed to an exchange of knowledge and of creative ideas and "
    "artistic production."
)
SEED_PARTNERS = [
    {"name": "Arts Council of Lapland", "country": "FI"},
    {"name": "Department of Culture, Regional Government of Murmansk Region", "country": "RU"},
    {"name": "Aine Art Museum", "country": "FI"},
]
CONTACT = ("Anna Lindqvist", "anna.lindqvist@example.se", "+46920243500", "232100-0230")


def eur(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


@pytest.fixture(scope="module")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    # The same migrations table as the running intake service: 0003 applies on 0001/0002.
    await migrate(settings, "intake", MIGRATIONS)
    pool = await create_pool(settings, "intake")
    yield pool
    await pool.close()


class Project:
    """One made-up funded project: its code, its application id and its events."""

    def __init__(self) -> None:
        self.application_id = uuid4()
        self.code = f"KO188-{uuid4().hex[:10].upper()}"
        data = load_sample("ko188-cultural-network.json")
        data["external_ref"] = self.code
        self.document = ApplicationDocument.model_validate(data)

    def envelope(self, event_type: str, payload: BaseModel, at: datetime) -> Envelope:
        return Envelope(
            type=event_type,
            application_id=self.application_id,
            occurred_at=at,
            source="test",
            payload=payload.model_dump(mode="json"),
        )

    def submitted(self) -> Envelope:
        payload = ApplicationSubmitted(
            application_id=self.application_id,
            received_at=T0,
            channel="http",
            document=self.document,
        )
        return self.envelope(APPLICATION_SUBMITTED, payload, T0)

    def approved(self) -> Envelope:
        payload = DecisionMade(
            application_id=self.application_id,
            status="approved",
            decider="dina.director",
            role="director",
            outcome="approved",
            amount=eur("150310.00"),
            comment="Strong cross-border network.",
        )
        return self.envelope(DECISION_MADE, payload, T0 + timedelta(days=20))

    def accepted(self) -> Envelope:
        payload = AgreementAccepted(
            application_id=self.application_id,
            status="active",
            accepted_by="Anna Lindqvist",
            grant=eur("150310.00"),
        )
        return self.envelope(AGREEMENT_ACCEPTED, payload, T0 + timedelta(days=25))

    def lapsed(self) -> Envelope:
        payload = GrantLapsed(
            application_id=self.application_id, status="lapsed", released=eur("150310.00")
        )
        return self.envelope(GRANT_LAPSED, payload, T0 + timedelta(days=51))

    def report(self) -> Envelope:
        payload = ReportSubmitted(
            application_id=self.application_id,
            status="report_submitted",
            actual_costs=eur("171645.00"),
            results=SEED_RESULTS,
        )
        return self.envelope(REPORT_SUBMITTED, payload, T0 + timedelta(days=400))

    def report_approved(self) -> Envelope:
        payload = ReportReviewed(
            application_id=self.application_id,
            status="final_payment",
            advisor="kari.nordmann",
            comment="",
        )
        return self.envelope(REPORT_APPROVED, payload, T0 + timedelta(days=410))

    def closed(self) -> Envelope:
        payload = GrantClosed(
            application_id=self.application_id,
            status="closed",
            paid=eur("150310.00"),
            claimed_back=None,
            results=SEED_RESULTS,
        )
        return self.envelope(GRANT_CLOSED, payload, T0 + timedelta(days=420))


@pytest.fixture
async def projects(pool: asyncpg.Pool) -> AsyncIterator[list[Project]]:
    made: list[Project] = []
    yield made
    ids = [p.application_id for p in made]
    await pool.execute("DELETE FROM register WHERE application_id = ANY($1::uuid[])", ids)


@pytest.fixture
def new_project(projects: list[Project]) -> Any:
    def make() -> Project:
        project = Project()
        projects.append(project)
        return project

    return make


@pytest.fixture
def repo(pool: asyncpg.Pool) -> RegisterRepository:
    return RegisterRepository(pool)


@pytest.fixture
async def http(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    ctx = ServiceContext("intake", settings, pool, cast(Any, None), cast(Any, None))
    transport = httpx.ASGITransport(app=build_api(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        yield client


async def public_codes(repo: RegisterRepository) -> set[str]:
    return {s.facts.code for s in await repo.public() if s.facts is not None}


async def stored_row(pool: asyncpg.Pool, application_id: UUID) -> str:
    text: str = await pool.fetchval(
        "SELECT row_to_json(r)::text FROM register r WHERE application_id = $1", application_id
    )
    return text


async def test_a_funded_project_is_published_like_the_public_record(
    repo: RegisterRepository, pool: asyncpg.Pool, http: httpx.AsyncClient, new_project: Any
) -> None:
    p: Project = new_project()

    assert await repo.apply(p.submitted())
    assert p.code not in await public_codes(repo)
    assert (await http.get(f"/register/{p.code}")).status_code == 404

    assert await repo.apply(p.approved())
    assert p.code not in await public_codes(repo)

    assert await repo.apply(p.accepted())
    active = await http.get(f"/register/{p.code}")
    assert active.status_code == 200
    assert active.json()["status"] == "active"
    assert active.json()["results"] is None

    assert await repo.apply(p.report())
    assert await repo.apply(p.report_approved())
    assert await repo.apply(p.closed())

    one = await http.get(f"/register/{p.code}")
    assert one.status_code == 200
    assert one.json() == {
        "code": p.code,
        "title": "Barents Cultural Co-Production Network",
        "funding_line": "KOLARCTIC",
        "programme": get_funding_config().line("KOLARCTIC").owner,
        "objective": p.document.objective,
        "main_activities": [
            "Network meetings and seminars",
            "Mapping of co-production interests",
            "Practical programme for cultural management 2012-2015",
        ],
        "period": {"start": "2027-04-01", "end": "2028-03-31"},
        "total_budget": {"amount": "171645.00", "currency": "EUR"},
        "programme_funding": {"amount": "150310.00", "currency": "EUR"},
        "lead_partner": {"name": "Norrbotten Regional Museum", "country": "SE"},
        "partners": SEED_PARTNERS,
        "status": "closed",
        "results": SEED_RESULTS,
    }

    listed = await http.get("/register", params={"funding_line": "KOLARCTIC"})
    assert listed.status_code == 200
    assert one.json() in listed.json()
    closed_only = await http.get("/register", params={"status": "closed"})
    assert p.code in {e["code"] for e in closed_only.json()}
    active_only = await http.get("/register", params={"status": "active"})
    assert p.code not in {e["code"] for e in active_only.json()}

    page = await http.get("/register.html")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    html = page.text
    for text in [
        f"Barents Cultural Co-Production Network ({p.code})",
        f"Funded by {get_funding_config().line('KOLARCTIC').owner}",
        "Objective of the project",
        "Main activities",
        "Basic information",
        "2027-04-01 - 2028-03-31",
        "Total Budget / Programme funding",
        "171 645 € / 150 310 €",
        "Lead partner",
        "Norrbotten Regional Museum (SE)",
        "Department of Culture, Regional Government of Murmansk Region (RU)",
        "Results",
        "“New Horizons”",
    ]:
        assert text in html

    # Nothing about the contact person (nor the organisation number), stored or published.
    row = await stored_row(pool, p.application_id)
    for personal in CONTACT:
        assert personal not in row
        assert personal not in one.text
        assert personal not in html


async def test_a_lapsed_grant_is_never_public(
    repo: RegisterRepository, http: httpx.AsyncClient, new_project: Any
) -> None:
    p: Project = new_project()
    for envelope in (p.submitted(), p.approved(), p.lapsed()):
        assert await repo.apply(envelope)
    # An acceptance arriving after the lapse (out of order, or by mistake) publishes nothing.
    await repo.apply(p.accepted())

    assert p.code not in await public_codes(repo)
    assert (await http.get(f"/register/{p.code}")).status_code == 404
    assert p.code not in {e["code"] for e in (await http.get("/register")).json()}
    assert p.code not in (await http.get("/register.html")).text


async def test_redelivered_events_change_nothing(
    repo: RegisterRepository, pool: asyncpg.Pool, http: httpx.AsyncClient, new_project: Any
) -> None:
    p: Project = new_project()
    sequence = [p.submitted(), p.approved(), p.accepted(), p.closed()]
    for envelope in sequence:
        assert await repo.apply(envelope)
    before = await stored_row(pool, p.application_id)
    entry = (await http.get(f"/register/{p.code}")).json()

    # The same events again (same event ids), in and out of order: nothing changes.
    for envelope in sequence + sequence[::-1]:
        assert not await repo.apply(envelope)
    # A republished acceptance (a new event id) does not reopen the closed project.
    republished = p.accepted().model_copy(update={"event_id": uuid4()})
    assert not await repo.apply(republished)

    assert await stored_row(pool, p.application_id) == before
    assert (await http.get(f"/register/{p.code}")).json() == entry
    claimed = await pool.fetchval(
        "SELECT count(*) FROM inbox WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
        REGISTER_CONSUMER,
        [e.event_id for e in sequence],
    )
    assert claimed == len(sequence)


async def test_events_out_of_order_give_the_same_entry(
    repo: RegisterRepository, http: httpx.AsyncClient, new_project: Any
) -> None:
    in_order: Project = new_project()
    for envelope in (in_order.submitted(), in_order.approved(), in_order.accepted()):
        await repo.apply(envelope)
    await repo.apply(in_order.closed())

    shuffled: Project = new_project()
    for envelope in (shuffled.closed(), shuffled.accepted(), shuffled.approved()):
        await repo.apply(envelope)
    assert shuffled.code not in await public_codes(repo)  # the facts are not known yet
    await repo.apply(shuffled.submitted())

    a = (await http.get(f"/register/{in_order.code}")).json()
    b = (await http.get(f"/register/{shuffled.code}")).json()
    assert a.pop("code") == in_order.code and b.pop("code") == shuffled.code
    assert a == b
    assert b["status"] == "closed"


async def test_events_the_register_does_not_use_store_nothing(
    repo: RegisterRepository, new_project: Any
) -> None:
    p: Project = new_project()
    rejected = DecisionMade(
        application_id=p.application_id,
        status="rejected",
        decider="hanne.head",
        role="head_of_section",
        outcome="rejected",
        amount=None,
        comment="",
    )
    assert not await repo.apply(p.envelope(DECISION_MADE, rejected, T0))
    screened = ApplicationScreened(
        application_id=p.application_id, status="in_review", eligible=True, reasons=[]
    )
    assert not await repo.apply(p.envelope(APPLICATION_SCREENED, screened, T0))
    assert await repo.state(p.application_id) is None
