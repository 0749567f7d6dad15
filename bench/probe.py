"""Where work queues up while the pipeline runs: every service's unsent outbox rows and every
consumer group's lag on its topic, sampled once a second. A stage whose queue keeps growing
is slower than what feeds it: that is the limiting stage."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.common import pool_as
from shared.config import SERVICE_NAMES, Settings
from shared.temporal import TASK_QUEUE_INTAKE, TASK_QUEUE_PAYMENTS, TASK_QUEUE_REVIEW
from shared.topics import APPLICATION_EVENTS, APPLICATIONS_INBOUND, BANK_PAYMENT_ANSWERS

# The consumer groups of the pipeline and the topic each reads.
GROUPS: dict[str, str] = {
    "intake.inbound": APPLICATIONS_INBOUND,
    "intake.lifecycle": APPLICATION_EVENTS,
    "intake.timeline": APPLICATION_EVENTS,
    "intake.register": APPLICATION_EVENTS,
    "notifications.milestones": APPLICATION_EVENTS,
    # services/payments/repository.py BANK_ANSWERS_CONSUMER
    "payments.bank-answers": BANK_PAYMENT_ANSWERS,
}


# Temporal task queues with workflows or activities of the pipeline.
TASK_QUEUES = (TASK_QUEUE_INTAKE, TASK_QUEUE_REVIEW, TASK_QUEUE_PAYMENTS)
TASK_KINDS = {
    "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
}


class QueueProbe:
    """Outbox backlogs, consumer lags and (every other sample, they cost the server a little)
    the Temporal task queues' approximate backlogs."""

    def __init__(
        self, settings: Settings, temporal: Client | None = None, interval: float = 1.0
    ) -> None:
        self.settings = settings
        self.temporal = temporal
        self._tasks: dict[str, int] = {}
        self._count = 0
        self.interval = interval
        self.samples: list[dict[str, int]] = []
        self._pools: dict[str, asyncpg.Pool] = {}
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._partitions: dict[str, list[TopicPartition]] = {}

    async def start(self) -> None:
        for role in SERVICE_NAMES:
            self._pools[role] = await pool_as(self.settings, role, 1)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
        await self._admin.start()
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap)
        await self._consumer.start()
        for topic in set(GROUPS.values()):
            described = await self._admin.describe_topics([topic])
            self._partitions[topic] = [
                TopicPartition(topic, int(p["partition"]))
                for t in described
                for p in t.get("partitions") or []
            ]

    async def sample(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for role, pool in self._pools.items():
            out[f"outbox:{role}"] = int(
                await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            )
        assert self._consumer is not None and self._admin is not None
        ends: dict[TopicPartition, int] = {}
        for tps in self._partitions.values():
            if tps:
                ends.update(await self._consumer.end_offsets(tps))
        for group, topic in GROUPS.items():
            committed = await self._admin.list_consumer_group_offsets(group)
            lag = 0
            for tp in self._partitions.get(topic, []):
                done = committed.get(tp)
                lag += ends.get(tp, 0) - (
                    done.offset if done is not None and done.offset >= 0 else 0
                )
            out[f"lag:{group}"] = lag
        self._count += 1
        if self.temporal is not None and self._count % 2 == 1:
            for queue in TASK_QUEUES:
                for kind, queue_type in TASK_KINDS.items():
                    described = await self.temporal.workflow_service.describe_task_queue(
                        DescribeTaskQueueRequest(
                            namespace=self.settings.temporal_namespace,
                            task_queue=TaskQueue(name=queue),
                            task_queue_type=queue_type,
                            report_stats=True,
                        )
                    )
                    self._tasks[f"temporal:{queue}/{kind}"] = int(
                        described.stats.approximate_backlog_count
                    )
        out.update(self._tasks)
        return out

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self.samples.append(await self.sample())
            await asyncio.sleep(self.interval)

    def begin(self) -> int:
        """Start recording (if not yet); returns the index of the first sample of a phase."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bench-queue-probe")
        return len(self.samples)

    def summary(self, since: int) -> dict[str, dict[str, float]]:
        """Per queue: its largest, mean and last length during the phase."""
        window = self.samples[since:]
        series: dict[str, list[int]] = defaultdict(list)
        for sample in window:
            for key, value in sample.items():
                series[key].append(value)
        return {
            key: {
                "max": max(values),
                "mean": round(sum(values) / len(values), 1),
                "last": values[-1],
            }
            for key, values in sorted(series.items())
        }

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for pool in self._pools.values():
            await pool.close()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()


def summarize_queues(queues: dict[str, dict[str, float]]) -> list[str]:
    """The queues that grew during a phase, largest first, as short phrases."""
    grown = [(v["max"], k) for k, v in queues.items() if v["max"] >= 20]
    return [f"{k} up to {int(m)}" for m, k in sorted(grown, reverse=True)]
