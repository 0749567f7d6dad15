"""How every service runs: one process with its Kafka consumers, its outbox relay, its Temporal
worker on its own task queue and its HTTP API, started and stopped in one order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import uvicorn
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from shared import asyncapi, db, observability, temporal
from shared.config import Settings, get_settings
from shared.kafka import create_broker
from shared.outbox import OutboxRelay
from shared.topics import ensure_topics

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class ServiceContext:
    name: str
    settings: Settings
    pool: asyncpg.Pool
    broker: KafkaBroker
    temporal: Client


@dataclass(frozen=True)
class ServiceSpec:
    """What a service brings; `shared.runtime` does the rest the same way for all four."""

    name: str
    migrations: Path
    register_subscribers: Callable[[ServiceContext], None]
    build_api: Callable[[ServiceContext], FastAPI]
    workflows: Sequence[type]
    build_activities: Callable[[ServiceContext], Sequence[Callable[..., Any]]]
    # Long-running tasks of the service besides consumers, relay and worker (e.g. a sender
    # loop); started after the broker, cancelled at stop. Optional: most services have none.
    background: Callable[[ServiceContext], Sequence[Coroutine[Any, Any, None]]] | None = None


def configure_logging(settings: Settings, service: str | None = None) -> None:
    """One JSON object per line (`GRANTS_LOG_FORMAT=json`, the default) or plain text, with
    the correlation id of the event or request being handled (shared/observability.py)."""
    if service is not None:
        observability.set_service(service)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(observability.log_handler(settings))
    root.setLevel(settings.log_level)
    # aiokafka is chatty about every rebalance and reconnect.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def build_worker(ctx: ServiceContext, spec: ServiceSpec) -> Worker | None:
    activities = list(spec.build_activities(ctx))
    if not spec.workflows and not activities:
        return None  # nothing of this service's runs in Temporal yet
    return Worker(
        ctx.temporal,
        task_queue=spec.name,
        workflows=list(spec.workflows),
        activities=activities,
        max_cached_workflows=ctx.settings.temporal_workflow_cache,
        workflow_runner=(
            SandboxedWorkflowRunner()
            if ctx.settings.temporal_sandbox
            else UnsandboxedWorkflowRunner()
        ),
        # grants_activity_seconds; the tracing interceptor comes with the client.
        interceptors=[observability.ActivityMetrics()],
    )


async def serve(spec: ServiceSpec, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    observability.set_service(spec.name)
    observability.describe_process(settings)
    # Before the Temporal client: it traces only when this process records spans.
    observability.setup_tracing(spec.name, settings)
    # Migrations on their own connection, before the pool opens.
    await _retry(lambda: db.migrate(settings, spec.name, spec.migrations), "Postgres")
    pool = await _retry(lambda: db.create_pool(settings, spec.name), "Postgres")
    await ensure_topics(settings)
    broker = create_broker(settings, spec.name)
    client = await temporal.connect(settings)
    ctx = ServiceContext(spec.name, settings, pool, broker, client)
    spec.register_subscribers(ctx)
    # What the service publishes, so the broker describes all of it (shared/asyncapi.py).
    asyncapi.register_publishers(broker, spec.name)
    await broker.start()
    relay = OutboxRelay(pool, broker, settings, spec.name)
    worker = build_worker(ctx, spec)
    api = spec.build_api(ctx)
    server = uvicorn.Server(
        uvicorn.Config(
            api,
            host=settings.http_host,
            port=settings.http_port(spec.name),
            log_level="warning",
            access_log=False,
            # Uvicorn's records go through our handler (JSON lines), not its own config.
            log_config=None,
        )
    )
    tasks = [asyncio.create_task(relay.run(), name="outbox-relay")]
    if worker is not None:
        tasks.append(asyncio.create_task(worker.run(), name="temporal-worker"))
    if spec.background is not None:
        for index, coro in enumerate(spec.background(ctx)):
            tasks.append(asyncio.create_task(coro, name=f"{spec.name}-background-{index}"))
    log.info(
        "%s: serving on http://%s:%d", spec.name, settings.http_host, settings.http_port(spec.name)
    )
    try:
        # uvicorn owns SIGINT/SIGTERM: when it returns, everything else stops in order.
        await server.serve()
    finally:
        log.info("%s: stopping", spec.name)
        relay.stop()
        if worker is not None:
            with contextlib.suppress(Exception):
                await worker.shutdown()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await broker.stop()
        await pool.close()
        observability.shutdown_tracing()


async def _retry(make: Callable[[], Awaitable[T]], what: str, attempts: int = 60) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return await make()
        except (OSError, asyncpg.exceptions.CannotConnectNowError) as exc:
            if attempt == attempts:
                raise
            log.warning("%s not ready (%s); retrying", what, type(exc).__name__)
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


def main(spec: ServiceSpec) -> None:
    settings = get_settings()
    configure_logging(settings, spec.name)
    asyncio.run(serve(spec, settings))
