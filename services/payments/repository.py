"""Payments' storage: the only module of the service with SQL.

Budget ledgers and commitments. Every change to money takes the ledger row's lock
(`SELECT ... FOR UPDATE`) before deciding, so concurrent approvals queue on it and each sees
what the one before left; the schema's CHECKs refuse over-commitment even if code did not.
Each change writes its event to the outbox in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from services.payments.ledger import Ledger, currency, decide, to_minor
from shared import outbox
from shared.contracts.ledger import (
    BUDGET_COMMITTED,
    BUDGET_REFUSED,
    BUDGET_RELEASED,
    BudgetCommitted,
    BudgetRefused,
    BudgetReleased,
    CommitmentStatus,
    RefusalReason,
)
from shared.contracts.money import Currency, Money
from shared.db import Conn
from shared.events import Envelope
from shared.topics import APPLICATION_EVENTS

SERVICE = "payments"

_LEDGER_COLUMNS = """funding_line, year, currency, budget_minor, committed_minor,
                     disbursed_minor, released_minor"""
_COMMITMENT_COLUMNS = "application_id, funding_line, year, currency, amount_minor, status"


@dataclass(frozen=True)
class CommitOutcome:
    application_id: UUID
    funding_line: str
    year: int
    committed: bool
    reason: RefusalReason | None
    # Committed (on a repeat: the first call's amount), or refused.
    amount: Money
    # The ledger's available money after this call.
    available: Money
    # The application already had its commitment; nothing was committed now.
    repeated: bool
    commitment_status: CommitmentStatus | None


@dataclass(frozen=True)
class ReleaseOutcome:
    application_id: UUID
    funding_line: str
    year: int
    # False when an earlier call had released it already.
    released_now: bool
    amount: Money
    available: Money


@dataclass(frozen=True)
class _Commitment:
    application_id: UUID
    funding_line: str
    year: int
    currency: Currency
    amount_minor: int
    status: CommitmentStatus


class Repository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def open_budget(
        self, funding_line: str, year: int, currency: Currency, budget_minor: int
    ) -> Ledger:
        """Create the ledger if missing; an existing ledger keeps its stored budget."""
        async with self._pool.acquire() as conn:
            await _open(conn, funding_line, year, currency, budget_minor)
            ledger = await _ledger(conn, funding_line, year)
        assert ledger is not None
        return ledger

    async def commit(
        self,
        application_id: UUID,
        funding_line: str,
        year: int,
        amount: Money,
        budget: Money,
        *,
        correlation_id: UUID | None = None,
    ) -> CommitOutcome:
        """Commit `amount` for the application, or refuse it; at most one commitment per
        application. A refusal changes no money and is not remembered: asking again later
        (after money was released) decides afresh."""
        amount_minor = to_minor(amount)
        if amount_minor <= 0:
            raise ValueError("a commitment must be positive")
        budget_minor = to_minor(budget)
        now = datetime.now(UTC)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await _open(conn, funding_line, year, budget.currency, budget_minor)
                ledger = await _ledger(conn, funding_line, year, lock=True)
                assert ledger is not None
                # Checked under the ledger lock: a concurrent call for the same application
                # on this ledger has committed by now and is seen here.
                existing = await _commitment(conn, application_id)
                if existing is not None:
                    return await _repeated(conn, existing)
                decision = decide(ledger, amount)
                if decision == "commit":
                    await conn.execute(
                        """INSERT INTO budget_commitments
                               (application_id, funding_line, year, currency, amount_minor,
                                committed_at, updated_at)
                           VALUES ($1, $2, $3, $4, $5, $6, $6)""",
                        application_id,
                        funding_line,
                        year,
                        amount.currency,
                        amount_minor,
                        now,
                    )
                    available = ledger.money(ledger.available_minor - amount_minor)
                    committed = BudgetCommitted(
                        application_id=application_id,
                        funding_line=funding_line,
                        year=year,
                        amount=amount,
                        available=available,
                        committed_at=now,
                    )
                    await _emit(conn, BUDGET_COMMITTED, committed, application_id, correlation_id)
                    return CommitOutcome(
                        application_id=application_id,
                        funding_line=funding_line,
                        year=year,
                        committed=True,
                        reason=None,
                        amount=amount,
                        available=available,
                        repeated=False,
                        commitment_status="committed",
                    )
                refused = BudgetRefused(
                    application_id=application_id,
                    funding_line=funding_line,
                    year=year,
                    reason=decision,
                    amount=amount,
                    available=ledger.available,
                    refused_at=now,
                )
                await _emit(conn, BUDGET_REFUSED, refused, application_id, correlation_id)
                return CommitOutcome(
                    application_id=application_id,
                    funding_line=funding_line,
                    year=year,
                    committed=False,
                    reason=decision,
                    amount=amount,
                    available=ledger.available,
                    repeated=False,
                    commitment_status=None,
                )
        except asyncpg.UniqueViolationError:
            # The same application was committed concurrently on another ledger (a caller
            # bug, but still never two commitments): report the one that won.
            async with self._pool.acquire() as conn:
                found = await _commitment(conn, application_id)
                assert found is not None
                return await _repeated(conn, found)

    async def release(
        self, application_id: UUID, reason: str, *, correlation_id: UUID | None = None
    ) -> ReleaseOutcome | None:
        """Give the commitment's unpaid money back to its ledger (committed -> released).
        Idempotent: a released commitment is reported as it is. None: no commitment."""
        now = datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            found = await _commitment(conn, application_id)
            if found is None:
                return None
            # Same lock order as commit (ledger, then commitment): no deadlocks between them.
            ledger = await _ledger(conn, found.funding_line, found.year, lock=True)
            assert ledger is not None
            row = await conn.fetchrow(
                """SELECT amount_minor, disbursed_minor, released_minor, status
                   FROM budget_commitments WHERE application_id = $1 FOR UPDATE""",
                application_id,
            )
            assert row is not None
            if row["status"] == "released":
                return ReleaseOutcome(
                    application_id=application_id,
                    funding_line=found.funding_line,
                    year=found.year,
                    released_now=False,
                    amount=ledger.money(row["released_minor"]),
                    available=ledger.available,
                )
            # Money already paid out stays spent; only the rest goes back to the budget.
            returned = row["amount_minor"] - row["disbursed_minor"]
            await conn.execute(
                """UPDATE budget_commitments
                   SET status = 'released', released_minor = $2, release_reason = $3,
                       released_at = $4, updated_at = $4
                   WHERE application_id = $1""",
                application_id,
                returned,
                reason,
                now,
            )
            available = ledger.money(ledger.available_minor + returned)
            released = BudgetReleased(
                application_id=application_id,
                funding_line=found.funding_line,
                year=found.year,
                reason=reason,
                amount=ledger.money(returned),
                available=available,
                released_at=now,
            )
            await _emit(conn, BUDGET_RELEASED, released, application_id, correlation_id)
            return ReleaseOutcome(
                application_id=application_id,
                funding_line=found.funding_line,
                year=found.year,
                released_now=True,
                amount=ledger.money(returned),
                available=available,
            )

    async def ledgers(self, year: int | None = None) -> list[Ledger]:
        rows = await self._pool.fetch(
            f"""SELECT {_LEDGER_COLUMNS} FROM budget_ledgers
                WHERE ($1::integer IS NULL OR year = $1)
                ORDER BY year, funding_line""",  # noqa: S608 - constant column list
            year,
        )
        return [_to_ledger(r) for r in rows]

    async def ledger(self, funding_line: str, year: int) -> Ledger | None:
        async with self._pool.acquire() as conn:
            return await _ledger(conn, funding_line, year)


async def _open(conn: Conn, funding_line: str, year: int, currency: str, budget_minor: int) -> None:
    await conn.execute(
        """INSERT INTO budget_ledgers (funding_line, year, currency, budget_minor)
           VALUES ($1, $2, $3, $4) ON CONFLICT (funding_line, year) DO NOTHING""",
        funding_line,
        year,
        currency,
        budget_minor,
    )


async def _ledger(conn: Conn, funding_line: str, year: int, *, lock: bool = False) -> Ledger | None:
    row = await conn.fetchrow(
        f"""SELECT {_LEDGER_COLUMNS} FROM budget_ledgers
            WHERE funding_line = $1 AND year = $2 {"FOR UPDATE" if lock else ""}""",  # noqa: S608 - constants only
        funding_line,
        year,
    )
    return _to_ledger(row) if row else None


async def _commitment(conn: Conn, application_id: UUID) -> _Commitment | None:
    row = await conn.fetchrow(
        f"SELECT {_COMMITMENT_COLUMNS} FROM budget_commitments WHERE application_id = $1",  # noqa: S608 - constant column list
        application_id,
    )
    if row is None:
        return None
    status: CommitmentStatus = "released" if row["status"] == "released" else "committed"
    return _Commitment(
        application_id=row["application_id"],
        funding_line=row["funding_line"],
        year=row["year"],
        currency=currency(row["currency"]),
        amount_minor=row["amount_minor"],
        status=status,
    )


async def _repeated(conn: Conn, found: _Commitment) -> CommitOutcome:
    """The outcome of a commit for an application whose commitment already exists."""
    ledger = await _ledger(conn, found.funding_line, found.year)
    assert ledger is not None
    return CommitOutcome(
        application_id=found.application_id,
        funding_line=found.funding_line,
        year=found.year,
        committed=True,
        reason=None,
        amount=Money.from_minor(found.amount_minor, found.currency),
        available=ledger.available,
        repeated=True,
        commitment_status=found.status,
    )


async def _emit(
    conn: Conn,
    event_type: str,
    payload: BudgetCommitted | BudgetRefused | BudgetReleased,
    application_id: UUID,
    correlation_id: UUID | None,
) -> None:
    await outbox.enqueue(
        conn,
        APPLICATION_EVENTS,
        Envelope(
            type=event_type,
            application_id=application_id,
            correlation_id=correlation_id or uuid4(),
            source=SERVICE,
            payload=payload.model_dump(mode="json"),
        ),
    )


def _to_ledger(row: Any) -> Ledger:
    return Ledger(
        funding_line=row["funding_line"],
        year=row["year"],
        currency=currency(row["currency"]),
        budget_minor=row["budget_minor"],
        committed_minor=row["committed_minor"],
        disbursed_minor=row["disbursed_minor"],
        released_minor=row["released_minor"],
    )
