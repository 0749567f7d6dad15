"""Notifications on the real stack: what the applicant receives in MailDev's inbox and at the
local SMS gateway, once each, in their language — under redelivery, an SMTP outage and two
running instances of the service."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.notifications.app import CONSUMER
from shared.config import REPO_ROOT, Settings
from shared.topics import APPLICATION_EVENTS
from tests.conftest import sample_names, service_url
from tests.integration.flows import Users, fresh
from tests.tokens import OPERATOR
from tests.waiting import eventually

pytestmark = pytest.mark.integration

CYRILLIC = set("абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ")


@pytest.fixture(scope="module")
async def users(stack: Settings) -> AsyncIterator[Users]:
    u = Users(stack)
    yield u
    await u.close()


# --- what the applicant sees ---------------------------------------------------------------


async def inbox(settings: Settings, app_id: str) -> list[dict[str, Any]]:
    """MailDev's messages for one application (its id is in every Message-ID)."""
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(f"http://127.0.0.1:{settings.maildev_web_port}/email")
        response.raise_for_status()
        mails: list[dict[str, Any]] = response.json()
    return [m for m in mails if app_id in (m.get("messageId") or "")]


async def texts(settings: Settings, ref: str) -> list[dict[str, Any]]:
    """The SMS gateway's messages naming one application's reference."""
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(f"http://127.0.0.1:{settings.sms_gateway_port}/messages")
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()
    return [m for m in messages if ref in m["body"]]


