"""Review's storage: the only module of the service with SQL."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from shared import outbox
from shared.contracts.money import Money
from shared.events import Envelope
from shared.topics import APPLICATION_EVENTS

# Statuses in which an application still weighs on its advisor's workload.
OPEN_STATUSES = ("in_review", "information_requested", "awaiting_decision")


@dataclass(frozen=True)
class Assignment:
    application_id: UUID
    advisor: str
    funding_line: str
    title: str
    requested: Money
    status: str
    next_deadline: datetime | None
    assigned_at: datetime


class Repository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def assign(
        self,
        *,
        application_id: UUID,
        funding_line: str,
        title: str,
        requested: Money,
        candidates: list[tuple[str, int | None]],
    ) -> str | None:
        """Assign the candidate (advisor id, max open cases) with the fewest open cases.
        Idempotent: an application already assigned keeps its advisor. None when every
        candidate is full."""
        lock = int.from_bytes(
            hashlib.sha256(funding_line.encode()).digest()[:8], "big", signed=True
        )
        async with self._pool.acquire() as conn, conn.transaction():
            # One assignment per line at a time, so two never pick the same "least loaded".
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock)
            existing: str | None = await conn.fetchval(
                "SELECT advisor FROM assignments WHERE application_id = $1", application_id
            )
            if existing is not None:
                return existing
            ids = [c[0] for c in candidates]
            rows = await conn.fetch(
                """SELECT advisor, count(*) AS open FROM assignments
                   WHERE advisor = ANY($1::text[]) AND status = ANY($2::text[])
                   GROUP BY advisor""",
                ids,
                list(OPEN_STATUSES),
            )
            load = {r["advisor"]: r["open"] for r in rows}
            free = [
                (load.get(advisor, 0), position, advisor)
                for position, (advisor, limit) in enumerate(candidates)
                if limit is None or load.get(advisor, 0) < limit
            ]
            if not free:
                return None
            _, _, chosen = min(free)
            await conn.execute(
                """INSERT INTO assignments (application_id, advisor, funding_line, title,
                       requested_minor, currency, status)
                   VALUES ($1, $2, $3, $4, $5, $6, 'in_review')""",
                application_id,
                chosen,
                funding_line,
                title,
                requested.minor_units(),
                requested.currency,
            )
            return chosen

    async def publish(
        self,
        envelope: Envelope,
        *,
        status: str | None,
        next_deadline: datetime | None,
    ) -> None:
        """Publish an event through the outbox and bring the read model along, in one
        transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            if status is not None:
                await conn.execute(
                    """UPDATE assignments SET status = $2, next_deadline = $3, updated_at = now()
                       WHERE application_id = $1""",
                    envelope.application_id,
                    status,
                    next_deadline,
                )
            await outbox.enqueue(conn, APPLICATION_EVENTS, envelope)

    async def assignments(
        self, *, advisor: str | None, status: str | None, limit: int
    ) -> list[Assignment]:
        rows = await self._pool.fetch(
            """SELECT application_id, advisor, funding_line, title, requested_minor, currency,
                      status, next_deadline, assigned_at
               FROM assignments
               WHERE ($1::text IS NULL OR advisor = $1) AND ($2::text IS NULL OR status = $2)
               ORDER BY next_deadline NULLS LAST, assigned_at LIMIT $3""",
            advisor,
            status,
            limit,
        )
        return [
            Assignment(
                application_id=r["application_id"],
                advisor=r["advisor"],
                funding_line=r["funding_line"],
                title=r["title"],
                requested=Money.from_minor(r["requested_minor"], r["currency"]),
                status=r["status"],
                next_deadline=r["next_deadline"],
                assigned_at=r["assigned_at"],
            )
            for r in rows
        ]
