"""Raw ceilings of the servers the pipeline runs on, measured with plain clients against the
very same Temporal, Kafka and Postgres:

- B_T: a no-op workflow, and a workflow with one no-op activity, started and awaited by a
  client in closed loop while a plain Python worker (in this process) runs them;
- B_K: aiokafka produce -> consume of messages the size of an `application.submitted`
  envelope, pipelined (the broker's ceiling), and one by one with `send_and_wait` (the rate of
  a producer that waits for every acknowledgement);
- B_P: asyncpg single-row INSERT + COMMIT (BEGIN/INSERT/COMMIT, as the services write),
  closed loop at concurrency 1 and N.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from temporalio.client import Client
from temporalio.worker import Worker

from bench.common import (
    Progress,
    closed_loop,
    connect_as,
    fresh_document,
    latency_ms,
    pool_as,
    rate,
)
from bench.noop import NoopWorkflow, OneActivityWorkflow, noop_activity
from shared.config import Settings
from shared.contracts.application import ApplicationDocument
from shared.events import APPLICATION_SUBMITTED, ApplicationSubmitted, Envelope

RAW_TOPIC = "bench.raw"
RAW_TABLE = "bench_raw_insert"


def project_message() -> bytes:
    """An `application.submitted` envelope of the pipeline's document, as the outbox relay
    publishes it: the project's typical message."""
    doc = ApplicationDocument.model_validate(fresh_document(f"bench-size-{uuid.uuid4()}"))
    application_id = uuid.uuid4()
    event = ApplicationSubmitted(
        application_id=application_id,
        received_at=Envelope(type="x", payload={}).occurred_at,
        channel="http",
        document=doc,
    )
    envelope = Envelope(
        type=APPLICATION_SUBMITTED,
        application_id=application_id,
        source="intake",
        payload=event.model_dump(mode="json"),
    )
    return envelope.model_dump_json().encode()


# --- B_T --------------------------------------------------------------------------------------


async def temporal_ceiling(
    settings: Settings,
    progress: Progress,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    max_operations: int,
) -> dict[str, Any]:
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    task_queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    out: dict[str, Any] = {
        "concurrency": concurrency,
        "task_queue": task_queue,
        "worker": "temporalio Python SDK, default converter and sandbox, in the bench process",
    }
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[NoopWorkflow, OneActivityWorkflow],
        activities=[noop_activity],
    ):
        for key, workflow_run in (
            ("noop_workflow", NoopWorkflow.run),
            ("one_activity_workflow", OneActivityWorkflow.run),
        ):

            async def one(run: Any = workflow_run, kind: str = key) -> None:
                await client.execute_workflow(
                    run, id=f"bench-{kind}-{uuid.uuid4()}", task_queue=task_queue
                )

            progress(f"B_T {key}: warm-up {warmup:.0f}s, then {duration:.0f}s at c={concurrency}")
            await closed_loop(
                one, concurrency=concurrency, duration=warmup, max_operations=max_operations
            )
            result = await closed_loop(
                one, concurrency=concurrency, duration=duration, max_operations=max_operations
            )
            out[key] = result.summary()
            progress(f"B_T {key}: {out[key]['per_second']} workflows/s")
    return out


# --- B_K --------------------------------------------------------------------------------------


def _producer(settings: Settings) -> AIOKafkaProducer:
    # The settings of the services' producer (shared/kafka.py): acks=all, idempotent, linger 5.
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=settings.kafka_max_message_bytes,
    )


