"""Notifications' storage: the only module of the service with SQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.notifications.milestones import Milestone, channels_for
from shared import inbox
from shared.contracts.application import Contact

# Postgres NOTIFY channel the deliveries trigger (migration 0002) signals on insert.
WAKE_CHANNEL = "notifications_deliveries"


@dataclass(frozen=True)
class Delivery:
    id: int
    application_id: UUID
    milestone: str
    channel: str
    language: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class Claimed:
    """A delivery claimed for sending, with what it takes to render and address it.
    Holds personal data: never log it whole."""

    id: int
    application_id: UUID
    milestone: str
    template: str
    channel: str
    language: str
    attempts: int
    context: dict[str, Any]
    first_name: str
    full_name: str
    email: str
    phone: str
    external_ref: str | None
    title: str | None


@dataclass(frozen=True)
class ApplicationInfo:
    external_ref: str
    title: str


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
        application: ApplicationInfo | None,
        milestone: Milestone,
        now: datetime,
    ) -> int:
        """Record the deliveries a milestone calls for, in one transaction with the inbox
        claim; a repeated event (same id) or the same milestone again (same key) records
        nothing. Returns how many new deliveries were recorded."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await inbox.claim(conn, consumer, event_id):
                return 0
            if contact is not None:
                await conn.execute(
                    """INSERT INTO contacts (application_id, first_name, full_name, email, phone,
                           language, sms_opt_out, external_ref, title)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                       ON CONFLICT (application_id) DO NOTHING""",
                    application_id,
                    contact.first_name,
                    contact.name,
                    str(contact.email),
                    contact.phone,
                    contact.language,
                    contact.sms_opt_out,
                    application.external_ref if application else None,
                    application.title if application else None,
                )
            known = await conn.fetchrow(
                "SELECT language, sms_opt_out FROM contacts WHERE application_id = $1",
                application_id,
            )
            if known is None:
                raise LookupError(f"no contact known for application {application_id}")
            context = json.dumps(milestone.context, ensure_ascii=False)
            recorded = 0
            for channel in channels_for(milestone, known["sms_opt_out"]):
                inserted = await conn.fetchval(
                    """INSERT INTO deliveries (application_id, milestone, channel, language,
                           event_id, template, context, next_attempt_at, created_at, updated_at)
                       VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $8, $8)
                       ON CONFLICT (application_id, milestone, channel) DO NOTHING
                       RETURNING id""",
                    application_id,
                    milestone.key,
                    channel,
                    known["language"],
                    event_id,
                    milestone.template,
                    context,
                    now,
                )
                recorded += inserted is not None
            return recorded

    async def claim(self, *, now: datetime, lease_until: datetime, limit: int) -> list[Claimed]:
        """Claim due deliveries for sending: pending ones whose time has come, and those
        whose sender's lease expired (it died mid-send). SKIP LOCKED: two instances never
        claim the same row; the lease keeps it theirs until `lease_until`."""
        rows = await self._pool.fetch(
            """WITH due AS (
                   SELECT id FROM deliveries
                   WHERE (status = 'pending' AND next_attempt_at <= $1)
                      OR (status = 'sending' AND claimed_until <= $1)
                   ORDER BY next_attempt_at, id
                   LIMIT $3
                   FOR UPDATE SKIP LOCKED)
               UPDATE deliveries d
                  SET status = 'sending', claimed_until = $2, attempts = d.attempts + 1,
                      updated_at = $1
                 FROM due, contacts c
                WHERE d.id = due.id AND c.application_id = d.application_id
            RETURNING d.id, d.application_id, d.milestone, d.template, d.channel, d.language,
                      d.attempts, d.context, c.first_name, c.full_name, c.email, c.phone,
                      c.external_ref, c.title""",
            now,
            lease_until,
            limit,
        )
        return [Claimed(**{**dict(r), "context": json.loads(r["context"])}) for r in rows]

    async def mark_sent(self, delivery_id: int, *, now: datetime, provider_id: str) -> None:
        await self._pool.execute(
            """UPDATE deliveries
                  SET status = 'sent', sent_at = $2, provider_id = $3, claimed_until = NULL,
                      last_error = NULL, updated_at = $2
                WHERE id = $1 AND status = 'sending'""",
            delivery_id,
            now,
            provider_id,
        )

    async def mark_retry(
        self, delivery_id: int, *, now: datetime, next_attempt_at: datetime, error: str
    ) -> None:
        # Only while still ours to settle: a row another sender already marked sent stays so.
        await self._pool.execute(
            """UPDATE deliveries
                  SET status = 'pending', next_attempt_at = $3, last_error = $4,
                      claimed_until = NULL, updated_at = $2
                WHERE id = $1 AND status = 'sending'""",
            delivery_id,
            now,
            next_attempt_at,
            error,
        )

    async def mark_failed(self, delivery_id: int, *, now: datetime, error: str) -> None:
        await self._pool.execute(
            """UPDATE deliveries
                  SET status = 'failed', last_error = $3, claimed_until = NULL, updated_at = $2
                WHERE id = $1 AND status = 'sending'""",
            delivery_id,
            now,
            error,
        )

    async def list(
        self,
        *,
        application_id: UUID | None,
        status: str | None,
        channel: str | None,
        limit: int,
    ) -> list[Delivery]:
        rows = await self._pool.fetch(
            """SELECT id, application_id, milestone, channel, language, status, attempts,
                      CASE WHEN status IN ('pending', 'sending') THEN next_attempt_at END
                          AS next_attempt_at,
                      last_error, created_at, sent_at
               FROM deliveries
               WHERE ($1::uuid IS NULL OR application_id = $1)
                 AND ($2::text IS NULL OR status = $2)
                 AND ($3::text IS NULL OR channel = $3)
               ORDER BY created_at DESC, id DESC LIMIT $4""",
            application_id,
            status,
            channel,
            limit,
        )
        return [Delivery(**dict(r)) for r in rows]
