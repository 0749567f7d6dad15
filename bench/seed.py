"""Stored applications for the cost curve: rows written straight into the intake schema (as
role intake, with COPY), each with its document and a timeline of three events
(application.submitted, application.screened, review.advisor_assigned), received over the
past year. No workflow is started and nothing goes to Kafka: they are what a year of
applications leaves in the tables the read endpoints and the intake path touch.

Every seeded row's external_ref starts with `bench-seed-`; `--cleanup` removes them (and
their timelines)."""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.common import SEED_PREFIX, Progress, connect_as, seed_documents
from shared.config import Settings

CHUNK = 5000
ADVISORS = ("kari.nordmann", "olav.lie", "marina.ivanova", "sara.johansen")


async def stored_count(settings: Settings) -> dict[str, int]:
    conn = await connect_as(settings, "intake")
    try:
        total = int(await conn.fetchval("SELECT count(*) FROM applications"))
        seeded = int(
            await conn.fetchval(
                "SELECT count(*) FROM applications WHERE external_ref LIKE $1", f"{SEED_PREFIX}%"
            )
        )
        timeline = int(await conn.fetchval("SELECT count(*) FROM timeline"))
    finally:
        await conn.close()
    return {"applications": total, "seeded": seeded, "timeline_rows": timeline}


def _rows(
    count: int, documents: list[dict[str, Any]], rng: random.Random
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    now = datetime.now(UTC)
    applications: list[tuple[Any, ...]] = []
    timeline: list[tuple[Any, ...]] = []
    for _ in range(count):
        doc = dict(rng.choice(documents))
        application_id = uuid.uuid4()
        doc["external_ref"] = f"{SEED_PREFIX}{application_id.hex[:16]}"
        doc["title"] = f"{doc['title']} ({rng.randint(1, 9999)})"
        text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        received = now - timedelta(seconds=rng.uniform(60, 365 * 86400))
        requested = int(Decimal(doc["budget"]["requested"]) * 100)
        correlation = uuid.uuid4()
        applications.append(
            (
                application_id,
                doc["external_ref"],
                doc["funding_line"],
                doc["funding_type"],
                doc["applicant"]["country"],
                doc["budget"]["currency"],
                requested,
                doc["title"],
                text,
                hashlib.sha256(text.encode()).hexdigest(),
                "http",
                "bench-seed",
                correlation,
                received,
            )
        )
        submitted = {
            "application_id": str(application_id),
            "received_at": received.isoformat(),
            "channel": "http",
            "document": doc,
        }
        screened = {
            "application_id": str(application_id),
            "status": "screened",
            "eligible": True,
            "reasons": [],
        }
        assigned = {
            "application_id": str(application_id),
            "status": "in_review",
            "advisor": rng.choice(ADVISORS),
            "review_due": (received + timedelta(days=14)).isoformat(),
        }
        for offset, (event_type, source, payload) in enumerate(
            (
                ("application.submitted", "intake", submitted),
                ("application.screened", "review", screened),
                ("review.advisor_assigned", "review", assigned),
            )
        ):
            timeline.append(
                (
                    uuid.uuid4(),
                    application_id,
                    event_type,
                    1,
                    received + timedelta(seconds=offset),
                    source,
                    None,
                    json.dumps(payload, ensure_ascii=False),
                )
            )
    return applications, timeline


async def seed_to(settings: Settings, target: int, progress: Progress) -> dict[str, Any]:
    """Top the stored applications up to `target` (all applications, seeded or not)."""
    before = await stored_count(settings)
    missing = target - before["applications"]
    began = time.perf_counter()
    if missing > 0:
        rng = random.Random(target)
        documents = seed_documents()
        conn = await connect_as(settings, "intake")
        try:
            done = 0
            while done < missing:
                size = min(CHUNK, missing - done)
                applications, timeline = _rows(size, documents, rng)
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "applications",
                        records=applications,
                        columns=[
                            "id",
                            "external_ref",
                            "funding_line",
                            "funding_type",
                            "applicant_country",
                            "currency",
                            "requested_minor",
                            "title",
                            "document",
                            "document_sha256",
                            "channel",
                            "source",
                            "correlation_id",
                            "received_at",
                        ],
                    )
                    await conn.copy_records_to_table(
                        "timeline",
                        records=timeline,
                        columns=[
                            "event_id",
                            "application_id",
                            "event_type",
                            "version",
                            "occurred_at",
                            "source",
                            "actor",
                            "payload",
                        ],
                    )
                done += size
                if done % 20000 < CHUNK or done == missing:
                    progress(f"seeding: {done}/{missing} applications")
            # VACUUM as well as ANALYZE: rows just copied in have no hint bits and no
            # visibility map, so the first reads of each page would write it and index-only
            # scans would visit the heap. A database that grew over months has had
            # autovacuum's passes; the reads are measured against that, not against the load.
            progress("seeding: VACUUM ANALYZE applications, timeline")
            await conn.execute("VACUUM (ANALYZE) applications")
            await conn.execute("VACUUM (ANALYZE) timeline")
        finally:
            await conn.close()
    after = await stored_count(settings)
    return {
        "target": target,
        "added": max(missing, 0),
        "seconds": round(time.perf_counter() - began, 1),
        "before": before,
        "after": after,
    }


async def cleanup(settings: Settings) -> dict[str, int]:
    """Remove every seeded application and its timeline (and the bench's raw-insert table)."""
    conn = await connect_as(settings, "intake")
    try:
        async with conn.transaction():
            timeline = await conn.execute(
                """DELETE FROM timeline WHERE application_id IN
                       (SELECT id FROM applications WHERE external_ref LIKE $1)""",
                f"{SEED_PREFIX}%",
            )
            applications = await conn.execute(
                "DELETE FROM applications WHERE external_ref LIKE $1", f"{SEED_PREFIX}%"
            )
            await conn.execute("DROP TABLE IF EXISTS bench_raw_insert")
        await conn.execute("ANALYZE applications")
        await conn.execute("ANALYZE timeline")
    finally:
        await conn.close()
    return {
        "applications": int(applications.split()[-1]),
        "timeline_rows": int(timeline.split()[-1]),
    }
