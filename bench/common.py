"""What every part of the bench shares: the stack's addresses (all from `Settings`, that is the
`GRANTS_*` environment), bearer tokens, documents, statistics and progress output."""

from __future__ import annotations

import asyncio
import copy
import json
import math
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from shared.auth import Role, issue_token
from shared.config import Settings

DATA = Path(__file__).resolve().parent / "data"
RESULTS = Path(__file__).resolve().parent / "results"

# Applications the bench stores directly (no workflow, no events on Kafka): removable with
# `--cleanup`. Applications it submits through the pipeline are ordinary applications.
SEED_PREFIX = "bench-seed-"
RUN_PREFIX = "bench-run-"

# The document every pipeline run submits: a small UD-PROJECT grant, decided by the head of
# section, eligible, e-mail acknowledgement only.
PIPELINE_DOCUMENT = "small-grant.json"
# Tokens outlive the longest run.
TOKEN_TTL = 12 * 3600


def load_document(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return data


def seed_documents() -> list[dict[str, Any]]:
    return [load_document(p.name) for p in sorted(DATA.glob("*.json"))]


def fresh_document(external_ref: str, name: str = PIPELINE_DOCUMENT) -> dict[str, Any]:
    doc = copy.deepcopy(load_document(name))
    doc["external_ref"] = external_ref
    return doc


def run_tag() -> str:
    return uuid.uuid4().hex[:8]


def service_url(settings: Settings, service: str) -> str:
    return f"http://{settings.http_host}:{settings.http_port(service)}"


def token(
    settings: Settings, role: Role, sub: str, *, org: str | None = None, sys: str | None = None
) -> str:
    return issue_token(settings, sub=sub, role=role, org=org, sys=sys, ttl_seconds=TOKEN_TTL)


def bearer(settings: Settings, role: Role, sub: str, *, org: str | None = None) -> dict[str, str]:
    return {"authorization": f"Bearer {token(settings, role, sub, org=org)}"}


def kafka_auth(settings: Settings, role: Role, sub: str, sys: str) -> list[tuple[str, bytes]]:
    """The header a producing system sends with a command event."""
    return [("authorization", f"Bearer {token(settings, role, sub, sys=sys)}".encode())]


def operator(settings: Settings) -> dict[str, str]:
    return bearer(settings, "operator", "bench.operator")


async def connect_as(settings: Settings, role: str) -> asyncpg.Connection:
    """A connection as one of the services' roles, its schema first on the search path."""
    return await asyncpg.connect(
        host=settings.pg_host,
        port=settings.pg_port,
        database=settings.pg_database,
        user=role,
        password=settings.pg_password(role),
        ssl=settings.pg_ssl(),
        server_settings={"search_path": role, "application_name": f"bench-{role}"},
    )


async def pool_as(settings: Settings, role: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        host=settings.pg_host,
        port=settings.pg_port,
        database=settings.pg_database,
        user=role,
        password=settings.pg_password(role),
        ssl=settings.pg_ssl(),
        min_size=1,
        max_size=size,
        server_settings={"search_path": role, "application_name": f"bench-{role}"},
    )
    assert pool is not None
    return pool


# --- statistics -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_ms(seconds: Iterable[float]) -> dict[str, float | int | None]:
    """n, p50, p95, p99, max and mean of latencies given in seconds, in milliseconds."""
    values = list(seconds)

    def ms(x: float) -> float | None:
        return None if math.isnan(x) else round(x * 1000, 1)

    return {
        "n": len(values),
        "p50": ms(percentile(values, 50)),
        "p95": ms(percentile(values, 95)),
        "p99": ms(percentile(values, 99)),
        "max": ms(max(values) if values else math.nan),
        "mean": ms(sum(values) / len(values) if values else math.nan),
    }


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else 0.0


# --- progress and time budget -----------------------------------------------------------------


class Progress:
    """Progress lines on stderr (the table goes to stdout), with the time since the start."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __call__(self, message: str) -> None:
        print(f"[{self.elapsed():7.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class Budget:
    """The whole run's time limit: phases that would not fit are skipped, and say so."""

    seconds: float
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = time.monotonic()

    def remaining(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def allows(self, needed: float) -> bool:
        return self.remaining() >= needed


# --- load shapes ------------------------------------------------------------------------------


@dataclass
class LoopResult:
    """A closed loop's outcome: latencies (seconds) of the operations that succeeded."""

    latencies: list[float]
    errors: dict[str, int]
    seconds: float

    @property
    def ok(self) -> int:
        return len(self.latencies)

    def summary(self) -> dict[str, Any]:
        return {
            "per_second": rate(self.ok, self.seconds),
            "ok": self.ok,
            "errors": dict(self.errors),
            "seconds": round(self.seconds, 2),
            "latency_ms": latency_ms(self.latencies),
        }


async def closed_loop(
    operation: Callable[[], Awaitable[None]],
    *,
    concurrency: int,
    duration: float,
    max_operations: int,
) -> LoopResult:
    """`concurrency` workers each run `operation` back to back until `duration` seconds have
    passed or `max_operations` were started; the rate is over the time until the last one
    finished."""
    latencies: list[float] = []
    errors: dict[str, int] = defaultdict(int)
    started = 0
    begin = time.perf_counter()
    stop_at = begin + duration

    async def worker() -> None:
        nonlocal started
        while time.perf_counter() < stop_at and started < max_operations:
            started += 1
            t0 = time.perf_counter()
            try:
                await operation()
            except Exception as exc:
                errors[type(exc).__name__] += 1
                await asyncio.sleep(0.05)  # a failing server is not hammered
            else:
                latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoopResult(latencies, dict(errors), time.perf_counter() - begin)
