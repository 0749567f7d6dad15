"""Intake's storage: the only module of the service with SQL."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from shared import inbox, outbox
from shared.contracts.application import ApplicationDocument
from shared.contracts.money import Money
from shared.db import Conn
from shared.events import APPLICATION_SUBMITTED, ApplicationSubmitted, Envelope
from shared.topics import APPLICATION_EVENTS

SERVICE = "intake"


class ExternalRefConflict(Exception):
    """The reference was already used for a different application document."""

    def __init__(self, external_ref: str, application_id: UUID) -> None:
        super().__init__(
            f"external_ref {external_ref!r} is already used by application {application_id} "
            "with different content"
        )
        self.application_id = application_id


@dataclass(frozen=True)
class Submission:
    application_id: UUID
    created: bool


@dataclass(frozen=True)
class StoredApplication:
    application_id: UUID
    external_ref: str
    channel: str
    received_at: datetime
    document: ApplicationDocument


def _canonical(document: ApplicationDocument) -> tuple[str, str]:
    data = document.model_dump(mode="json")
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text, hashlib.sha256(text.encode()).hexdigest()


class Repository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def submit(
        self,
        document: ApplicationDocument,
        *,
        channel: str,
        source: str,
        correlation_id: UUID,
        received_at: datetime,
        inbound_event_id: UUID | None = None,
    ) -> Submission:
        """Store a new application and its `application.submitted` event in one transaction.
        A repeat of the same document (same reference, same content) returns the stored one."""
        text, digest = _canonical(document)
        requested = Money(amount=document.budget.requested, currency=document.budget.currency)
        async with self._pool.acquire() as conn, conn.transaction():
            if inbound_event_id is not None and not await inbox.claim(
                conn, "intake.inbound", inbound_event_id
            ):
                return Submission(await self._id_for(conn, document.external_ref), created=False)
            application_id = uuid4()
            inserted = await conn.fetchval(
                """INSERT INTO applications (id, external_ref, funding_line, funding_type,
                       applicant_country, currency, requested_minor, title, document,
                       document_sha256, channel, source, correlation_id, received_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13, $14)
                   ON CONFLICT (external_ref) DO NOTHING RETURNING id""",
                application_id,
                document.external_ref,
                document.funding_line,
                document.funding_type,
                document.applicant.country,
                document.budget.currency,
                requested.minor_units(),
                document.title,
                text,
                digest,
                channel,
                source,
                correlation_id,
                received_at,
            )
            if inserted is None:
                existing = await conn.fetchrow(
                    "SELECT id, document_sha256 FROM applications WHERE external_ref = $1",
                    document.external_ref,
                )
                assert existing is not None
                if existing["document_sha256"] != digest:
                    raise ExternalRefConflict(document.external_ref, existing["id"])
                return Submission(existing["id"], created=False)
            event = ApplicationSubmitted(
                application_id=application_id,
                received_at=received_at,
                channel=channel,
                document=document,
            )
            await outbox.enqueue(
                conn,
                APPLICATION_EVENTS,
                Envelope(
                    type=APPLICATION_SUBMITTED,
                    application_id=application_id,
                    correlation_id=correlation_id,
                    source=SERVICE,
                    payload=event.model_dump(mode="json"),
                ),
            )
            return Submission(application_id, created=True)

    async def _id_for(self, conn: Conn, external_ref: str) -> UUID:
        found: UUID = await conn.fetchval(
            "SELECT id FROM applications WHERE external_ref = $1", external_ref
        )
        return found

    async def get(self, application_id: UUID) -> StoredApplication | None:
        row = await self._pool.fetchrow(
            """SELECT id, external_ref, channel, received_at, document
               FROM applications WHERE id = $1""",
            application_id,
        )
        return _stored(row) if row else None

    async def list(
        self,
        *,
        funding_line: str | None,
        external_ref: str | None,
        limit: int,
        before: datetime | None,
    ) -> list[StoredApplication]:
        rows = await self._pool.fetch(
            """SELECT id, external_ref, channel, received_at, document FROM applications
               WHERE ($1::text IS NULL OR funding_line = $1)
                 AND ($2::timestamptz IS NULL OR received_at < $2)
                 AND ($3::text IS NULL OR external_ref = $3)
               ORDER BY received_at DESC, id LIMIT $4""",
            funding_line,
            before,
            external_ref,
            limit,
        )
        return [_stored(r) for r in rows]


@dataclass(frozen=True)
class TimelineEntry:
    event_id: UUID
    event_type: str
    version: int
    occurred_at: datetime
    source: str
    actor: str | None
    payload: dict[str, Any]


class TimelineRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, envelope: Envelope) -> bool:
        """Add an event to its application's timeline; a redelivered event adds nothing."""
        if envelope.application_id is None:
            return False
        inserted = await self._pool.fetchval(
            """INSERT INTO timeline (event_id, application_id, event_type, version, occurred_at,
                   source, actor, payload)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
               ON CONFLICT (event_id) DO NOTHING RETURNING true""",
            envelope.event_id,
            envelope.application_id,
            envelope.type,
            envelope.version,
            envelope.occurred_at,
            envelope.source,
            envelope.actor,
            json.dumps(envelope.payload, ensure_ascii=False),
        )
        return bool(inserted)

    async def timeline(self, application_id: UUID) -> list[TimelineEntry]:
        rows = await self._pool.fetch(
            """SELECT event_id, event_type, version, occurred_at, source, actor, payload
               FROM timeline WHERE application_id = $1 ORDER BY seq""",
            application_id,
        )
        return [
            TimelineEntry(
                event_id=r["event_id"],
                event_type=r["event_type"],
                version=r["version"],
                occurred_at=r["occurred_at"],
                source=r["source"],
                actor=r["actor"],
                payload=json.loads(r["payload"]),
            )
            for r in rows
        ]


def _stored(row: Any) -> StoredApplication:
    return StoredApplication(
        application_id=row["id"],
        external_ref=row["external_ref"],
        channel=row["channel"],
        received_at=row["received_at"],
        document=ApplicationDocument.model_validate_json(row["document"]),
    )