async def _ensure_topic(settings: Settings) -> list[int]:
    """Create the bench's topic (the broker does not auto-create); its partition numbers."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        if RAW_TOPIC not in set(await admin.list_topics()):
            await admin.create_topics(
                [
                    NewTopic(
                        name=RAW_TOPIC,
                        num_partitions=settings.kafka_partitions,
                        replication_factor=settings.kafka_replication_factor,
                    )
                ]
            )
        for _ in range(50):
            described = await admin.describe_topics([RAW_TOPIC])
            partitions = [int(p["partition"]) for t in described for p in t.get("partitions") or []]
            if partitions:
                return sorted(partitions)
            await asyncio.sleep(0.2)
        raise RuntimeError(f"topic {RAW_TOPIC} has no partitions")
    finally:
        await admin.close()


async def _delete_topic(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics([RAW_TOPIC])
    finally:
        await admin.close()


async def kafka_ceiling(
    settings: Settings,
    progress: Progress,
    *,
    duration: float,
    max_messages: int,
    in_flight: int = 2000,
) -> dict[str, Any]:
    message = project_message()
    partitions = await _ensure_topic(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    producer = _producer(settings)
    await consumer.start()
    await producer.start()
    out: dict[str, Any] = {"message_bytes": len(message), "partitions": settings.kafka_partitions}
    try:
        tps = [TopicPartition(RAW_TOPIC, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)

        # Pipelined: as fast as the broker takes it, at most `in_flight` unacknowledged.
        progress(f"B_K: pipelined produce -> consume, {len(message)} B messages, {duration:.0f}s")
        received: list[float] = []
        sent = 0
        done_producing = asyncio.Event()

        async def consume() -> None:
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                now = time.time()
                for records in batch.values():
                    for record in records:
                        (t_sent,) = struct.unpack(">d", dict(record.headers)["t"])
                        received.append(now - t_sent)
                if done_producing.is_set() and len(received) >= sent:
                    return

        consumer_task = asyncio.create_task(consume())
        window = asyncio.Semaphore(in_flight)
        pending: set[asyncio.Future[Any]] = set()

        def settled(future: asyncio.Future[Any]) -> None:
            pending.discard(future)
            window.release()

        first = time.time()
        stop_at = time.perf_counter() + duration
        while time.perf_counter() < stop_at and sent < max_messages:
            await window.acquire()
            future = await producer.send(
                RAW_TOPIC,
                message,
                key=str(sent % 1024).encode(),
                headers=[("t", struct.pack(">d", time.time()))],
            )
            sent += 1
            pending.add(future)
            future.add_done_callback(settled)
        if pending:
            await asyncio.gather(*pending)
        produced_at = time.time()
        done_producing.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consumer_task, timeout=60)
        consumer_task.cancel()
        consumed_at = time.time()
        out["pipelined"] = {
            "sent": sent,
            "received": len(received),
            "produce_per_second": rate(sent, produced_at - first),
            "per_second": rate(len(received), consumed_at - first),
            "mb_per_second": round(len(received) * len(message) / (consumed_at - first) / 1e6, 2),
            "in_flight": in_flight,
            "latency_ms": latency_ms(received),
        }
        progress(f"B_K pipelined: {out['pipelined']['per_second']} messages/s end to end")

        # One by one, each send awaited: bound by the acknowledgement's round trip.
        sequential = duration / 2
        progress(f"B_K: send_and_wait one at a time, {sequential:.0f}s")
        times: list[float] = []
        stop_at = time.perf_counter() + sequential
        begin = time.perf_counter()
        while time.perf_counter() < stop_at and len(times) < max_messages:
            t0 = time.perf_counter()
            await producer.send_and_wait(
                RAW_TOPIC, message, key=b"k", headers=[("t", struct.pack(">d", time.time()))]
            )
            times.append(time.perf_counter() - t0)
        out["send_and_wait_one_by_one"] = {
            "per_second": rate(len(times), time.perf_counter() - begin),
            "latency_ms": latency_ms(times),
            "linger_ms": 5,
        }
        progress(f"B_K one by one: {out['send_and_wait_one_by_one']['per_second']} messages/s")
    finally:
        await producer.stop()
        await consumer.stop()
        await _delete_topic(settings)
    return out


# --- B_P --------------------------------------------------------------------------------------


async def postgres_ceiling(
    settings: Settings,
    progress: Progress,
    *,
    concurrency: int,
    duration: float,
    max_operations: int,
) -> dict[str, Any]:
    payload = project_message().decode()
    conn = await connect_as(settings, "intake")
    try:
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {RAW_TABLE} (
                    id bigserial PRIMARY KEY,
                    payload jsonb NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now())"""
        )
        settings_rows = await conn.fetch(
            """SELECT name, setting FROM pg_settings
               WHERE name IN ('synchronous_commit', 'fsync', 'wal_sync_method',
                              'shared_buffers', 'max_connections', 'commit_delay')"""
        )
    finally:
        await conn.close()
    out: dict[str, Any] = {
        "table": f"intake.{RAW_TABLE} (dropped afterwards)",
        "row_bytes": len(payload),
        "server_settings": {r["name"]: r["setting"] for r in settings_rows},
    }
    pool = await pool_as(settings, "intake", concurrency)
    try:

        async def one() -> None:
            async with pool.acquire() as c, c.transaction():
                # RAW_TABLE is this module's constant, not input.
                await c.execute(f"INSERT INTO {RAW_TABLE} (payload) VALUES ($1::jsonb)", payload)  # noqa: S608

        for level in sorted({1, concurrency}):
            progress(f"B_P: insert + commit, c={level}, {duration:.0f}s")
            result = await closed_loop(
                one, concurrency=level, duration=duration, max_operations=max_operations
            )
            out[f"concurrency_{level}"] = result.summary()
            progress(f"B_P c={level}: {out[f'concurrency_{level}']['per_second']} commits/s")
    finally:
        async with pool.acquire() as c:
            await c.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        await pool.close()
    return out
