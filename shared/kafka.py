"""Kafka broker factory and the consumer wrapper every service's subscribers use.

Ack policy: offsets are committed after a message is processed, never before. A message that
cannot be parsed (bad JSON, bad UTF-8, unknown type/version, invalid payload) goes straight to
the dead-letter topic with the reason. A handler failure is retried; transient failures
(Postgres, Temporal or Kafka away) forever, others up to `kafka_max_attempts`, then
dead-lettered. Either way the consumer keeps consuming.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import BaseModel, ValidationError
from temporalio.service import RPCError, RPCStatusCode

from shared import asyncapi, observability
from shared.auth import (
    Forbidden,
    Unauthenticated,
    audit_refusal,
    principal_from_headers,
    set_kafka_principal,
)
from shared.config import Settings
from shared.events import Envelope, UnknownEventType, parse_payload
from shared.topics import dead_letter_topic

log = logging.getLogger(__name__)

Handler = Callable[[Envelope, BaseModel], Awaitable[None]]


def create_broker(settings: Settings, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=settings.kafka_max_message_bytes,
        logger=logging.getLogger(f"{client_id}.kafka"),
    )


# The JSON escape for NUL: `\u0000` preceded by an even number of backslashes (an odd number
# would make it the literal text "\u0000", which is fine).
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class BadMessage(ValueError):
    """A message no retry can fix."""


def is_transient(exc: BaseException) -> bool:
    """Failures of a part we depend on that heals by itself: retry without limit."""
    if isinstance(exc, RPCError):
        return exc.status in (
            RPCStatusCode.UNAVAILABLE,
            RPCStatusCode.DEADLINE_EXCEEDED,
            RPCStatusCode.RESOURCE_EXHAUSTED,
        )
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.exceptions.PostgresConnectionError
        | asyncpg.exceptions.InterfaceError
        | asyncpg.exceptions.CannotConnectNowError
        | asyncpg.exceptions.TooManyConnectionsError
        | asyncpg.exceptions.AdminShutdownError,
    )


def decode(raw: bytes, max_bytes: int) -> tuple[Envelope, BaseModel]:
    if len(raw) > max_bytes:
        raise BadMessage(f"message of {len(raw)} bytes exceeds the limit of {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadMessage(f"message is not valid UTF-8: {exc}") from exc
    if "\x00" in text or _ESCAPED_NUL.search(text):
        raise BadMessage("message contains NUL characters")
    try:
        envelope = Envelope.model_validate_json(text)
    except ValidationError as exc:
        raise BadMessage(_describe("invalid envelope", exc)) from exc
    try:
        payload = parse_payload(envelope)
    except ValidationError as exc:
        what = f"invalid payload for {envelope.type} v{envelope.version}"
        raise BadMessage(_describe(what, exc, "payload.")) from exc
    except UnknownEventType as exc:
        raise BadMessage(str(exc)) from exc
    return envelope, payload


def _describe(what: str, exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:10]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{prefix}{loc}: {err['msg']}" if loc else err["msg"])
    return f"{what}: " + "; ".join(parts)


def dead_letter_record(
    record: Any, reason: str, error_type: str, attempts: int, consumer: str
) -> dict[str, Any]:
    value: bytes = record.value or b""
    try:
        original: dict[str, Any] = {"original_value": value.decode("utf-8")}
    except UnicodeDecodeError:
        original = {"original_value_base64": base64.b64encode(value).decode()}
    return {
        "reason": reason,
        "error_type": error_type,
        "original_topic": record.topic,
        "original_key": record.key.decode("utf-8", "replace") if record.key else None,
        "partition": record.partition,
        "offset": record.offset,
        "attempts": attempts,
        "consumer": consumer,
        "failed_at": datetime.now(UTC).isoformat(),
        **original,
    }


DEAD_LETTER_PREFIX_BYTES = 16_384


def truncate_original(body: dict[str, Any], value: bytes) -> dict[str, Any]:
    kept = {k: v for k, v in body.items() if not k.startswith("original_value")}
    kept["original_size"] = len(value)
    kept["original_truncated"] = True
    kept["original_prefix_base64"] = base64.b64encode(value[:DEAD_LETTER_PREFIX_BYTES]).decode()
    return kept


def _names_a_principal(headers: Any) -> bool:
    return any(key.lower() == "authorization" for key, _ in headers or ())


def subscribe(
    broker: KafkaBroker,
    settings: Settings,
    *,
    topic: str,
    group_id: str,
    handles: dict[str, Handler],
    audit_pool: asyncpg.Pool | None = None,
) -> None:
    """Subscribe `group_id` to `topic`; `handles` maps event types to handlers ("*": every
    type). Known event types this consumer does not handle are acknowledged and skipped.

    Every message is handled in a consumer span continuing the trace of its `traceparent`
    header (the outbox relay sends the one of the span that wrote the event), with the
    envelope's correlation id on the log lines, and counted in the
    `grants_events_consumed_total` / `grants_events_dead_lettered_total` metrics."""
    failures: dict[tuple[str, int, int], int] = {}

    async def dead_letter(record: Any, exc: BaseException, attempts: int, reason_kind: str) -> None:
        body = dead_letter_record(record, str(exc), type(exc).__name__, attempts, group_id)
        encoded = json.dumps(body, ensure_ascii=False).encode()
        if len(encoded) > settings.kafka_max_message_bytes // 2:
            # Escaping can make the record far larger than the message (and larger than the
            # broker takes): keep a prefix, so the dead letter always goes out.
            body = truncate_original(body, record.value or b"")
            encoded = json.dumps(body, ensure_ascii=False).encode()
        await broker.publish(
            encoded,
            topic=dead_letter_topic(record.topic),
            key=record.key,
            headers={"content-type": "application/json", "dlq-reason": str(exc)[:500]},
        )
        observability.dead_lettered(group_id, record.topic, reason_kind)
        trace.get_current_span().set_attribute("grants.dead_letter.reason_kind", reason_kind)
        log.warning(
            "%s: dead-lettered %s[%d]@%d after %d attempt(s): %s",
            group_id,
            record.topic,
            record.partition,
            record.offset,
            attempts,
            str(exc)[:300],
        )

    async def refuse(record: Any, envelope: Envelope, exc: Exception) -> None:
        kind = "unauthenticated" if isinstance(exc, Unauthenticated) else "forbidden"
        if audit_pool is not None:
            await audit_refusal(
                audit_pool, "kafka", f"{record.topic} {envelope.type}", None, None, f"{kind}: {exc}"
            )
        await dead_letter(record, BadMessage(f"{kind}: {exc}"), 1, kind)

    async def on_message(msg: KafkaMessage) -> None:
        record = msg.raw_message
        assert not isinstance(record, tuple)
        try:
            decoded: tuple[Envelope, BaseModel] | BadMessage = decode(
                record.value or b"", settings.kafka_max_message_bytes
            )
        except BadMessage as exc:
            decoded = exc
        if (
            isinstance(decoded, tuple)
            and decoded[0].type not in handles
            and "*" not in handles
            and not _names_a_principal(record.headers)
        ):
            # Not this group's business (and no token to refuse): no span for it, so a
            # trace holds what was done, not every group that let an event pass.
            observability.consumed(group_id, record.topic, decoded[0].type, "skipped")
            return
        parent = observability.context_from_kafka_headers(record.headers)
        with observability.tracer().start_as_current_span(
            f"process {record.topic}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.consumer.group.name": group_id,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
            },
        ) as span:
            token = observability.set_correlation_id(None)
            try:
                await handle(record, decoded, span)
            finally:
                observability.reset_correlation_id(token)

    async def handle(
        record: Any, decoded: tuple[Envelope, BaseModel] | BadMessage, span: trace.Span
    ) -> None:
        if isinstance(decoded, BadMessage):
            await dead_letter(record, decoded, 1, "invalid")
            return
        envelope, payload = decoded
        observability.set_correlation_id(envelope.correlation_id)
        span.set_attribute("grants.event.type", envelope.type)
        span.set_attribute("grants.event.id", str(envelope.event_id))
        span.set_attribute("grants.correlation_id", str(envelope.correlation_id))
        if envelope.application_id is not None:
            span.set_attribute("grants.application_id", str(envelope.application_id))
        try:
            # Command events carry the sender's bearer token; handlers check it.
            set_kafka_principal(principal_from_headers(settings, record.headers))
        except Unauthenticated as exc:
            await refuse(record, envelope, exc)
            return
        handler = handles.get(envelope.type) or handles.get("*")
        if handler is None:
            observability.consumed(group_id, record.topic, envelope.type, "skipped")
            return
        position = (record.topic, record.partition, record.offset)
        try:
            await handler(envelope, payload)
            failures.pop(position, None)
            observability.consumed(group_id, record.topic, envelope.type, "processed")
        except BadMessage as exc:
            await dead_letter(record, exc, failures.pop(position, 0) + 1, "rejected")
        except (Unauthenticated, Forbidden) as exc:
            failures.pop(position, None)
            await refuse(record, envelope, exc)
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            attempts = failures.get(position, 0) + 1
            if not is_transient(exc) and attempts >= settings.kafka_max_attempts:
                failures.pop(position, None)
                await dead_letter(record, exc, attempts, "exhausted")
                return
            failures[position] = attempts
            observability.consumed(group_id, record.topic, envelope.type, "retried")
            delay = min(30.0, 0.2 * 2 ** min(attempts, 8)) * (0.5 + random.random())
            log.warning(
                "%s: %s[%d]@%d failed (attempt %d, %s: %s); retrying in %.1fs",
                group_id,
                record.topic,
                record.partition,
                record.offset,
                attempts,
                type(exc).__name__,
                str(exc)[:200],
                delay,
            )
            await asyncio.sleep(delay)
            raise  # NACK: the message is delivered again, its offset stays uncommitted

    types = sorted(handles)
    subscriber = broker.subscriber(
        topic,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        # Several consumers of the group in this process, each owning some partitions and
        # handling them in order: partitions are processed concurrently, one application's
        # events (one partition) never are. Offsets are still committed after processing.
        max_workers=settings.kafka_consumer_workers,
        # The event catalog (shared/asyncapi.py): one channel per consumer group.
        title=group_id,
        description=asyncapi.subscriber_description(topic, group_id, types),
    )
    subscriber(on_message)
    asyncapi.describe_subscriber(broker, subscriber, topic, group_id, types)
