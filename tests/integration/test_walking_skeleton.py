"""The foundation through the real parts: HTTP and Kafka submissions, one stored application
and one workflow per application, dead-lettering, acknowledgements, database isolation."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from shared import temporal
from shared.config import Settings
from shared.events import APPLICATION_SUBMIT, Envelope
from shared.topics import APPLICATIONS_INBOUND, dead_letter_topic
from tests.conftest import connect_as, load_sample, sample_names, service_url
from tests.kafka_helpers import find_record, publish
from tests.tokens import OPERATOR, kafka_auth
from tests.waiting import eventually

pytestmark = pytest.mark.integration

# The application portal, submitting for applicants as an operator-level system identity.
PORTAL = kafka_auth("operator", "portal", sys="portal")


def fresh(name: str) -> dict[str, Any]:
    doc = load_sample(name)
    doc["external_ref"] = f"test-{uuid.uuid4()}"
    return doc


@pytest.fixture(scope="module")
async def tclient(stack: Settings) -> Client:
    return await temporal.connect(stack)


async def workflows_for(client: Client, application_id: str) -> list[Any]:
    query = f"WorkflowId = '{temporal.lifecycle_workflow_id(uuid.UUID(application_id))}'"
    return [wf async for wf in client.list_workflows(query)]


async def application_by_ref(http: httpx.AsyncClient, ref: str) -> list[dict[str, Any]]:
    response = await http.get("/applications", params={"external_ref": ref})
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()
    return found


async def test_every_service_reports_healthy(stack: Settings) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for service in ("intake", "review", "payments", "notifications"):
            body = (await http.get(f"{service_url(stack, service)}/health")).json()
            assert body["status"] == "ok", body
            assert body["checks"] == {"postgres": "ok", "kafka": "ok", "temporal": "ok"}


@pytest.mark.parametrize("name", sample_names())
async def test_samples_are_accepted_exactly_as_they_are(
    intake_http: httpx.AsyncClient, name: str
) -> None:
    body = (Path(__file__).parents[2].parent / "shared/domain/samples" / name).read_bytes()
    response = await intake_http.post(
        "/applications", content=body, headers={"content-type": "application/json"}
    )
    # 201 the first time; 200 (the same application) when an earlier run already sent it.
    assert response.status_code in (200, 201), response.text
    assert response.json()["external_ref"] == json.loads(body)["external_ref"]


async def test_http_submission_stores_and_starts_one_searchable_workflow(
    intake_http: httpx.AsyncClient, tclient: Client, stack: Settings
) -> None:
    doc = fresh("ko188-cultural-network.json")
    response = await intake_http.post("/applications", json=doc)
    assert response.status_code == 201, response.text
    app_id = response.json()["application_id"]

    wfs = await eventually(lambda: workflows_for(tclient, app_id))
    assert len(wfs) == 1
    attrs = wfs[0].typed_search_attributes
    assert attrs.get(temporal.SA_FUNDING_LINE) == "KOLARCTIC"
    assert attrs.get(temporal.SA_FUNDING_TYPE) == "project"
    assert attrs.get(temporal.SA_COUNTRY) == "SE"
    assert attrs.get(temporal.SA_REQUESTED) == pytest.approx(150310.0)
    assert wfs[0].status == WorkflowExecutionStatus.RUNNING

    # Searchable the way an operator searches in the Temporal UI.
    query = f"WorkflowId = '{wfs[0].id}' AND FundingLine = 'KOLARCTIC' AND RequestedAmount > 100000"
    assert len([w async for w in tclient.list_workflows(query)]) == 1

    # The Temporal UI's list reads well: a human summary, and no contact data in it.
    desc = await tclient.get_workflow_handle(wfs[0].id).describe()
    summary = (await desc.memo())["summary"]
    assert summary == (
        "Barents Cultural Co-Production Network — Norrbotten Regional Museum — KOLARCTIC — "
        "150310.00 EUR"
    )
    assert "@" not in summary and "Lindqvist" not in summary

    shown = (await intake_http.get(f"/applications/{app_id}")).json()
    assert shown["document"]["budget"] == {
        "currency": "EUR",
        "total": "171645.00",
        "requested": "150310.00",
    }
    assert shown["workflow_id"] == wfs[0].id


async def test_resubmitting_over_http_is_idempotent_and_reuse_of_a_reference_conflicts(
    intake_http: httpx.AsyncClient, tclient: Client
) -> None:
    doc = fresh("nb-ungdom-fotball.json")
    first = await intake_http.post("/applications", json=doc)
    again = await intake_http.post("/applications", json=doc)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["application_id"] == again.json()["application_id"]

    doc["title"] = "Et annet prosjekt"
    clash = await intake_http.post("/applications", json=doc)
    assert clash.status_code == 409
    assert first.json()["application_id"] in clash.json()["detail"]


async def test_kafka_submission_published_twice_yields_one_application_and_one_workflow(
    intake_http: httpx.AsyncClient, tclient: Client, stack: Settings
) -> None:
    doc = fresh("ru-school-exchange.json")
    envelope = Envelope(type=APPLICATION_SUBMIT, source="portal", payload={"document": doc})
    raw = envelope.model_dump_json().encode()
    await publish(stack, APPLICATIONS_INBOUND, raw, headers=PORTAL)
    await publish(stack, APPLICATIONS_INBOUND, raw, headers=PORTAL)
    # The same document under a new event id (a portal retry) is still the same application.
    retry = envelope.model_copy(update={"event_id": uuid.uuid4()})
    await publish(stack, APPLICATIONS_INBOUND, retry.model_dump_json().encode(), headers=PORTAL)

    stored = await eventually(lambda: application_by_ref(intake_http, doc["external_ref"]))
    app_id = stored[0]["application_id"]
    wfs = await eventually(lambda: workflows_for(tclient, app_id))

    # Give the duplicates time to be processed, then count again.
    await eventually(lambda: _deliveries(stack, app_id))
    assert len(await application_by_ref(intake_http, doc["external_ref"])) == 1
    assert len(await workflows_for(tclient, app_id)) == 1
    assert len(wfs) == 1
    shown = (await intake_http.get(f"/applications/{app_id}")).json()
    assert shown["channel"] == "kafka"
    assert shown["document"]["title"] == "Школьный обмен Мурманск–Тромсё"


async def _deliveries(settings: Settings, app_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(
        base_url=service_url(settings, "notifications"), headers=OPERATOR
    ) as http:
        response = await http.get("/deliveries", params={"application_id": app_id})
        response.raise_for_status()
        rows: list[dict[str, Any]] = response.json()
        return rows


async def test_notifications_records_one_acknowledgement_in_the_applicants_language(
    intake_http: httpx.AsyncClient, stack: Settings
) -> None:
    doc = fresh("ru-school-exchange.json")
    app_id = (await intake_http.post("/applications", json=doc)).json()["application_id"]
    rows = await eventually(lambda: _deliveries(stack, app_id))
    assert [(r["milestone"], r["channel"], r["language"]) for r in rows] == [
        ("received", "email", "ru")
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid envelope: Invalid JSON"),
        (b"\xff\xfe not utf-8", "not valid UTF-8"),
        (
            json.dumps({"type": "application.explode", "version": 1, "payload": {}}).encode(),
            "unknown event type 'application.explode'",
        ),
        (
            json.dumps({"type": APPLICATION_SUBMIT, "version": 9, "payload": {}}).encode(),
            "version 9",
        ),
        (
            json.dumps(
                {"type": APPLICATION_SUBMIT, "payload": {"document": {"title": 1}}}
            ).encode(),
            "invalid payload for application.submit v1: payload.document.external_ref",
        ),
    ],
    ids=["malformed-json", "invalid-utf8", "unknown-type", "unknown-version", "invalid-payload"],
)
async def test_bad_events_are_dead_lettered_with_the_reason_and_consumption_goes_on(
    intake_http: httpx.AsyncClient, stack: Settings, raw: bytes, reason: str
) -> None:
    marker = f"marker-{uuid.uuid4()}".encode()
    await publish(stack, APPLICATIONS_INBOUND, raw, key=marker)

    dead = await find_record(
        stack,
        dead_letter_topic(APPLICATIONS_INBOUND),
        lambda r: r.get("original_key") == marker.decode(),
    )
    assert reason in dead["reason"]
    assert dead["consumer"] == "intake.inbound"
    assert {"partition", "offset", "attempts"} <= dead.keys()

    # The consumer is still consuming: a good event after the bad one is processed.
    doc = fresh("small-grant-head-of-section.json")
    good = Envelope(type=APPLICATION_SUBMIT, source="portal", payload={"document": doc})
    await publish(
        stack, APPLICATIONS_INBOUND, good.model_dump_json().encode(), key=marker, headers=PORTAL
    )
    await eventually(lambda: application_by_ref(intake_http, doc["external_ref"]))


async def test_bad_http_input_gets_a_clear_422_or_413(intake_http: httpx.AsyncClient) -> None:
    doc = fresh("nb-barentskult-festival.json")
    doc["applicant"]["contact"]["phone"] = "98765432"
    doc["applicant"]["contact"]["email"] = "not-an-address"
    del doc["title"]
    response = await intake_http.post("/applications", json=doc)
    assert response.status_code == 422
    locations = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert ("body", "title") in locations
    assert ("body", "applicant", "contact", "phone") in locations
    assert ("body", "applicant", "contact", "email") in locations

    broken = await intake_http.post(
        "/applications", content=b'{"title": ', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert "JSON" in broken.text

    huge = fresh("nb-barentskult-festival.json")
    huge["objective"] = "x" * 400_000
    assert (await intake_http.post("/applications", json=huge)).status_code == 413


async def test_a_service_role_cannot_read_another_services_schema(stack: Settings) -> None:
    conn = await connect_as(stack, "review")
    try:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM intake.applications LIMIT 1")
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE intake.sneaky (id int)")
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE public.sneaky (id int)")
    finally:
        await conn.close()
    own = await connect_as(stack, "intake")
    try:
        assert await own.fetchval("SELECT count(*) >= 0 FROM intake.applications")
    finally:
        await own.close()


async def test_the_broker_is_apache_kafka_from_maven_central(stack: Settings) -> None:
    server_log = (stack.state_dir / "kafka" / "logs" / "server.log").read_text(errors="replace")
    assert "Kafka version: 4." in server_log
    jars = {p.name for p in (stack.state_dir / "kafka" / "libs").glob("*.jar")}
    assert any(j.startswith("kafka_2.13-4.") for j in jars)
    assert any(j.startswith("log4j-slf4j-impl-") for j in jars)
    pid = (stack.state_dir / "pids" / "kafka.pid").read_text().strip()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"kafka.Kafka" in cmdline
