"""Consumer inbox: a consumer records each processed event id in the same transaction as
its effect, so a redelivered event is recognised and skipped."""

from __future__ import annotations

from uuid import UUID

from shared.db import Conn


async def claim(conn: Conn, consumer: str, event_id: UUID) -> bool:
    """True the first time `consumer` sees `event_id`; call inside the effect's transaction."""
    inserted = await conn.fetchval(
        """INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)
           ON CONFLICT DO NOTHING RETURNING true""",
        consumer,
        event_id,
    )
    return bool(inserted)
