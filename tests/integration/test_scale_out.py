"""Two instances of every service on one machine: the same consumer groups and task queues.
Under load the partitions are shared, each application is processed once, and stopping one
instance hands its work to the other with nothing lost."""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared import temporal
from shared.config import REPO_ROOT, SERVICE_NAMES, Settings
from shared.events import APPLICATION_SUBMIT, Envelope
from shared.topics import APPLICATIONS_INBOUND
from tests.conftest import service_url
from tests.integration.flows import Users, fresh
from tests.kafka_helpers import publish
from tests.tokens import OPERATOR, kafka_auth
from tests.waiting import eventually

pytestmark = pytest.mark.integration

SECOND_PORT_OFFSET = 1000  # intake 9001, review 9002, ...


@pytest.fixture(scope="module")
def second_instances(stack: Settings) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    env = dict(os.environ)
    config = stack.state_dir / "funding-config"
    if config.exists():
        env["GRANTS_FUNDING_CONFIG"] = config.read_text().strip()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for name in SERVICE_NAMES:
        env_i = {
            **env,
            f"GRANTS_PORT_{name.upper()}": str(stack.http_port(name) + SECOND_PORT_OFFSET),
        }
        log = (stack.state_dir / "logs" / f"{name}-2.log").open("ab")
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=REPO_ROOT,
            env=env_i,
            stdout=log,
            stderr=log,
        )
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def second_url(settings: Settings, name: str) -> str:
    return f"http://127.0.0.1:{settings.http_port(name) + SECOND_PORT_OFFSET}"


@pytest.fixture(scope="module")
async def users(stack: Settings) -> AsyncIterator[Users]:
    u = Users(stack)
    yield u
    await u.close()


async def healthy(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=3) as http:
            return (await http.get(f"{url}/health")).status_code == 200
    except httpx.HTTPError:
        return False


def assigned_partitions(raw: bytes) -> list[int]:
    """Partitions in a consumer protocol MemberAssignment (version, [topic, [partition]])."""
    pos = 2
    (topics,) = struct.unpack_from(">i", raw, pos)
    pos += 4
    partitions: list[int] = []
    for _ in range(topics):
        (length,) = struct.unpack_from(">h", raw, pos)
        pos += 2 + length
        (count,) = struct.unpack_from(">i", raw, pos)
        pos += 4
        partitions += list(struct.unpack_from(f">{count}i", raw, pos))
        pos += 4 * count
    return partitions


async def group_members(settings: Settings, group: str) -> dict[str, list[int]]:
    """Member id → partitions it holds, for one consumer group."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        (described,) = response.groups
        members = described[5]
        return {m[0]: assigned_partitions(m[4]) if m[4] else [] for m in members}
    finally:
        await admin.close()


async def test_two_instances_share_the_work_and_survive_losing_one(
    stack: Settings, users: Users, second_instances: dict[str, subprocess.Popen[bytes]]
) -> None:
    for name in SERVICE_NAMES:

        async def up(name: str = name) -> bool:
            return await healthy(second_url(stack, name))

        await eventually(up, timeout=90)

    # Each consumer group now has two members, each holding part of the partitions.
    for group in (
        "intake.inbound",
        "intake.lifecycle",
        "review.commands",
        "notifications.milestones",
        "payments.bank-answers",
    ):

        async def shared_group(group: str = group) -> dict[str, list[int]] | None:
            members = await group_members(stack, group)
            # Two instances, each with its consumers of the group, each holding partitions.
            expected = 2 * stack.kafka_consumer_workers
            return members if len(members) == expected and all(members.values()) else None

        members = await eventually(shared_group, timeout=60)
        held = sorted(p for parts in members.values() for p in parts)
        assert held == list(range(stack.kafka_partitions)), (group, members)

    submitted: list[str] = []
    refs: list[str] = []

    async def submit_via(base: str, doc: dict[str, Any]) -> None:
        async with httpx.AsyncClient(base_url=base, headers=OPERATOR, timeout=30) as http:
            response = await http.post("/applications", json=doc)
            assert response.status_code == 201, response.text
            submitted.append(response.json()["application_id"])

    async def submit_kafka(doc: dict[str, Any]) -> None:
        envelope = Envelope(type=APPLICATION_SUBMIT, source="portal", payload={"document": doc})
        await publish(
            stack,
            APPLICATIONS_INBOUND,
            envelope.model_dump_json().encode(),
            headers=kafka_auth("operator", "portal", sys="portal"),
        )
        refs.append(doc["external_ref"])

    samples = [
        "small-grant-head-of-section.json",
        "nb-ungdom-fotball.json",
        "ko188-cultural-network.json",
        "ru-school-exchange.json",
    ]
    for i in range(24):
        doc = fresh(samples[i % len(samples)])
        if i % 3 == 2:
            await submit_kafka(doc)
        else:
            # Alternate between the instances while both run; the survivor takes the rest.
            first = i % 2 or i > 11
            base = service_url(stack, "intake") if first else second_url(stack, "intake")
            await submit_via(base, doc)
        if i == 11:
            # Stop the second instance of every service mid-stream (hard): the first takes over.
            for proc in second_instances.values():
                proc.send_signal(signal.SIGKILL)

    for ref in refs:

        async def stored(ref: str = ref) -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = (
                await users.intake.get("/applications", params={"external_ref": ref})
            ).json()
            return rows

        rows = await eventually(stored, timeout=90)
        assert len(rows) == 1
        submitted.append(rows[0]["application_id"])

    client = await temporal.connect(stack)
    async with httpx.AsyncClient(
        base_url=service_url(stack, "notifications"), headers=OPERATOR, timeout=30
    ) as notes:
        for app_id in submitted:
            await users.wait_status(app_id, "in_review", timeout=120)
            wf = temporal.lifecycle_workflow_id(uuid.UUID(app_id))
            count = await client.count_workflows(f"WorkflowId = '{wf}'")
            assert count.count == 1

            async def received(app_id: str = app_id) -> list[dict[str, Any]]:
                rows: list[dict[str, Any]] = (
                    await notes.get("/deliveries", params={"application_id": app_id})
                ).json()
                return [r for r in rows if r["milestone"] == "received"]

            rows = await eventually(received, timeout=60)
            await asyncio.sleep(0)
            assert len(rows) == 1, rows
