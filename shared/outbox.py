"""Transactional outbox: a service writes its state and its outgoing events in one Postgres
transaction (`enqueue`); the relay publishes them to Kafka (acks=all, idempotent producer),
keyed by application id so one application's events stay in order on one partition.

Each row keeps the W3C `traceparent` of the span that wrote it; the relay publishes in a
producer span continuing that trace and sends its `traceparent` as a Kafka header, so the
consumers' spans join the trace of the request or activity that caused the event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from faststream.kafka import KafkaBroker
from opentelemetry.trace import SpanKind

from shared import observability
from shared.config import Settings
from shared.db import Conn
from shared.events import Envelope

log = logging.getLogger(__name__)


async def enqueue(conn: Conn, topic: str, envelope: Envelope) -> None:
    """Record an event to publish; call inside the transaction that writes the state.
    Idempotent per event id, so a retried activity never publishes twice."""
    key = str(envelope.application_id or envelope.event_id)
    await conn.execute(
        """INSERT INTO outbox (event_id, topic, key, event_type, envelope, traceparent)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (event_id) DO NOTHING""",
        envelope.event_id,
        topic,
        key,
        envelope.type,
        envelope.model_dump_json(),
        observability.current_traceparent(),
    )


async def unsent_count(conn: Conn) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    return count


class OutboxRelay:
    """Publishes unsent outbox rows. Safe with several instances: rows are claimed with
    FOR UPDATE SKIP LOCKED and marked sent only after Kafka acknowledged them (acks=all),
    so a crash re-sends at worst (consumers are idempotent), never loses."""

    def __init__(self, pool: asyncpg.Pool, broker: KafkaBroker, settings: Settings, schema: str):
        self._pool = pool
        self._broker = broker
        self._settings = settings
        self._channel = f"{schema}_outbox"
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self.published = 0

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows it sent."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, topic, key, event_type, envelope, traceparent FROM outbox
                   WHERE published_at IS NULL ORDER BY id
                   LIMIT $1 FOR UPDATE SKIP LOCKED""",
                self._settings.outbox_batch_size,
            )
            if not rows:
                return 0
            # Hand every row to the producer in order (per-key order holds: the idempotent
            # producer keeps each partition's sequence), then wait for all the acks (acks=all)
            # at once instead of one round-trip per event.
            acks = [await self._publish(row) for row in rows]
            await asyncio.gather(*acks)
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows],
            )
        self.published += len(rows)
        for row in rows:
            observability.published(row["topic"], row["event_type"])
        return len(rows)

    async def _publish(self, row: asyncpg.Record) -> asyncio.Future[Any]:
        with observability.tracer().start_as_current_span(
            f"publish {row['topic']}",
            context=observability.context_from_traceparent(row["traceparent"]),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": row["topic"],
                "grants.event.type": row["event_type"],
            },
        ):
            headers = {"content-type": "application/json"}
            traceparent = observability.current_traceparent()
            if traceparent is not None:
                headers["traceparent"] = traceparent
            ack: asyncio.Future[Any] = await self._broker.publish(
                row["envelope"].encode(),
                topic=row["topic"],
                key=row["key"].encode(),
                headers=headers,
                no_confirm=True,
            )
            return ack

    async def run(self) -> None:
        listener: PoolConnectionProxy | None = None
        while not self._stopped.is_set():
            try:
                if listener is None or listener.is_closed():
                    listener = await self._pool.acquire()
                    await listener.add_listener(self._channel, self._notified)
                self._wake.clear()
                while await self.publish_pending():
                    pass
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.outbox_poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Postgres or Kafka away: keep the rows, try again shortly.
                log.warning("outbox relay: %s: %s; retrying", type(exc).__name__, exc)
                if listener is not None:
                    with contextlib.suppress(Exception):
                        await self._pool.release(listener)
                    listener = None
                await asyncio.sleep(1)
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.remove_listener(self._channel, self._notified)
                await self._pool.release(listener)

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
