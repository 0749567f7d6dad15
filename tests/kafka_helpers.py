"""Talking to the real Kafka from tests: publish envelopes, read a topic from the start."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.config import Settings


async def publish(
    settings: Settings,
    topic: str,
    value: bytes,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def find_record(
    settings: Settings,
    topic: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 30.0,
) -> dict[str, Any]:
    """The first JSON record on `topic` (read from the start) that satisfies `predicate`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"test-{uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.subscribe([topic])
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    try:
                        data = json.loads(record.value)
                    except ValueError:
                        continue
                    if isinstance(data, dict) and predicate(data):
                        return data
        raise AssertionError(f"no matching record on {topic} within {timeout}s")
    finally:
        await consumer.stop()


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        offsets = await consumer.end_offsets(partitions)
        return {tp.partition: off for tp, off in offsets.items()}
    finally:
        await consumer.stop()


# --- Bad-input helpers: many messages at once, to one partition, and their dead letters. ---


async def publish_batch(
    settings: Settings,
    topic: str,
    messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]] | None]],
    partition: int | None = None,
    *,
    compression_type: str | None = None,
    max_request_size: int = 1_048_576,
) -> None:
    """Publish `messages` (key, value, headers) in this order, all to `partition` when given
    (so one consumer sees them one after the other)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        compression_type=compression_type,
        max_request_size=max_request_size,
    )
    await producer.start()
    try:
        for key, value, headers in messages:
            await producer.send_and_wait(
                topic, value, key=key, headers=headers, partition=partition
            )
    finally:
        await producer.stop()


async def partitions_of(settings: Settings, topic: str) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        return sorted(await producer.partitions_for(topic))
    finally:
        await producer.stop()


async def latest_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The end offset of every partition of `topic` (like `end_offsets`, also when the
    consumer has no metadata for the topic yet)."""
    partitions = [TopicPartition(topic, p) for p in await partitions_of(settings, topic)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"test-{uuid4()}",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        offsets = await consumer.end_offsets(partitions)
        return {tp.partition: off for tp, off in offsets.items()}
    finally:
        await consumer.stop()


async def records_by_key(
    settings: Settings,
    topic: str,
    keys: set[str],
    since: dict[int, int] | None = None,
    timeout: float = 30.0,
) -> dict[str, dict[str, Any]]:
    """The JSON records on `topic` (after the offsets `since`, or from the start) whose
    `original_key` is one of `keys`, the first per key; returns when every key is found or
    after `timeout` seconds with what was found."""
    partitions = [TopicPartition(topic, p) for p in await partitions_of(settings, topic)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"test-{uuid4()}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: dict[str, dict[str, Any]] = {}
    try:
        consumer.assign(partitions)
        for tp in partitions:
            if since is not None and tp.partition in since:
                consumer.seek(tp, since[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)
        deadline = asyncio.get_running_loop().time() + timeout
        while keys - found.keys() and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    try:
                        data = json.loads(record.value)
                    except ValueError:
                        continue
                    key = data.get("original_key") if isinstance(data, dict) else None
                    if key in keys and key not in found:
                        found[key] = data
        return found
    finally:
        await consumer.stop()


async def create_scratch_topics(settings: Settings, *names: str) -> None:
    """Topics of one partition for a test's own consumer (the broker does not auto-create)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=n, num_partitions=1, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def delete_scratch_topics(settings: Settings, *names: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()