async def deliveries(settings: Settings, app_id: str, **params: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(
        base_url=service_url(settings, "notifications"), headers=OPERATOR, timeout=30
    ) as http:
        response = await http.get("/deliveries", params={"application_id": app_id, **params})
        response.raise_for_status()
        rows: list[dict[str, Any]] = response.json()
        return rows


async def mail_with(settings: Settings, app_id: str, subject_part: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        found = [m for m in await inbox(settings, app_id) if subject_part in m["subject"]]
        return found[0] if found else None

    return await eventually(probe, timeout=60)


# --- the applicant's language ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "subject", "greeting"),
    [
        ("ru-school-exchange.json", "Мы получили вашу заявку", "Здравствуйте, Ирина!"),
        ("nb-ungdom-fotball.json", "Vi har mottatt søknaden din", "Hei Ola,"),
        ("ko188-cultural-network.json", "We have received your application", "Dear Anna,"),
    ],
)
async def test_the_acknowledgement_arrives_in_the_applicants_language(
    users: Users, stack: Settings, sample: str, subject: str, greeting: str
) -> None:
    doc = fresh(sample)
    app_id = await users.submit(doc)

    mail = await mail_with(stack, app_id, subject)
    assert doc["external_ref"] in mail["subject"]
    assert [to["address"] for to in mail["to"]] == [doc["applicant"]["contact"]["email"]]
    assert mail["text"].startswith(greeting)
    assert doc["title"] in mail["text"] and doc["title"] in mail["html"]
    if sample.startswith("ru"):
        assert CYRILLIC & set(mail["subject"]) and "220\xa0000,00\xa0NOK" in mail["text"]
    (row,) = await deliveries(stack, app_id)
    assert (row["milestone"], row["channel"], row["status"], row["attempts"]) == (
        "received",
        "email",
        "sent",
        1,
    )


async def test_a_decision_comes_by_sms_with_the_first_name_only(
    users: Users, stack: Settings
) -> None:
    doc = fresh("small-grant-head-of-section.json")
    contact = doc["applicant"]["contact"]
    app_id = await users.submit(doc)
    state = await users.wait_status(app_id, "in_review")
    assert (await users.review_it(app_id, state["advisor"])).status_code == 200
    decided = await users.decide(app_id, "head_of_section")
    assert decided.status_code == 200, decided.text

    (sms,) = await eventually(lambda: texts(stack, doc["external_ref"]), timeout=60)
    assert sms["to"] == contact["phone"]
    assert sms["body"].startswith("Hei Eva!") and "innvilget" in sms["body"]
    assert "75 000,00 kr" in sms["body"]
    assert "Nilsen" not in sms["body"] and contact["email"] not in sms["body"]
    assert contact["phone"][3:] not in sms["body"].replace(" ", "")

    mail = await mail_with(stack, app_id, "er innvilget")
    assert "75\xa0000,00\xa0kr" in mail["text"]

    async def decision_rows() -> list[dict[str, Any]] | None:
        rows = await deliveries(stack, app_id)
        done = [r for r in rows if r["milestone"] == "decision" and r["status"] == "sent"]
        return done if len(done) == 2 else None

    rows = await eventually(decision_rows, timeout=60)
    assert {r["channel"] for r in rows} == {"email", "sms"}
    sms_only = await deliveries(stack, app_id, channel="sms")
    assert {r["channel"] for r in sms_only} == {"sms"}


async def test_an_applicant_who_opted_out_of_sms_gets_the_decision_by_email_only(
    users: Users, stack: Settings
) -> None:
    doc = fresh("small-grant-head-of-section.json")
    doc["applicant"]["contact"]["sms_opt_out"] = True
    app_id = await users.submit(doc)
    state = await users.wait_status(app_id, "in_review")
    assert (await users.review_it(app_id, state["advisor"])).status_code == 200
    assert (await users.decide(app_id, "head_of_section")).status_code == 200

    await mail_with(stack, app_id, "er innvilget")
    decision = [r for r in await deliveries(stack, app_id) if r["milestone"] == "decision"]
    assert [r["channel"] for r in decision] == ["email"]
    assert await texts(stack, doc["external_ref"]) == []


# --- never twice ---------------------------------------------------------------------------------


async def raw_event(settings: Settings, app_id: str, event_type: str) -> Any:
    """The record of one application's event on the application-events topic."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(APPLICATION_EVENTS, p) for p in range(settings.kafka_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                for record in records:
                    if record.key != app_id.encode():
                        continue
                    value = json.loads(record.value)
                    if value.get("type") == event_type:
                        return record
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                break
        raise AssertionError(f"no {event_type} for {app_id} on {APPLICATION_EVENTS}")
    finally:
        await consumer.stop()


async def consumed(settings: Settings, partition: int, offset: int) -> bool:
    """Whether the notifications consumer has committed past `offset` on `partition`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=CONSUMER)
    await consumer.start()
    try:
        committed = await consumer.committed(TopicPartition(APPLICATION_EVENTS, partition))
        return committed is not None and committed > offset
    finally:
        await consumer.stop()


async def test_a_redelivered_event_sends_nothing_twice(users: Users, stack: Settings) -> None:
    doc = fresh("nb-barentskult-festival.json")
    app_id = await users.submit(doc)
    await mail_with(stack, app_id, "Vi har mottatt")
    record = await raw_event(stack, app_id, "application.submitted")

    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for _ in range(2):
            sent = await producer.send_and_wait(
                APPLICATION_EVENTS, record.value, key=record.key, headers=list(record.headers)
            )
    finally:
        await producer.stop()

    await eventually(lambda: consumed(stack, sent.partition, sent.offset), timeout=60)
    await asyncio.sleep(2 * stack.notify_poll_seconds)  # a sender pass after the consumer's
    assert len(await inbox(stack, app_id)) == 1
    assert [r["milestone"] for r in await deliveries(stack, app_id)] == ["received"]


# --- never lost ----------------------------------------------------------------------------------


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def stop_maildev(settings: Settings) -> None:
    """Stop the stack's MailDev (started by `./dev up`) and wait until it is gone."""
    pid = int((settings.state_dir / "pids" / "maildev.pid").read_text().strip())
    os.kill(pid, signal.SIGTERM)

    async def gone() -> bool:
        return not alive(pid)

    try:
        await eventually(gone, timeout=30)
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        await eventually(gone, timeout=10)


