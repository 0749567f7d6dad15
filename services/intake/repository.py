"""Intake's storage: the only module of the service with SQL."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID, uuid4

import asyncpg
from pydantic import BaseModel

from services.intake import register
from shared import inbox, outbox
from shared.contracts.application import ApplicationDocument
from shared.contracts.money import Currency, Money
from shared.db import Conn
from shared.events import APPLICATION_SUBMITTED, ApplicationSubmitted, Envelope, parse_payload
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
    ) -> list[ApplicationListing]:
        """Newest first. One fixed query per kind of filter, each served by an index (a single
        `$1 IS NULL OR …` query gets a generic plan that cannot use them); the columns of a
        summary only, not the stored document."""
        if external_ref is not None:
            rows = await self._pool.fetch(
                f"""{_LISTING} WHERE external_ref = $1
                      AND ($2::text IS NULL OR funding_line = $2)
                      AND received_at < COALESCE($3::timestamptz, 'infinity')""",
                external_ref,
                funding_line,
                before,
            )
        elif funding_line is not None:
            rows = await self._pool.fetch(
                f"""{_LISTING} WHERE funding_line = $1
                      AND received_at < COALESCE($2::timestamptz, 'infinity')
                    ORDER BY received_at DESC, id LIMIT $3""",
                funding_line,
                before,
                limit,
            )
        else:
            rows = await self._pool.fetch(
                f"""{_LISTING} WHERE received_at < COALESCE($1::timestamptz, 'infinity')
                    ORDER BY received_at DESC, id LIMIT $2""",
                before,
                limit,
            )
        return [
            ApplicationListing(
                application_id=r["id"],
                external_ref=r["external_ref"],
                title=r["title"],
                funding_line=r["funding_line"],
                received_at=r["received_at"],
            )
            for r in rows
        ]


_LISTING = "SELECT id, external_ref, title, funding_line, received_at FROM applications"


@dataclass(frozen=True)
class ApplicationListing:
    application_id: UUID
    external_ref: str
    title: str
    funding_line: str
    received_at: datetime


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
            # By when each event happened: arrival order is each service's relay order, and
            # two services' relays race (payments' budget.committed could arrive after
            # review's decision.made that followed it). Ties, within one service, by arrival.
            """SELECT event_id, event_type, version, occurred_at, source, actor, payload
               FROM timeline WHERE application_id = $1 ORDER BY occurred_at, seq""",
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


# --- the public project register (rules in services/intake/register.py) ----------------------

REGISTER_CONSUMER = "intake.register"


class RegisterRepository:
    """The register's rows: one per application, folded from its events exactly once each."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def apply(self, envelope: Envelope, payload: BaseModel | None = None) -> bool:
        """Fold one lifecycle event into its application's register row, in one transaction
        with the inbox claim: a redelivered event changes nothing. True when it changed the
        row."""
        if envelope.type not in register.HANDLED:
            return False
        if payload is None:
            payload = parse_payload(envelope)
        application_id = envelope.application_id or getattr(payload, "application_id", None)
        if not isinstance(application_id, UUID) or not register.concerns(envelope.type, payload):
            return False
        async with self._pool.acquire() as conn, conn.transaction():
            if not await inbox.claim(conn, REGISTER_CONSUMER, envelope.event_id):
                return False
            # The row first (if new), then its lock: two events of one application never race.
            await conn.execute(
                "INSERT INTO register (application_id) VALUES ($1) ON CONFLICT DO NOTHING",
                application_id,
            )
            row = await conn.fetchrow(
                "SELECT * FROM register WHERE application_id = $1 FOR UPDATE",
                application_id,
            )
            assert row is not None
            before = _register_state(row)
            after = register.project(before, envelope.type, payload, envelope.occurred_at)
            if after == before:
                return False
            await _write_register(conn, after)
            return True

    async def state(self, application_id: UUID) -> register.RegisterState | None:
        """The stored state, public or not (for operators and tests)."""
        row = await self._pool.fetchrow(
            "SELECT * FROM register WHERE application_id = $1",
            application_id,
        )
        return _register_state(row) if row else None

    async def public(
        self, *, funding_line: str | None = None, code: str | None = None
    ) -> list[register.RegisterState]:
        """The published projects, latest start first."""
        rows = await self._pool.fetch(
            """SELECT * FROM register
                WHERE public
                  AND ($1::text IS NULL OR funding_line = $1)
                  AND ($2::text IS NULL OR code = $2)
                ORDER BY period_start DESC, code, application_id""",
            funding_line,
            code,
        )
        return [_register_state(r) for r in rows]


