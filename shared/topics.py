"""The registry of Kafka topics. Topics are created explicitly at start-up (the broker's
auto-create is off), each with a dead-letter twin `<topic>.dlq`."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.config import Settings

log = logging.getLogger(__name__)

# Other systems publish applications here, inside the event envelope (type "application.submit").
APPLICATIONS_INBOUND = "grants.applications.inbound"
# The application lifecycle, keyed by application id: every service's events about an application.
APPLICATION_EVENTS = "grants.application-events"

# Advisors' and deciders' actions from other systems (an advisor portal), inside the envelope.
REVIEW_COMMANDS = "grants.review.commands"

# Payment requests to the bank/ERP, and its answers (confirmed or rejected), keyed by reference.
BANK_PAYMENT_REQUESTS = "grants.bank.payment-requests"
BANK_PAYMENT_ANSWERS = "grants.bank.payment-answers"

TOPICS: tuple[str, ...] = (
    APPLICATIONS_INBOUND,
    APPLICATION_EVENTS,
    REVIEW_COMMANDS,
    BANK_PAYMENT_REQUESTS,
    BANK_PAYMENT_ANSWERS,
)


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def all_topics() -> list[str]:
    return [t for topic in TOPICS for t in (topic, dead_letter_topic(topic))]


async def ensure_topics(settings: Settings, attempts: int = 30) -> None:
    """Create every registered topic that does not exist yet (safe to run from each service)."""
    for attempt in range(1, attempts + 1):
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in all_topics() if t not in existing]
            if missing:
                new = [
                    NewTopic(
                        name=t,
                        num_partitions=settings.kafka_partitions,
                        replication_factor=settings.kafka_replication_factor,
                    )
                    for t in missing
                ]
                try:
                    await admin.create_topics(new)
                except TopicAlreadyExistsError:
                    pass  # another service created it first
                log.info("created topics %s", missing)
            return
        except TopicAlreadyExistsError:
            return
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("Kafka not ready for topic creation (%s); retrying", type(exc).__name__)
            await asyncio.sleep(1)
        finally:
            await admin.close()
