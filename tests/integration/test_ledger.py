"""The budget ledger against the real Postgres (and, for the by-name activity call, the real
Temporal). Each test opens its own funding line (`TEST-<uuid>`) in a far year, so tests never
collide with each other or with real ledgers."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from temporalio import workflow
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from services.payments.activities import LedgerActivities
from services.payments.api import build_api
from services.payments.repository import Repository
from shared.config import REPO_ROOT, Settings
from shared.contracts.ledger import (
    COMMIT_BUDGET_ACTIVITY,
    RELEASE_BUDGET_ACTIVITY,
    BudgetCommitted,
    BudgetRefused,
    BudgetReleased,
    CommitBudgetRequest,
    CommitBudgetResult,
    ReleaseBudgetRequest,
    ReleaseBudgetResult,
)
from shared.contracts.money import Money
from shared.db import create_pool, migrate
from shared.runtime import ServiceContext
from tests.tokens import FINANCE

pytestmark = pytest.mark.integration

MIGRATIONS = REPO_ROOT / "services" / "payments" / "migrations"
YEAR = 2099


def nok(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="NOK")


def eur(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


def new_line() -> str:
    return f"TEST-{uuid4().hex.upper()}"


@pytest.fixture(scope="module")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    await migrate(settings, "payments", MIGRATIONS)
    # 20 connections, so concurrent commits really race in Postgres, not in the pool queue.
    sized = settings.model_copy(update={"pg_pool_min": 20, "pg_pool_max": 20})
    pool = await create_pool(sized, "payments")
    yield pool
    # The test ledgers' events are about made-up applications: keep them off Kafka when the
    # service's relay next runs. (Ledgers and commitments stay: the schema never deletes them.)
    await pool.execute(
        """DELETE FROM outbox WHERE published_at IS NULL AND event_type LIKE 'budget.%'
           AND (envelope::jsonb -> 'payload' ->> 'funding_line') LIKE 'TEST-%'"""
    )
    await pool.close()


@pytest.fixture
def repo(pool: asyncpg.Pool) -> Repository:
    return Repository(pool)


async def events_for(pool: asyncpg.Pool, *application_ids: UUID) -> dict[UUID, list[Any]]:
    """The outbox envelopes written for each application, oldest first."""
    rows = await pool.fetch(
        "SELECT key, envelope FROM outbox WHERE key = ANY($1::text[]) ORDER BY id",
        [str(a) for a in application_ids],
    )
    found: dict[UUID, list[Any]] = {a: [] for a in application_ids}
    for row in rows:
        found[UUID(row["key"])].append(json.loads(row["envelope"]))
    return found


async def commitments_sum(pool: asyncpg.Pool, line: str) -> int:
    total: int = await pool.fetchval(
        "SELECT coalesce(sum(amount_minor), 0) FROM budget_commitments WHERE funding_line = $1",
        line,
    )
    return total


async def test_concurrent_commits_never_exceed_the_budget(
    repo: Repository, pool: asyncpg.Pool
) -> None:
    line = new_line()
    amount = nok("100000.00")
    # Room for exactly ten, and a remainder smaller than one more.
    budget = nok("1099999.99")
    apps = [uuid4() for _ in range(50)]

    outcomes = await asyncio.gather(*(repo.commit(app, line, YEAR, amount, budget) for app in apps))

    committed = [o for o in outcomes if o.committed]
    refused = [o for o in outcomes if not o.committed]
    assert len(committed) == 10
    assert len(refused) == 40
    assert all(o.reason == "budget_exhausted" and not o.repeated for o in refused)
    assert all(o.available.amount < amount.amount for o in refused)

    ledger = await repo.ledger(line, YEAR)
    assert ledger is not None
    assert ledger.committed_minor == 10 * amount.minor_units()
    assert ledger.available == nok("99999.99")
    assert ledger.available_minor == budget.minor_units() - ledger.committed_minor
    assert await commitments_sum(pool, line) == ledger.committed_minor
    # The generated column agrees with the totals it is derived from.
    stored = await pool.fetchval(
        "SELECT available_minor FROM budget_ledgers WHERE funding_line = $1 AND year = $2",
        line,
        YEAR,
    )
    assert stored == ledger.available_minor

    # Every call wrote exactly one event, of the kind its outcome says.
    events = await events_for(pool, *apps)
    outcome_by_app = {o.application_id: o for o in outcomes}
    for app, envelopes in events.items():
        assert len(envelopes) == 1
        (envelope,) = envelopes
        assert envelope["source"] == "payments"
        assert envelope["application_id"] == str(app)
        if outcome_by_app[app].committed:
            assert envelope["type"] == "budget.committed"
            assert BudgetCommitted.model_validate(envelope["payload"]).amount == amount
        else:
            assert envelope["type"] == "budget.refused"
            payload = BudgetRefused.model_validate(envelope["payload"])
            assert payload.reason == "budget_exhausted"


async def test_a_repeated_commit_does_not_commit_twice(
    repo: Repository, pool: asyncpg.Pool
) -> None:
    line = new_line()
    app = uuid4()
    first = await repo.commit(app, line, YEAR, nok("250000.00"), nok("1000000.00"))
    assert first.committed and not first.repeated

    # Sequential and concurrent repeats, one with a different amount: the first stands.
    again = await repo.commit(app, line, YEAR, nok("999.00"), nok("1000000.00"))
    racing = await asyncio.gather(
        *(repo.commit(app, line, YEAR, nok("250000.00"), nok("1000000.00")) for _ in range(5))
    )
    for repeat in [again, *racing]:
        assert repeat.committed and repeat.repeated
        assert repeat.amount == nok("250000.00")
        assert repeat.available == nok("750000.00")

    ledger = await repo.ledger(line, YEAR)
    assert ledger is not None
    assert ledger.committed_minor == nok("250000.00").minor_units()
    assert [e["type"] for e in (await events_for(pool, app))[app]] == ["budget.committed"]


async def test_concurrent_first_commits_of_one_application_commit_once(
    repo: Repository, pool: asyncpg.Pool
) -> None:
    line = new_line()
    app = uuid4()
    outcomes = await asyncio.gather(
        *(repo.commit(app, line, YEAR, nok("10.00"), nok("1000.00")) for _ in range(10))
    )
    assert sum(not o.repeated for o in outcomes) == 1
    assert all(o.committed for o in outcomes)
    assert await commitments_sum(pool, line) == 1000
    assert len((await events_for(pool, app))[app]) == 1


async def test_a_commitment_in_the_wrong_currency_is_refused(
    repo: Repository, pool: asyncpg.Pool
) -> None:
    line = new_line()
    await repo.open_budget(line, YEAR, "NOK", nok("500000.00").minor_units())
    app = uuid4()

    outcome = await repo.commit(app, line, YEAR, eur("1000.00"), nok("500000.00"))

    assert not outcome.committed
    assert outcome.reason == "currency_mismatch"
    assert outcome.available == nok("500000.00")
    ledger = await repo.ledger(line, YEAR)
    assert ledger is not None and ledger.committed_minor == 0
    (envelope,) = (await events_for(pool, app))[app]
    assert BudgetRefused.model_validate(envelope["payload"]).reason == "currency_mismatch"

    # The ledger's currency stands even when a caller's configuration says otherwise.
    other = await repo.commit(uuid4(), line, YEAR, eur("1000.00"), eur("500000.00"))
    assert other.reason == "currency_mismatch"


async def test_the_database_itself_refuses_over_commitment_and_mixed_currencies(
    repo: Repository, pool: asyncpg.Pool
) -> None:
    line = new_line()
    await repo.open_budget(line, YEAR, "NOK", 1000)
    insert = """INSERT INTO budget_commitments
                    (application_id, funding_line, year, currency, amount_minor)
                VALUES ($1, $2, $3, $4, $5)"""
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(insert, uuid4(), line, YEAR, "NOK", 1001)
    with pytest.raises(asyncpg.RaiseError, match="currency"):
        await pool.execute(insert, uuid4(), line, YEAR, "EUR", 10)
    app = uuid4()
    await pool.execute(insert, app, line, YEAR, "NOK", 1000)
    with pytest.raises(asyncpg.RaiseError, match="never deleted"):
        await pool.execute("DELETE FROM budget_commitments WHERE application_id = $1", app)
    ledger = await repo.ledger(line, YEAR)
    assert ledger is not None
    assert (ledger.committed_minor, ledger.available_minor) == (1000, 0)


async def test_release_returns_the_money(repo: Repository, pool: asyncpg.Pool) -> None:
    line = new_line()
    budget = nok("300000.00")
    app, waiting = uuid4(), uuid4()
    assert (await repo.commit(app, line, YEAR, nok("200000.00"), budget)).committed
    refused = await repo.commit(waiting, line, YEAR, nok("150000.00"), budget)
    assert refused.reason == "budget_exhausted"
    assert refused.available == nok("100000.00")

    released = await repo.release(app, "agreement not accepted within 30 days")
    assert released is not None and released.released_now
    assert released.amount == nok("200000.00")
    assert released.available == nok("300000.00")
    ledger = await repo.ledger(line, YEAR)
    assert ledger is not None
    assert (ledger.committed_minor, ledger.released_minor) == (20_000_000, 20_000_000)
    assert ledger.available == budget

    # Idempotent: nothing more is returned, no second event.
    again = await repo.release(app, "agreement not accepted within 30 days")
    assert again is not None and not again.released_now
    assert again.amount == nok("200000.00")
    assert await repo.release(uuid4(), "no such application") is None

    # A released commitment is not committed again by a repeated commit...
    repeat = await repo.commit(app, line, YEAR, nok("200000.00"), budget)
    assert repeat.repeated and repeat.commitment_status == "released"
    # ...but a refused application can commit now that the money is back.
    retry = await repo.commit(waiting, line, YEAR, nok("150000.00"), budget)
    assert retry.committed and not retry.repeated
    assert retry.available == nok("150000.00")

    events = await events_for(pool, app, waiting)
    assert [e["type"] for e in events[app]] == ["budget.committed", "budget.released"]
    payload = BudgetReleased.model_validate(events[app][1]["payload"])
    assert payload.amount == nok("200000.00")
    assert payload.reason == "agreement not accepted within 30 days"
    assert [e["type"] for e in events[waiting]] == ["budget.refused", "budget.committed"]


async def test_activities_return_exhaustion_as_a_result(repo: Repository) -> None:
    line = new_line()
    activities = LedgerActivities(repo)
    env = ActivityEnvironment()

    def request(amount: str) -> CommitBudgetRequest:
        return CommitBudgetRequest(
            application_id=uuid4(),
            funding_line=line,
            year=YEAR,
            amount=eur(amount),
            budget=eur("500000.00"),
        )

    first = request("400000.00")
    ok = await env.run(activities.commit_budget, first)
    assert ok.outcome == "committed" and ok.available == eur("100000.00")
    exhausted = await env.run(activities.commit_budget, request("100000.01"))
    assert exhausted.outcome == "refused"
    assert exhausted.reason == "budget_exhausted"
    assert exhausted.available == eur("100000.00")

    release = ReleaseBudgetRequest(application_id=first.application_id, reason="grant lapsed")
    released = await env.run(activities.release_budget, release)
    assert released.outcome == "released" and released.available == eur("500000.00")
    assert (await env.run(activities.release_budget, release)).outcome == "already_released"
    unknown = ReleaseBudgetRequest(application_id=uuid4(), reason="grant lapsed")
    assert (await env.run(activities.release_budget, unknown)).outcome == "not_committed"


@workflow.defn(name="TestLedgerCaller")
class LedgerCaller:
    """Calls the activities by name only, the way another service's workflow does."""

    @workflow.run
    async def run(self, request: CommitBudgetRequest) -> list[str]:
        committed = await workflow.execute_activity(
            COMMIT_BUDGET_ACTIVITY,
            request,
            result_type=CommitBudgetResult,
            start_to_close_timeout=timedelta(seconds=30),
        )
        released = await workflow.execute_activity(
            RELEASE_BUDGET_ACTIVITY,
            ReleaseBudgetRequest(application_id=request.application_id, reason="grant lapsed"),
            result_type=ReleaseBudgetResult,
            start_to_close_timeout=timedelta(seconds=30),
        )
        return [committed.outcome, str(committed.available.amount), released.outcome]