def _money(minor: int | None, currency: str | None) -> Money | None:
    if minor is None or currency is None:
        return None
    return Money.from_minor(minor, cast(Currency, currency))


def _minor(money: Money | None) -> tuple[int | None, str | None]:
    return (None, None) if money is None else (money.minor_units(), money.currency)


def _register_state(row: Any) -> register.RegisterState:
    facts: register.ProjectFacts | None = None
    total = _money(row["total_minor"], row["total_currency"])
    if row["code"] is not None and total is not None:
        facts = register.ProjectFacts(
            code=row["code"],
            title=row["title"],
            funding_line=row["funding_line"],
            objective=row["objective"],
            main_activities=tuple(row["main_activities"]),
            period_start=row["period_start"],
            period_end=row["period_end"],
            total_budget=total,
            lead_partner=register.Party(
                name=row["lead_partner_name"], country=row["lead_partner_country"]
            ),
            partners=tuple(
                register.Party(name=p["name"], country=p["country"])
                for p in json.loads(row["partners"])
            ),
        )
    return register.RegisterState(
        application_id=row["application_id"],
        facts=facts,
        decided=_money(row["decided_minor"], row["decided_currency"]),
        granted=_money(row["granted_minor"], row["granted_currency"]),
        paid=_money(row["paid_minor"], row["paid_currency"]),
        accepted_at=row["accepted_at"],
        lapsed_at=row["lapsed_at"],
        closed_at=row["closed_at"],
        report_results=row["report_results"],
        report_submitted_at=row["report_submitted_at"],
        approved_results=row["approved_results"],
        closed_results=row["closed_results"],
    )


async def _write_register(conn: Conn, state: register.RegisterState) -> None:
    facts = state.facts
    total_minor, total_currency = _minor(facts.total_budget if facts else None)
    decided_minor, decided_currency = _minor(state.decided)
    granted_minor, granted_currency = _minor(state.granted)
    paid_minor, paid_currency = _minor(state.paid)
    partners = [{"name": p.name, "country": p.country} for p in facts.partners] if facts else []
    await conn.execute(
        """UPDATE register SET code = $2, title = $3, funding_line = $4, objective = $5,
               main_activities = $6, period_start = $7, period_end = $8, total_minor = $9,
               total_currency = $10, lead_partner_name = $11, lead_partner_country = $12,
               partners = $13::jsonb, decided_minor = $14, decided_currency = $15,
               granted_minor = $16, granted_currency = $17, paid_minor = $18,
               paid_currency = $19, accepted_at = $20, lapsed_at = $21, closed_at = $22,
               report_results = $23, report_submitted_at = $24, approved_results = $25,
               closed_results = $26, public = $27, updated_at = now()
           WHERE application_id = $1""",
        state.application_id,
        facts.code if facts else None,
        facts.title if facts else None,
        facts.funding_line if facts else None,
        facts.objective if facts else None,
        list(facts.main_activities) if facts else [],
        facts.period_start if facts else None,
        facts.period_end if facts else None,
        total_minor,
        total_currency,
        facts.lead_partner.name if facts else None,
        facts.lead_partner.country if facts else None,
        json.dumps(partners, ensure_ascii=False),
        decided_minor,
        decided_currency,
        granted_minor,
        granted_currency,
        paid_minor,
        paid_currency,
        state.accepted_at,
        state.lapsed_at,
        state.closed_at,
        state.report_results,
        state.report_submitted_at,
        state.approved_results,
        state.closed_results,
        register.is_public(state),
    )
