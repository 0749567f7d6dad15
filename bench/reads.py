"""The read side at a given number of stored applications: latency of the list, search and
timeline endpoints (what operators and portals call), measured while the pipeline is idle,
each endpoint in a closed loop of a few concurrent callers on ids and references drawn from
the stored applications. Also Temporal's visibility search, the operators' saved queries."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
from temporalio.client import Client

from bench.common import Progress, connect_as, latency_ms, operator, rate, service_url
from shared.config import Settings


async def _sample(settings: Settings, count: int) -> list[tuple[Any, str, datetime]]:
    conn = await connect_as(settings, "intake")
    try:
        rows = await conn.fetch(
            "SELECT id, external_ref, received_at FROM applications ORDER BY random() LIMIT $1",
            count,
        )
    finally:
        await conn.close()
    return [(r["id"], r["external_ref"], r["received_at"]) for r in rows]


async def _load(
    call: Callable[[], Awaitable[None]], requests: int, concurrency: int
) -> dict[str, Any]:
    """`requests` calls by `concurrency` callers, back to back, after a few uncounted ones:
    the first call on each pooled connection prepares its statement, once per process."""
    for _ in range(min(20, max(requests // 10, 1))):
        with contextlib.suppress(Exception):
            await call()
    latencies: list[float] = []
    errors = 0
    remaining = requests
    began = time.perf_counter()

    async def caller() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            try:
                await call()
            except Exception:
                errors += 1
            else:
                latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return {
        "latency_ms": latency_ms(latencies),
        "per_second": rate(len(latencies), time.perf_counter() - began),
        "errors": errors,
    }


async def measure(
    settings: Settings,
    progress: Progress,
    temporal: Client,
    *,
    requests: int,
    concurrency: int,
) -> dict[str, Any]:
    sample = await _sample(settings, max(requests, 50))
    if not sample:
        return {"skipped": "no stored applications"}
    rng = random.Random(len(sample))
    intake = httpx.AsyncClient(
        base_url=service_url(settings, "intake"), headers=operator(settings), timeout=60
    )
    notifications = httpx.AsyncClient(
        base_url=service_url(settings, "notifications"), headers=operator(settings), timeout=60
    )
    review = httpx.AsyncClient(
        base_url=service_url(settings, "review"), headers=operator(settings), timeout=60
    )

    async def get(client: httpx.AsyncClient, path: str, params: dict[str, Any]) -> None:
        response = await client.get(path, params=params)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")

    def pick() -> tuple[Any, str, datetime]:
        return rng.choice(sample)

    async def temporal_search() -> None:
        found = 0
        async for _ in temporal.list_workflows(
            'WorkflowType = "ApplicationLifecycle" AND ApplicationStatus = "in_review"',
            limit=50,
            page_size=50,
        ):
            found += 1

    calls: dict[str, Callable[[], Awaitable[None]]] = {
        "GET /applications (newest 50)": lambda: get(intake, "/applications", {"limit": 50}),
        "GET /applications?funding_line&before (a page)": lambda: get(
            intake,
            "/applications",
            {"funding_line": "UD-PROJECT", "before": pick()[2].isoformat(), "limit": 50},
        ),
        "GET /applications?external_ref (search)": lambda: get(
            intake, "/applications", {"external_ref": pick()[1]}
        ),
        "GET /applications/{id}/timeline": lambda: get(
            intake, f"/applications/{pick()[0]}/timeline", {}
        ),
        "GET /applications/{id}": lambda: get(intake, f"/applications/{pick()[0]}", {}),
        "GET review /assignments?status=in_review": lambda: get(
            review, "/assignments", {"status": "in_review", "limit": 50}
        ),
        "GET notifications /deliveries (newest 100)": lambda: get(
            notifications, "/deliveries", {"limit": 100}
        ),
        "Temporal visibility: in_review lifecycles (50)": temporal_search,
    }
    out: dict[str, Any] = {}
    try:
        for name, call in calls.items():
            out[name] = await _load(call, requests, concurrency)
        worst = max(out.items(), key=lambda kv: kv[1]["latency_ms"]["p99"] or 0)
        progress(
            f"reads: {len(calls)} endpoints x {requests} requests; slowest p99 "
            f"{worst[1]['latency_ms']['p99']} ms ({worst[0]})"
        )
    finally:
        await intake.aclose()
        await notifications.aclose()
        await review.aclose()
    return {"concurrency": concurrency, "requests_each": requests, "endpoints": out}
