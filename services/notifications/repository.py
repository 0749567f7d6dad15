"""Notifications' storage: the only module of the service with SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from shared import inbox
from shared.contracts.application import Contact


@dataclass(frozen=True)
class Delivery:
    id: int
    application_id: UUID
    milestone: str
    channel: str
    language: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class Repository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(
        self,
        *,
        consumer: str,
        event_id: UUID,
        application_id: UUID,
        contact: Contact | None,
        milestone: str,
        channels: list[str],
    ) -> int:
        """Record the deliveries an event calls for; a repeated event records nothing.
        Returns how many new deliveries were recorded."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await inbox.claim(conn, consumer, event_id):
                return 0
            if contact is not None:
                await conn.execute(
                    """INSERT INTO contacts (application_id, first_name, full_name, email, phone,
                           language, sms_opt_out)
                       VALUES ($1, $2, $3, $4, $5, $6, $7)
                       ON CONFLICT (application_id) DO NOTHING""",
                    application_id,
                    contact.first_name,
                    contact.name,
                    str(contact.email),
                    contact.phone,
                    contact.language,
                    contact.sms_opt_out,
                )
            language = await conn.fetchval(
                "SELECT language FROM contacts WHERE application_id = $1", application_id
            )
            if language is None:
                raise LookupError(f"no contact known for application {application_id}")
            recorded = 0
            for channel in channels:
                inserted = await conn.fetchval(
                    """INSERT INTO deliveries
                           (application_id, milestone, channel, language, event_id)
                       VALUES ($1, $2, $3, $4, $5)
                       ON CONFLICT (application_id, milestone, channel) DO NOTHING
                       RETURNING id""",
                    application_id,
                    milestone,
                    channel,
                    language,
                    event_id,
                )
                recorded += inserted is not None
            return recorded

    async def list(
        self, *, application_id: UUID | None, status: str | None, limit: int
    ) -> list[Delivery]:
        rows = await self._pool.fetch(
            """SELECT id, application_id, milestone, channel, language, status, attempts,
                      last_error, created_at, sent_at
               FROM deliveries
               WHERE ($1::uuid IS NULL OR application_id = $1)
                 AND ($2::text IS NULL OR status = $2)
               ORDER BY created_at DESC, id DESC LIMIT $3""",
            application_id,
            status,
            limit,
        )
        return [Delivery(**dict(r)) for r in rows]
