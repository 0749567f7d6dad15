"""`grants tail`: follow the events on Kafka, one line per event (time, type, application,
actor). A consumer of its own unique group that commits nothing, so it never moves any
service's offsets. Payloads are never printed: they carry documents and people's names."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError, KafkaError

from grants_cli.client import STACK_HINT, CliError
from shared.config import Settings


@dataclass(frozen=True)
class EventLine:
    """What `tail` shows of one record."""

    time: str
    type: str
    application_id: str | None
    actor: str | None
    topic: str
    reference: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "type": self.type,
            "application_id": self.application_id,
            "actor": self.actor,
            "topic": self.topic,
            "reference": self.reference,
        }


@dataclass(frozen=True)
class TailFilter:
    type_prefixes: tuple[str, ...] = ()
    application_id: str | None = None

    def accepts(self, line: EventLine) -> bool:
        if self.type_prefixes and not any(line.type.startswith(p) for p in self.type_prefixes):
            return False
        return self.application_id is None or line.application_id == self.application_id


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def describe(topic: str, value: bytes | None) -> EventLine:
    """The line for a record: an event envelope, a dead letter, or something unreadable."""
    try:
        data = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        return EventLine(time="—", type="(not JSON)", application_id=None, actor=None, topic=topic)
    if "reason" in data and "original_topic" in data:
        # A dead letter: its type and where it came from; the reason and the original value
        # may quote the refused input, so neither is shown.
        original_key = _text(data.get("original_key"))
        return EventLine(
            time=_text(data.get("failed_at")) or "—",
            type=f"dead-letter:{_text(data.get('error_type')) or 'unknown'}",
            application_id=original_key,
            actor=_text(data.get("consumer")),
            topic=topic,
        )
    payload = data.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    application_id = _text(data.get("application_id")) or _text(payload.get("application_id"))
    return EventLine(
        time=_text(data.get("occurred_at")) or "—",
        type=_text(data.get("type")) or "(no type)",
        application_id=application_id,
        actor=_text(data.get("actor")) or _text(data.get("source")),
        topic=topic,
        reference=_text(payload.get("reference")),
    )


async def _settle(consumer: AIOKafkaConsumer, deadline: float | None) -> None:
    """Wait (at most until `deadline`, or 30 s) for the partitions to be assigned, and fix
    the starting offset of each."""
    loop = asyncio.get_running_loop()
    until = loop.time() + 30 if deadline is None else deadline
    for _ in range(100_000):
        if consumer.assignment() or loop.time() >= until:
            break
        await asyncio.sleep(0.05)
    for partition in consumer.assignment():
        await consumer.position(partition)


async def tail(
    settings: Settings,
    topics: Sequence[str],
    *,
    from_beginning: bool,
    where: TailFilter,
    emit: Callable[[EventLine], None],
    max_events: int | None = None,
    seconds: float | None = None,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Print matching events until `max_events` were shown, `seconds` passed, or the
    task is cancelled (Ctrl-C); returns how many were shown. `on_ready` is called once the
    consumer has its partitions and knows where it starts: nothing published after that is
    missed."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        # No consumer group: every partition of the topics is read directly, so there is no
        # group to join at start or to leave at Ctrl-C (under load leaving could take longer
        # than a user waits), and no offsets are left behind.
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        client_id="grants-cli",
    )
    try:
        await consumer.start()
    except KafkaConnectionError as exc:
        await consumer.stop()
        raise CliError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {STACK_HINT}") from exc
    except KafkaError as exc:
        await consumer.stop()
        raise CliError(f"Kafka: {type(exc).__name__}: {exc}") from exc
    shown = 0
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    try:
        await _settle(consumer, deadline)
        if on_ready is not None:
            on_ready()
        while max_events is None or shown < max_events:
            wait_ms = 500
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    break
                wait_ms = max(1, min(wait_ms, int(left * 1000)))
            batch = await consumer.getmany(timeout_ms=wait_ms)
            for records in batch.values():
                for record in records:
                    line = describe(record.topic, record.value)
                    if not where.accepts(line):
                        continue
                    emit(line)
                    shown += 1
                    if max_events is not None and shown >= max_events:
                        return shown
        return shown
    finally:
        await consumer.stop()