async def dev(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(str(REPO_ROOT / "dev"), *args, cwd=REPO_ROOT)
    assert await process.wait() == 0


async def test_emails_held_up_by_an_smtp_outage_go_out_once_it_is_back(
    users: Users, stack: Settings
) -> None:
    await stop_maildev(stack)
    try:
        docs = [fresh("ru-school-exchange.json"), fresh("ko188-cultural-network.json")]
        app_ids = [await users.submit(doc) for doc in docs]

        async def all_failed_once() -> bool:
            for app_id in app_ids:
                rows = await deliveries(stack, app_id)
                if not rows or rows[0]["status"] != "pending" or not rows[0]["last_error"]:
                    return False
            return True

        await eventually(all_failed_once, timeout=60)
        row = (await deliveries(stack, app_ids[0]))[0]
        assert row["attempts"] >= 1 and row["next_attempt_at"] is not None
        assert "SMTP" in row["last_error"]
    finally:
        # `./dev up` starts what is not running: here, MailDev again.
        await dev("up")

    for app_id in app_ids:
        delivered = await eventually(partial(sent_delivery, stack, app_id), timeout=120)
        assert delivered["attempts"] >= 2 and delivered["last_error"] is None
        assert len(await eventually(partial(inbox, stack, app_id), timeout=30)) == 1


async def sent_delivery(settings: Settings, app_id: str) -> dict[str, Any] | None:
    rows = await deliveries(settings, app_id, status="sent")
    return rows[0] if rows else None


async def test_two_running_instances_send_each_message_once(users: Users, stack: Settings) -> None:
    port = stack.port_notifications + 10
    env = {**os.environ, "GRANTS_PORT_NOTIFICATIONS": str(port)}
    second = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.notifications",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:

        async def healthy() -> bool:
            try:
                async with httpx.AsyncClient(timeout=5) as http:
                    return (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(healthy, timeout=60)
        docs = [fresh("nb-ungdom-fotball.json") for _ in range(6)]
        app_ids = [await users.submit(doc) for doc in docs]
        for app_id in app_ids:
            await mail_with(stack, app_id, "Vi har mottatt")
        await asyncio.sleep(3)  # room for a second copy, were one to come
        for app_id in app_ids:
            assert len(await inbox(stack, app_id)) == 1
            (row,) = await deliveries(stack, app_id)
            assert (row["status"], row["attempts"]) == ("sent", 1)
    finally:
        second.terminate()
        await asyncio.wait_for(second.wait(), timeout=30)


# --- killed mid-stream, then the whole topic replayed ------------------------------------------


async def rewind_group_to_start(settings: Settings) -> None:
    """Reset the notifications group to the start of the topic with Kafka's own tool (from
    the broker's jars). Kafka allows it once the group is empty: the killed members time out
    after the session timeout, so try until it takes."""
    libs = settings.state_dir / "kafka" / "libs"
    command = [
        "java",
        "-cp",
        f"{libs}/*",
        "-Dlog4j2.configurationFile=" + str(REPO_ROOT / "deploy/kafka/log4j2.xml"),
        f"-Dkafka.logs.dir={settings.state_dir / 'kafka' / 'logs'}",
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "--bootstrap-server",
        settings.kafka_bootstrap,
        "--group",
        CONSUMER,
        "--topic",
        APPLICATION_EVENTS,
        "--reset-offsets",
        "--to-earliest",
        "--execute",
    ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while True:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await process.communicate()
        if process.returncode == 0 and b"NEW-OFFSET" in output:
            return
        if loop.time() > deadline:
            raise AssertionError(f"could not rewind {CONSUMER}: {output.decode()[-500:]}")
        await asyncio.sleep(2)  # the killed members are still in the group


async def caught_up(settings: Settings) -> bool:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=CONSUMER)
    await consumer.start()
    try:
        tps = [TopicPartition(APPLICATION_EVENTS, p) for p in range(settings.kafka_partitions)]
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is None or committed < ends[tp]:
                return False
        return True
    finally:
        await consumer.stop()


async def test_killed_mid_stream_and_replayed_from_the_start_sends_nothing_twice(
    users: Users, stack: Settings
) -> None:
    # Milestones in flight: acknowledgements, and a decision (e-mail and SMS).
    decided = await users.submit(fresh("small-grant-head-of-section.json"))
    others = [await users.submit(fresh("ru-school-exchange.json")) for _ in range(3)]
    state = await users.wait_status(decided, "in_review")
    await users.review_it(decided, state["advisor"])
    assert (await users.decide(decided, "head_of_section")).status_code == 200

    pid = int((stack.state_dir / "pids" / "notifications.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # mid-stream: some of these are not sent yet
    await rewind_group_to_start(stack)
    await dev("restart", "notifications")

    await eventually(lambda: caught_up(stack), timeout=240, interval=2)
    apps = [decided, *others]

    async def all_sent() -> bool:
        for app_id in apps:
            rows = await deliveries(stack, app_id)
            if not rows or any(r["status"] != "sent" for r in rows):
                return False
        return True

    await eventually(all_sent, timeout=120, interval=1)
    for app_id in apps:
        rows = await deliveries(stack, app_id)
        keys = [(r["milestone"], r["channel"]) for r in rows]
        assert len(keys) == len(set(keys)), keys
        mails = await inbox(stack, app_id)
        # One e-mail per e-mail delivery, never two (the Message-ID is the delivery's).
        assert len(mails) == len([r for r in rows if r["channel"] == "email"]), mails
    ref = (await users.intake.get(f"/applications/{decided}")).json()["external_ref"]
    sms = await texts(stack, ref)
    assert len(sms) == len([r for r in await deliveries(stack, decided) if r["channel"] == "sms"])


# --- every sample --------------------------------------------------------------------------------

RECEIVED = {
    "nb": "Vi har mottatt søknaden din",
    "en": "We have received your application",
    "ru": "Мы получили вашу заявку",
}
INELIGIBLE = {
    "nb": "oppfyller ikke kravene",
    "en": "does not meet the requirements",
    "ru": "не соответствует требованиям",
}


@pytest.mark.parametrize("sample", sample_names())
async def test_every_samples_first_milestones_arrive_once_in_its_language(
    users: Users, stack: Settings, sample: str
) -> None:
    """Submission and screening: the acknowledgement, and for an ineligible application the
    reasons, each by e-mail once, in the contact's language; nothing by SMS (no one must act
    yet, and no money moves)."""
    doc = fresh(sample)
    language = doc["applicant"]["contact"]["language"]
    eligible = not sample.startswith("ineligible")
    app_id = await users.submit(doc)
    await mail_with(stack, app_id, RECEIVED[language])
    if eligible:
        await users.wait_status(app_id, "in_review")
    else:
        mail = await mail_with(stack, app_id, INELIGIBLE[language])
        screened = await users.wait_event(app_id, "application.screened")
        for reason in screened["payload"]["reasons"]:
            assert reason["text"][language] in mail["text"]

    async def settled() -> list[dict[str, Any]] | None:
        rows = await deliveries(stack, app_id)
        return rows if rows and all(r["status"] == "sent" for r in rows) else None

    rows = await eventually(settled, timeout=60)
    expected = {("received", "email")} | (set() if eligible else {("ineligible", "email")})
    assert {(r["milestone"], r["channel"]) for r in rows} == expected
    assert len(rows) == len(expected)
    mails = await inbox(stack, app_id)
    assert len(mails) == len(expected)
    if language == "ru":
        assert all(CYRILLIC & set(m["subject"]) for m in mails)
    assert await texts(stack, doc["external_ref"]) == []