async def test_activities_are_called_by_name_through_temporal(repo: Repository) -> None:
    # Temporal's test server (from the dev dependencies), with the services' data converter:
    # what crosses the wire is exactly what the review service's workflow will send.
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
    )
    activities = LedgerActivities(repo)
    queue = f"test-payments-{uuid4()}"
    client = env.client
    async with (
        env,
        Worker(
            client,
            task_queue=queue,
            workflows=[LedgerCaller],
            activities=[activities.commit_budget, activities.release_budget],
            # The test module imports asyncpg and pytest; the sandbox is for production workflows.
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
    ):
        result = await client.execute_workflow(
            LedgerCaller.run,
            CommitBudgetRequest(
                application_id=uuid4(),
                funding_line=new_line(),
                year=YEAR,
                amount=nok("1500.50"),
                budget=nok("2000.00"),
            ),
            id=f"test-ledger-{uuid4()}",
            task_queue=queue,
            execution_timeout=timedelta(seconds=60),
        )
    assert result == ["committed", "499.50", "released"]


async def test_http_views(repo: Repository, pool: asyncpg.Pool, settings: Settings) -> None:
    line = new_line()
    await repo.commit(uuid4(), line, YEAR, nok("1234.56"), nok("10000.00"))
    # Only the ledger routes run here: /health's Kafka and Temporal checks are not used.
    ctx = ServiceContext("payments", settings, pool, cast(Any, None), cast(Any, None))
    transport = httpx.ASGITransport(app=build_api(ctx))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://payments", headers=FINANCE
    ) as http:
        one = await http.get(f"/ledgers/{line}/{YEAR}")
        assert one.status_code == 200
        assert one.json() == {
            "funding_line": line,
            "year": YEAR,
            "currency": "NOK",
            "budget": "10000.00",
            "committed": "1234.56",
            "disbursed": "0.00",
            "released": "0.00",
            "available": "8765.44",
        }
        listed = await http.get("/ledgers", params={"year": YEAR})
        assert listed.status_code == 200
        assert one.json() in listed.json()
        assert all(item["year"] == YEAR for item in listed.json())
        assert (await http.get(f"/ledgers/{line}/2098")).status_code == 404
        assert (await http.get(f"/ledgers/{new_line()}/{YEAR}")).status_code == 404
        assert (await http.get(f"/ledgers/{line}/99999999999")).status_code == 404
        assert (await http.get(f"/ledgers/A%00B/{YEAR}")).status_code == 404
