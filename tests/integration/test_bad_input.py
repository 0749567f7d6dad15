"""Bad input over HTTP and Kafka on the real stack.

HTTP: every POST endpoint gets malformed JSON, invalid UTF-8, wrong types, missing fields, NUL
bytes, an oversized body and ids that do not exist or are not ids: each a clear 4xx, never a
500. SQL-injection strings in every text field of an application are stored and shown back
verbatim. Kafka: every inbound topic gets the same kinds of bad messages plus commands out of
order, for unknown applications or payments, and duplicates: each lands on the topic's `.dlq`
with its reason (matched by the message key), and a message after them is still processed.
Finally no test application's workflow is left retrying a workflow task.

A bad message that would wedge a real consumer for good is shown on a scratch topic with the
same consumer wrapper (`shared.kafka.subscribe`), never on the services' own topics."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx
import pytest
from aiokafka.errors import MessageSizeTooLargeError
from pydantic import BaseModel
from temporalio.client import Client

from shared import temporal
from shared.auth import Role
from shared.config import Settings
from shared.contracts.grant import BANK_PAYMENT_ANSWER
from shared.events import (
    AGREEMENT_ACCEPT,
    APPLICATION_SUBMIT,
    DECISION_DECIDE,
    INFORMATION_ANSWER,
    REPORT_SUBMIT,
    REVIEW_REQUEST_INFORMATION,
    REVIEW_SUBMIT,
    Envelope,
)
from shared.kafka import create_broker, subscribe
from shared.topics import (
    APPLICATIONS_INBOUND,
    BANK_PAYMENT_ANSWERS,
    REVIEW_COMMANDS,
    dead_letter_topic,
)
from tests.conftest import connect_as, load_sample, service_url
from tests.kafka_helpers import (
    create_scratch_topics,
    delete_scratch_topics,
    latest_offsets,
    partitions_of,
    publish_batch,
    records_by_key,
)
from tests.tokens import OPERATOR, bearer, kafka_auth
from tests.waiting import eventually

pytestmark = pytest.mark.integration

SCORES = {
    "cooperation": 5,
    "relevance": 4,
    "feasibility": 4,
    "budget_realism": 3,
    "people_to_people": 5,
}
HEAD_OF_SECTION = "ingrid.solberg"
DIRECTOR = "erik.haugen"
BOARD = "board.chair"
ADVISOR = "kari.nordmann"
FINANCE_USER = "finance.tester"
APPLICANT_ORG = "976543210"

INJECTIONS = [
    "'; DROP TABLE applications; --",
    '" OR 1=1 --',
    "Robert'); DROP TABLE students;--",
    "\\'; SELECT pg_sleep(5); --",
    "1; UPDATE intake.applications SET document = '{}'; --",
    "$$; DROP SCHEMA intake CASCADE; $$",
    "%' OR '1'='1",
]

# Applications this module made: checked at the end for workflows stuck retrying.
_APPLICATIONS: list[str] = []


def fresh(name: str = "ineligible-youth-wrong-target.json") -> dict[str, Any]:
    """A sample with a new external_ref; by default one screening closes right away."""
    doc = load_sample(name)
    doc["external_ref"] = f"bad-input-{uuid.uuid4()}"
    return doc


def envelope(event_type: str, payload: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """An envelope as plain JSON data, to be spoilt."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "correlation_id": str(uuid.uuid4()),
        "source": "bad-input-test",
        "payload": payload,
        **fields,
    }


def raw(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def auth(role: Role, sub: str, org: str | None = None) -> dict[str, str]:
    return bearer(role, sub, org=org)


class Api:
    """Plain HTTP clients for the three services with POST endpoints."""

    def __init__(self, settings: Settings) -> None:
        self.clients = {
            name: httpx.AsyncClient(base_url=service_url(settings, name), timeout=30)
            for name in ("intake", "review", "payments")
        }

    def __getitem__(self, service: str) -> httpx.AsyncClient:
        return self.clients[service]

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def submit(self, doc: dict[str, Any]) -> str:
        response = await self["intake"].post("/applications", json=doc, headers=OPERATOR)
        assert response.status_code == 201, response.text
        app_id: str = response.json()["application_id"]
        _APPLICATIONS.append(app_id)
        return app_id

    async def by_ref(self, ref: str) -> list[dict[str, Any]]:
        response = await self["intake"].get(
            "/applications", params={"external_ref": ref}, headers=OPERATOR
        )
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    async def shown(self, app_id: str) -> dict[str, Any]:
        response = await self["intake"].get(f"/applications/{app_id}", headers=OPERATOR)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def timeline(self, app_id: str) -> list[dict[str, Any]]:
        response = await self["intake"].get(f"/applications/{app_id}/timeline", headers=OPERATOR)
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()
        return events

    async def wait_event(self, app_id: str, event_type: str, timeout: float = 60) -> Any:
        async def probe() -> dict[str, Any] | None:
            return next((e for e in await self.timeline(app_id) if e["type"] == event_type), None)

        return await eventually(probe, timeout=timeout)

    async def review_state(self, app_id: str) -> dict[str, Any] | None:
        response = await self["review"].get(f"/applications/{app_id}", headers=OPERATOR)
        if response.status_code != 200:
            return None
        state: dict[str, Any] = response.json()
        return state

    async def wait_status(self, app_id: str, *statuses: str, timeout: float = 60) -> Any:
        async def probe() -> dict[str, Any] | None:
            state = await self.review_state(app_id)
            return state if state and state["status"] in statuses else None

        return await eventually(probe, timeout=timeout)


@pytest.fixture(scope="module")
async def api(stack: Settings) -> AsyncIterator[Api]:
    clients = Api(stack)
    yield clients
    await clients.close()


@pytest.fixture(scope="module")
async def tclient(stack: Settings) -> Client:
    return await temporal.connect(stack)


# ------------------------------------------------------------------------------------------
# HTTP: every POST endpoint
# ------------------------------------------------------------------------------------------

Path = tuple[str | int, ...]
ParamKind = Literal["application_id", "reference", "meeting", "none"]


@dataclass(frozen=True)
class Endpoint:
    name: str
    service: str
    path: str  # "{id}" where the path parameter goes
    param: ParamKind
    body: Callable[[str], Any]  # a valid body (given the id, for bodies that name one)
    wrong_type: tuple[Path, Any]  # a field and a value of the wrong type
    missing: Path  # a required field
    nul: Path  # a text field
    role: Role
    sub: str
    org: str | None = None

    def make(self, app_id: str) -> Any:
        """A fresh copy of the valid body, free to spoil."""
        return copy.deepcopy(self.body(app_id))

    def url(self, ident: str) -> str:
        return self.path.format(id=ident)

    def headers(self) -> dict[str, str]:
        return {**auth(self.role, self.sub, self.org), "content-type": "application/json"}


def _report(_: str) -> dict[str, Any]:
    return {"actual_costs": {"amount": "140000.00", "currency": "EUR"}, "results": "Done."}


ENDPOINTS = [
    Endpoint(
        "intake-submit",
        "intake",
        "/applications",
        "none",
        lambda _: fresh("nb-barentskult-festival.json"),
        (("applicant", "contact", "language"), ["nb"]),
        ("budget",),
        ("title",),
        "operator",
        "ops.tester",
    ),
    Endpoint(
        "intake-information",
        "intake",
        "/applications/{id}/information",
        "application_id",
        lambda _: {"answer": "Two coaches from each club."},
        (("answer",), 42),
        ("answer",),
        ("answer",),
        "applicant",
        f"contact-{APPLICANT_ORG}",
        APPLICANT_ORG,
    ),
    Endpoint(
        "intake-agreement-acceptance",
        "intake",
        "/applications/{id}/agreement/acceptance",
        "application_id",
        lambda _: {"accepted_by": "Anna Lindqvist"},
        (("accepted_by",), ["Anna"]),
        ("accepted_by",),
        ("accepted_by",),
        "applicant",
        f"contact-{APPLICANT_ORG}",
        APPLICANT_ORG,
    ),
    Endpoint(
        "intake-reports",
        "intake",
        "/applications/{id}/reports",
        "application_id",
        _report,
        (("actual_costs", "amount"), "a lot"),
        ("results",),
        ("results",),
        "applicant",
        f"contact-{APPLICANT_ORG}",
        APPLICANT_ORG,
    ),
    Endpoint(
        "review-review",
        "review",
        "/applications/{id}/review",
        "application_id",
        lambda _: {
            "advisor": ADVISOR,
            "scores": SCORES,
            "comment": "Solid.",
            "recommendation": "approve",
        },
        (("scores", "relevance"), "high"),
        ("scores",),
        ("comment",),
        "advisor",
        ADVISOR,
    ),
    Endpoint(
        "review-information-request",
        "review",
        "/applications/{id}/information-request",
        "application_id",
        lambda _: {"advisor": ADVISOR, "question": "Who are the coaches?"},
        (("question",), {"text": "Who?"}),
        ("question",),
        ("question",),
        "advisor",
        ADVISOR,
    ),
    Endpoint(
        "review-decision",
        "review",
        "/applications/{id}/decision",
        "application_id",
        lambda _: {"decider": DIRECTOR, "role": "director", "outcome": "reject", "comment": "No."},
        (("outcome",), True),
        ("role",),
        ("comment",),
        "director",
        DIRECTOR,
    ),
    Endpoint(
        "review-board-decisions",
        "review",
        "/board/meetings/{id}/decisions",
        "meeting",
        lambda app_id: [
            {
                "application_id": app_id,
                "decision": {"decider": BOARD, "role": "board", "outcome": "reject", "comment": ""},
            }
        ],
        ((0, "application_id"), "not-a-uuid"),
        (0, "decision"),
        (0, "decision", "comment"),
        "board",
        BOARD,
    ),
    Endpoint(
        "review-final-report-review",
        "review",
        "/applications/{id}/final-report/review",
        "application_id",
        lambda _: {"advisor": ADVISOR, "outcome": "approve", "comment": "Fine."},
        (("outcome",), 1),
        ("advisor",),
        ("comment",),
        "advisor",
        ADVISOR,
    ),
    Endpoint(
        "payments-bank-details-corrected",
        "payments",
        "/payments/{id}/bank-details-corrected",
        "reference",
        lambda _: {"corrected_by": FINANCE_USER},
        (("corrected_by",), 7),
        ("corrected_by",),
        ("corrected_by",),
        "finance",
        FINANCE_USER,
    ),
    Endpoint(
        "payments-claim-back-settled",
        "payments",
        "/applications/{id}/claim-back/settled",
        "application_id",
        lambda _: {"settled_by": FINANCE_USER, "amount": {"amount": "100.00", "currency": "NOK"}},
        (("amount", "amount"), "a hundred"),
        ("amount",),
        ("settled_by",),
        "finance",
        FINANCE_USER,
    ),
]


def endpoint_params() -> list[Any]:
    params = []
    for e in ENDPOINTS:
        params.append(pytest.param(e, id=e.name))
    return params


def some_id(kind: ParamKind) -> str:
    """An id of the right form that names nothing."""
    if kind == "reference":
        return f"BG-{uuid.uuid4().hex[:12].upper()}-A1"
    if kind == "meeting":
        return "2026-12-01"
    return str(uuid.uuid4())


def set_in(body: Any, path: Path, value: Any) -> Any:
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return body


def drop(body: Any, path: Path) -> Any:
    target = body
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return body


def text_at(body: Any, path: Path) -> str:
    target = body
    for part in path:
        target = target[part]
    assert isinstance(target, str)
    return target


async def post(
    api: Api, endpoint: Endpoint, content: Any, ident: str | None = None
) -> httpx.Response:
    ident = ident or some_id(endpoint.param)
    return await api[endpoint.service].post(
        endpoint.url(ident), content=content, headers=endpoint.headers()
    )


def locations(response: httpx.Response) -> set[tuple[Any, ...]]:
    detail = response.json()["detail"]
    assert isinstance(detail, list), detail
    return {tuple(error["loc"]) for error in detail}


@pytest.mark.parametrize("endpoint", endpoint_params())
async def test_malformed_json_is_a_422_saying_so(api: Api, endpoint: Endpoint) -> None:
    for body in (b'{"answer": ', b"{'single': 'quotes'}", b"", b"[1, 2,]"):
        response = await post(api, endpoint, body)
        assert response.status_code == 422, (body, response.text)
        detail = response.json()["detail"]
        assert any("JSON" in e["msg"] or e["type"] == "missing" for e in detail), detail


@pytest.mark.parametrize("endpoint", endpoint_params())
async def test_invalid_utf8_is_a_4xx_not_a_500(api: Api, endpoint: Endpoint) -> None:
    for body in (b'{"answer": "\xff\xfe"}', b"\xc3\x28", b'{"title": "bad \xc0\xaf"}'):
        response = await post(api, endpoint, body)
        assert 400 <= response.status_code < 500, (body, response.status_code, response.text)
        assert response.json()["detail"]


@pytest.mark.parametrize("endpoint", endpoint_params())
async def test_a_lone_surrogate_is_a_4xx_not_a_500(stack: Settings, endpoint: Endpoint) -> None:
    valid = raw(endpoint.make(str(uuid.uuid4())))
    bodies = (
        b'{"text": "\xed\xa0\x80"}',
        b'{"text": "\\ud800"}',
        valid.replace(b'"', b'"\\udfff', 1),
    )
    statuses = []
    for body in bodies:
        # A client of its own: the server closes the connection after a 500.
        async with httpx.AsyncClient(base_url=service_url(stack, endpoint.service)) as client:
            response = await client.post(
                endpoint.url(some_id(endpoint.param)), content=body, headers=endpoint.headers()
            )
        statuses.append(response.status_code)
    assert all(400 <= s < 500 for s in statuses), statuses


@pytest.mark.parametrize("endpoint", endpoint_params())
async def test_a_wrong_type_is_a_422_naming_the_field(api: Api, endpoint: Endpoint) -> None:
    ident = some_id(endpoint.param)
    path, value = endpoint.wrong_type
    body = set_in(endpoint.make(str(uuid.uuid4())), path, value)
    response = await post(api, endpoint, raw(body), ident)
    assert response.status_code == 422, response.text
    assert ("body", *path) in locations(response)

    # The body itself of the wrong type: a JSON string, number or list for an object.
    for whole in ('"a string"', "42", "[]" if endpoint.param != "meeting" else "{}"):
        response = await post(api, endpoint, whole.encode(), ident)
        assert response.status_code == 422, (whole, response.text)


async def test_a_header_of_the_wrong_type_is_a_422_naming_it(api: Api) -> None:
    response = await api["intake"].post(
        "/applications",
        json=fresh(),
        headers={**OPERATOR, "x-correlation-id": "'; DROP TABLE outbox; --"},
    )
    assert response.status_code == 422, response.text
    assert ("header", "x-correlation-id") in locations(response)


@pytest.mark.parametrize("endpoint", endpoint_params())
async def test_a_missing_field_is_a_422_naming_the_field(api: Api, endpoint: Endpoint) -> None:
    body = drop(endpoint.make(str(uuid.uuid4())), endpoint.missing)
    response = await post(api, endpoint, raw(body))
    assert response.status_code == 422, response.text
    assert ("body", *endpoint.missing) in locations(response)
    missing = [e for e in response.json()["detail"] if e["type"] == "missing"]
    assert missing, response.text

    # No body at all, and JSON null.
    for nothing in (b"", b"null"):
        response = await post(api, endpoint, nothing)
        assert response.status_code == 422, (nothing, response.text)


@pytest.mark.parametrize("endpoint", endpoint_params())
async def test_a_nul_byte_in_a_string_is_a_422(api: Api, endpoint: Endpoint) -> None:
    body = endpoint.make(str(uuid.uuid4()))
    original = text_at(body, endpoint.nul)
    set_in(body, endpoint.nul, original[:2] + "\x00" + original[2:] if original else "\x00")
    response = await post(api, endpoint, raw(body))
    assert response.status_code == 422, (response.status_code, response.text)
    assert ("body", *endpoint.nul) in locations(response)


@pytest.mark.parametrize("endpoint", endpoint_params())
async def test_an_oversized_body_is_a_413(api: Api, endpoint: Endpoint, settings: Settings) -> None:
    padding = b"x" * (settings.http_max_body_bytes + 1024)
    body = b'{"padding": "' + padding + b'"}'
    response = await post(api, endpoint, body)
    assert response.status_code == 413, response.text
    assert str(settings.http_max_body_bytes) in response.json()["detail"]

    # Without a content-length (chunked): the limit still holds.
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    response = await post(api, endpoint, chunks())
    assert response.status_code == 413, response.text


@pytest.mark.parametrize("endpoint", [p for p in endpoint_params() if p.values[0].param != "none"])
async def test_an_unknown_id_is_a_clear_refusal(api: Api, endpoint: Endpoint) -> None:
    app_id = str(uuid.uuid4())
    ident = app_id if endpoint.param == "application_id" else some_id(endpoint.param)
    response = await post(api, endpoint, raw(endpoint.make(app_id)), ident)
    if endpoint.param == "meeting":
        # A batch: each decision is accepted or refused on its own.
        assert response.status_code == 200, response.text
        (item,) = response.json()
        assert item["application_id"] == app_id
        assert item["accepted"] is False
        assert item["refused"]
        return
    # 403 is how an applicant hears "none" (the same as "not yours": nothing leaks).
    allowed = (403, 404, 409) if endpoint.role == "applicant" else (404, 409)
    assert response.status_code in allowed, (response.status_code, response.text)
    assert response.json()["detail"]


NOT_IDS = ["not-a-uuid", "1 OR 1=1", "'; DROP TABLE applications; --", "%00"]
# One hex digit too many for a UUID; for a meeting, a day that does not exist. (An all-digit
# meeting such as "000" is taken as a Unix timestamp, 1970-01-01, by pydantic's lax dates.)
NOT_IDS_OF_A_KIND = {"application_id": "0" * 33, "meeting": "2026-02-30", "reference": "x" * 36}


@pytest.mark.parametrize(
    ("endpoint", "bad"),
    [
        pytest.param(p.values[0], bad, id=f"{p.id}-{bad}")
        for p in endpoint_params()
        if p.values[0].param != "none"
        for bad in [*NOT_IDS, NOT_IDS_OF_A_KIND[p.values[0].param]]
    ],
)
async def test_a_path_parameter_that_is_not_an_id_is_refused(
    api: Api, endpoint: Endpoint, bad: str
) -> None:
    body = raw(endpoint.make(str(uuid.uuid4())))
    ident = quote(bad, safe="") if bad != "%00" else bad  # %00: a NUL in the path
    response = await post(api, endpoint, body, ident)
    if endpoint.param == "reference":
        # Any text can be a reference: one no payment has is unknown.
        assert response.status_code == 404, response.text
        return
    assert response.status_code == 422, response.text
    name = "meeting" if endpoint.param == "meeting" else "application_id"
    assert ("path", name) in locations(response)


READS: list[tuple[str, str, dict[str, str], Role, str, int]] = [
    ("intake", "/applications/not-a-uuid", {}, "operator", "ops.tester", 422),
    ("intake", "/applications/not-a-uuid/timeline", {}, "operator", "ops.tester", 422),
    ("intake", "/applications", {"limit": "ten"}, "operator", "ops.tester", 422),
    ("intake", "/applications", {"limit": "0"}, "operator", "ops.tester", 422),
    ("intake", "/applications", {"before": "yesterday"}, "operator", "ops.tester", 422),
    ("review", "/applications/1%20OR%201=1", {}, "operator", "ops.tester", 422),
    ("review", "/assignments", {"status": "lost"}, "operator", "ops.tester", 422),
    ("review", "/assignments", {"limit": "-1"}, "operator", "ops.tester", 422),
    ("payments", "/payments", {"application_id": "not-a-uuid"}, "finance", FINANCE_USER, 422),
    ("payments", "/payments", {"status": "paid?"}, "finance", FINANCE_USER, 422),
    ("payments", "/ledgers", {"year": "twenty"}, "finance", FINANCE_USER, 422),
    ("payments", "/ledgers/UD-PROJECT/twenty", {}, "finance", FINANCE_USER, 422),
    ("payments", "/ledgers/UD-PROJECT/99999999999999", {}, "finance", FINANCE_USER, 404),
    ("payments", "/ledgers/%00/2026", {}, "finance", FINANCE_USER, 404),
    ("payments", "/payments/'%3B%20DROP%20TABLE%20payments%3B--", {}, "finance", FINANCE_USER, 404),
    ("payments", "/payments/BG-%00", {}, "finance", FINANCE_USER, 404),
]


@pytest.mark.parametrize(
    ("service", "path", "params", "role", "sub", "expected"),
    READS,
    ids=[f"{r[0]}-{r[1]}-{'-'.join(r[2])}" for r in READS],
)
async def test_bad_path_and_query_parameters_of_reads_are_refused(
    api: Api,
    service: str,
    path: str,
    params: dict[str, str],
    role: Role,
    sub: str,
    expected: int,
) -> None:
    response = await api[service].get(path, params=params, headers=auth(role, sub))
    assert response.status_code == expected, response.text
    assert response.json()["detail"]


# ------------------------------------------------------------------------------------------
# HTTP: SQL injection in every text field, NUL look-alikes, duplicates
# ------------------------------------------------------------------------------------------


def injected(value: str) -> dict[str, Any]:
    """The application document with `value` in every text field."""
    doc = fresh("nb-barentskult-festival.json")
    doc["external_ref"] = f"{value}{uuid.uuid4()}"[:100]
    for key in ("title", "category", "target_group", "objective", "cooperation"):
        doc[key] = value
    doc["applicant"]["name"] = value
    doc["applicant"]["org_number"] = value
    doc["applicant"]["contact"]["name"] = value
    doc["partners"].append({"name": value, "country": "RU", "role": "partner"})
    for partner in doc["partners"]:
        partner["name"] = value
    doc["activities"] = [value, f"{value} 2"]
    return doc


TEXT_FIELDS: list[Path] = [
    ("external_ref",),
    ("title",),
    ("category",),
    ("target_group",),
    ("objective",),
    ("cooperation",),
    ("applicant", "name"),
    ("applicant", "org_number"),
    ("applicant", "contact", "name"),
    ("partners", 0, "name"),
    ("partners", 1, "name"),
    ("activities", 0),
    ("activities", 1),
]


@pytest.mark.parametrize("value", INJECTIONS)
async def test_sql_injection_in_every_text_field_is_stored_and_shown_verbatim(
    api: Api, value: str
) -> None:
    doc = injected(value)
    assert len(doc["partners"]) >= 2
    started = time.monotonic()
    app_id = await api.submit(doc)
    assert time.monotonic() - started < 5, "the submission took as long as pg_sleep(5)"

    shown = (await api.shown(app_id))["document"]
    for path in TEXT_FIELDS:
        assert text_at(shown, path) == text_at(doc, path), path

    # Found by its (injected) reference, exactly once; the same document again is the same.
    (found,) = await api.by_ref(doc["external_ref"])
    assert found["application_id"] == app_id
    assert found["title"] == value
    again = await api["intake"].post("/applications", json=doc, headers=OPERATOR)
    assert again.status_code == 200, again.text
    assert again.json()["application_id"] == app_id

    # The lifecycle's first event carries the very same strings.
    submitted = await api.wait_event(app_id, "application.submitted")
    for path in TEXT_FIELDS:
        assert text_at(submitted["payload"]["document"], path) == text_at(doc, path), path

    # The register looks the reference up safely too.
    register = await api["intake"].get(f"/register/{quote(value, safe='')}", headers=OPERATOR)
    assert register.status_code == 404, register.text


async def test_the_tables_survive_the_injections(api: Api, stack: Settings) -> None:
    for value in INJECTIONS[:3]:
        await api.submit(injected(value))
    conn = await connect_as(stack, "intake")
    try:
        assert await conn.fetchval("SELECT to_regclass('intake.applications') IS NOT NULL")
        assert await conn.fetchval("SELECT count(*) FROM intake.applications") > 0
    finally:
        await conn.close()
    # A normal submission afterwards is stored and starts its lifecycle.
    app_id = await api.submit(fresh())
    await api.wait_event(app_id, "application.screened")


async def test_a_submission_posted_twice_is_one_application(api: Api) -> None:
    doc = fresh()
    first = await api["intake"].post("/applications", json=doc, headers=OPERATOR)
    second = await api["intake"].post("/applications", json=doc, headers=OPERATOR)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["application_id"] == second.json()["application_id"]
    _APPLICATIONS.append(first.json()["application_id"])
    assert len(await api.by_ref(doc["external_ref"])) == 1


async def test_text_that_only_looks_like_a_nul_escape_is_processed(api: Api) -> None:
    doc = fresh()
    doc["title"] = "Escapes like \\u0000 in C"
    response = await api["intake"].post("/applications", json=doc, headers=OPERATOR)
    assert response.status_code == 201, response.text
    app_id = response.json()["application_id"]
    assert (await api.shown(app_id))["document"]["title"] == doc["title"]
    await api.wait_event(app_id, "application.screened", timeout=10)


@pytest.fixture(scope="module")
async def in_review(api: Api) -> tuple[str, str]:
    """An application in review: (application id, its advisor)."""
    app_id = await api.submit(fresh("small-grant-head-of-section.json"))
    state = await api.wait_status(app_id, "in_review")
    advisor: str = state["advisor"]
    return app_id, advisor


async def test_a_nul_in_an_action_on_a_real_application_is_refused(api: Api) -> None:
    app_id = await api.submit(fresh("nb-ungdom-fotball.json"))
    state = await api.wait_status(app_id, "in_review")
    response = await api["review"].post(
        f"/applications/{app_id}/information-request",
        json={"advisor": state["advisor"], "question": "Who\x00 are the coaches?"},
        headers=auth("advisor", state["advisor"]),
    )
    assert response.status_code == 422, (response.status_code, response.text)
    assert (await api.review_state(app_id) or {}).get("status") == "in_review"


# ------------------------------------------------------------------------------------------
# Kafka: every inbound topic
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    value: bytes
    reason: str  # part of the dead letter's reason
    headers: list[tuple[str, bytes]] | None = None


@dataclass
class KafkaRun:
    topic: str
    consumer: str
    partition: int
    sent: dict[str, Bad]
    keys: dict[str, str]
    dead: dict[str, dict[str, Any]]
    facts: dict[str, Any] = field(default_factory=dict)


def generic_cases(event_type: str, payload: dict[str, Any], **fields: Any) -> dict[str, Bad]:
    """The bad messages every topic gets, spoiling a good `event_type` envelope."""
    good = envelope(event_type, payload, **fields)
    nul_text = json.dumps(good).replace('"bad-input-test"', '"bad-in\\u0000put"')
    return {
        "malformed-json": Bad(raw(good)[:-7], "invalid envelope: Invalid JSON"),
        "not-json-at-all": Bad(b"<xml>hello</xml>", "invalid envelope: Invalid JSON"),
        "empty": Bad(b"", "invalid envelope"),
        "json-not-an-object": Bad(b'["a", "list"]', "invalid envelope"),
        "invalid-utf8": Bad(raw(good).replace(b"bad-input-test", b"bad-\xff\xfe-test"), "UTF-8"),
        "overlong-utf8": Bad(raw(good).replace(b"bad-input-test", b"bad-\xc0\xaf"), "UTF-8"),
        "lone-surrogate": Bad(
            raw(good).replace(b"bad-input-test", b"bad-\\ud800-test"), "invalid envelope"
        ),
        "nul-byte": Bad(raw(good).replace(b"bad-input-test", b"bad-\x00-test"), "NUL"),
        "nul-escaped": Bad(nul_text.encode(), "NUL"),
        "unknown-type": Bad(
            raw({**good, "type": "grants.explode"}), "unknown event type 'grants.explode' version 1"
        ),
        "unknown-version": Bad(
            raw({**good, "version": 9}), f"unknown event type {event_type!r} version 9"
        ),
        "sql-in-type": Bad(
            raw({**good, "type": "'; DROP TABLE inbox; --"}),
            'unknown event type "\'; DROP TABLE inbox; --"',
        ),
        "envelope-wrong-types": Bad(
            raw({**good, "version": "one", "event_id": 12, "occurred_at": "yesterday"}),
            "invalid envelope: ",
        ),
        "envelope-missing-payload": Bad(
            raw({k: v for k, v in good.items() if k != "payload"}),
            "invalid envelope: payload: Field required",
        ),
        "envelope-missing-type": Bad(
            raw({k: v for k, v in good.items() if k != "type"}),
            "invalid envelope: type: Field required",
        ),
        "envelope-unknown-field": Bad(
            raw({**good, "paylaod": {}}), "invalid envelope: paylaod: Extra inputs"
        ),
        "payload-not-an-object": Bad(raw({**good, "payload": "text"}), "invalid envelope: payload"),
    }


def inbound_cases(known_id: str, known: dict[str, Any]) -> dict[str, Bad]:
    org = known["applicant"]["org_number"]
    operator = kafka_auth("operator", "portal")
    applicant = kafka_auth("applicant", f"contact-{org}", org=org)
    doc = fresh()
    cases = generic_cases(APPLICATION_SUBMIT, {"document": doc})
    wrong = fresh()
    wrong["title"] = 123
    wrong["partners"] = "none"
    wrong["budget"]["total"] = "lots"
    missing = fresh()
    del missing["title"]
    del missing["budget"]
    typo = fresh()
    typo["titel"] = typo.pop("title")
    nul_doc = fresh()
    nul_doc["title"] = "Fest\x00ival"
    other = dict(known, title="Et annet prosjekt")
    what = "invalid payload for application.submit v1"
    cases |= {
        "payload-wrong-types": Bad(
            raw(envelope(APPLICATION_SUBMIT, {"document": wrong})), f"{what}: payload.document."
        ),
        "payload-missing-fields": Bad(
            raw(envelope(APPLICATION_SUBMIT, {"document": missing})),
            f"{what}: payload.document.title: Field required",
        ),
        "payload-unknown-field": Bad(
            raw(envelope(APPLICATION_SUBMIT, {"document": typo})), "titel: Extra inputs"
        ),
        "payload-missing-document": Bad(
            raw(envelope(APPLICATION_SUBMIT, {})), f"{what}: payload.document: Field required"
        ),
        "nul-in-document": Bad(raw(envelope(APPLICATION_SUBMIT, {"document": nul_doc})), "NUL"),
        "reused-external-ref": Bad(
            raw(envelope(APPLICATION_SUBMIT, {"document": other})),
            f"is already used by application {known_id}",
            operator,
        ),
        "answer-for-unknown-application": Bad(
            raw(
                envelope(
                    INFORMATION_ANSWER,
                    {"answer": {"answer": "Here."}},
                    application_id=str(uuid.uuid4()),
                )
            ),
            "application.information_answer for an unknown application",
            applicant,
        ),
        "answer-without-application": Bad(
            raw(envelope(INFORMATION_ANSWER, {"answer": {"answer": "Here."}})),
            "application.information_answer must name its application_id",
            applicant,
        ),
        "answer-not-asked": Bad(
            raw(
                envelope(
                    INFORMATION_ANSWER, {"answer": {"answer": "Here."}}, application_id=known_id
                )
            ),
            "application.information_answer refused",
            applicant,
        ),
        "report-without-grant": Bad(
            raw(envelope(REPORT_SUBMIT, {"report": _report("")}, application_id=known_id)),
            "report.submit refused",
            applicant,
        ),
        "acceptance-without-grant": Bad(
            raw(
                envelope(
                    AGREEMENT_ACCEPT,
                    {"acceptance": {"accepted_by": "Solveig Eriksen"}},
                    application_id=known_id,
                )
            ),
            "agreement.accept refused",
            applicant,
        ),
        "report-wrong-types": Bad(
            raw(
                envelope(
                    REPORT_SUBMIT,
                    {"report": {"actual_costs": "140000", "results": ["x"], "year": "one"}},
                    application_id=known_id,
                )
            ),
            "invalid payload for report.submit v1: payload.report.",
        ),
    }
    return cases


async def run_topic(
    settings: Settings,
    topic: str,
    consumer: str,
    cases: dict[str, Bad],
    after: list[tuple[bytes | None, bytes, list[tuple[str, bytes]] | None]],
) -> KafkaRun:
    """Publish every case (each under its own key), then `after`, all to one partition, so
    the topic's consumer meets them in this order; collect the dead letters of the cases."""
    partition = random.choice(await partitions_of(settings, topic))
    dlq = dead_letter_topic(topic)
    since = await latest_offsets(settings, dlq)
    keys = {name: f"bad-input-{name}-{uuid.uuid4()}" for name in cases}
    messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]] | None]] = [
        (keys[name].encode(), bad.value, bad.headers) for name, bad in cases.items()
    ]
    await publish_batch(settings, topic, messages + after, partition)
    dead = await records_by_key(settings, dlq, set(keys.values()), since, timeout=60)
    by_name = {name: dead[key] for name, key in keys.items() if key in dead}
    return KafkaRun(topic, consumer, partition, cases, keys, by_name, {"since": since})


def check_dead_letter(run: KafkaRun, name: str) -> None:
    assert name in run.dead, f"{name}: no dead letter on {dead_letter_topic(run.topic)}"
    record = run.dead[name]
    bad = run.sent[name]
    assert bad.reason in record["reason"], record["reason"]
    assert record["error_type"] == "BadMessage"
    assert record["consumer"] == run.consumer
    assert record["original_topic"] == run.topic
    assert record["original_key"] == run.keys[name]
    assert record["partition"] == run.partition
    assert isinstance(record["offset"], int)
    # No retries for a message no retry can fix.
    assert record["attempts"] == 1
    # The original message, as it was: text when it is UTF-8, base64 otherwise.
    if "original_value" in record:
        assert record["original_value"].encode() == bad.value
    else:
        assert base64.b64decode(record["original_value_base64"]) == bad.value


def submission(doc: dict[str, Any], event_id: uuid.UUID | None = None) -> bytes:
    env = Envelope(type=APPLICATION_SUBMIT, source="portal", payload={"document": doc})
    if event_id is not None:
        env = env.model_copy(update={"event_id": event_id})
    return env.model_dump_json().encode()


@pytest.fixture(scope="module")
async def inbound_run(stack: Settings, api: Api) -> KafkaRun:
    known = fresh()
    known_id = await api.submit(known)
    await api.wait_event(known_id, "application.screened")
    cases = inbound_cases(known_id, known)

    operator = kafka_auth("operator", "portal")
    duplicate, injected_doc, follow = fresh(), injected(INJECTIONS[0]), fresh()
    event_id = uuid.uuid4()
    dup_key = f"bad-input-duplicate-{uuid.uuid4()}".encode()
    after: list[tuple[bytes | None, bytes, list[tuple[str, bytes]] | None]] = [
        # The same event twice, and a portal's retry of the document under a new event id.
        (dup_key, submission(duplicate, event_id), operator),
        (dup_key, submission(duplicate, event_id), operator),
        (dup_key, submission(duplicate), operator),
        # SQL injection over Kafka too; then a plain valid submission last.
        (b"bad-input-injected", submission(injected_doc), operator),
        (b"bad-input-follow-up", submission(follow), operator),
    ]
    run = await run_topic(stack, APPLICATIONS_INBOUND, "intake.inbound", cases, after)

    # The last message is processed: the consumer went on past every bad one.
    (followed,) = await eventually(lambda: api.by_ref(follow["external_ref"]), timeout=60)
    _APPLICATIONS.append(followed["application_id"])
    run.facts |= {
        "follow": followed,
        "known": known_id,
        "duplicates": await api.by_ref(duplicate["external_ref"]),
        "injected": (injected_doc, await api.by_ref(injected_doc["external_ref"])),
        "dup_dead": await records_by_key(
            stack,
            dead_letter_topic(APPLICATIONS_INBOUND),
            {dup_key.decode()},
            run.facts["since"],
            timeout=2,
        ),
    }
    for app in run.facts["duplicates"]:
        _APPLICATIONS.append(app["application_id"])
    return run


INBOUND_CASES = list(inbound_cases(str(uuid.uuid4()), fresh()))


@pytest.mark.parametrize("name", INBOUND_CASES)
async def test_a_bad_inbound_message_is_dead_lettered_with_its_reason(
    inbound_run: KafkaRun, name: str
) -> None:
    check_dead_letter(inbound_run, name)


async def test_the_inbound_consumer_keeps_consuming_after_every_bad_message(
    inbound_run: KafkaRun, api: Api
) -> None:
    follow = inbound_run.facts["follow"]
    assert (await api.shown(follow["application_id"]))["channel"] == "kafka"
    await api.wait_event(follow["application_id"], "application.screened")


async def test_a_duplicate_inbound_submission_is_one_application(
    inbound_run: KafkaRun, api: Api, tclient: Client
) -> None:
    (only,) = inbound_run.facts["duplicates"]
    # Nothing dead-lettered: a redelivery is not an error.
    assert inbound_run.facts["dup_dead"] == {}
    app_id = uuid.UUID(only["application_id"])
    await api.wait_event(str(app_id), "application.submitted")
    query = f"WorkflowId = '{temporal.lifecycle_workflow_id(app_id)}'"
    assert len([w async for w in tclient.list_workflows(query)]) == 1
    submitted = [e for e in await api.timeline(str(app_id)) if e["type"] == "application.submitted"]
    assert len(submitted) == 1


async def test_sql_injection_over_kafka_is_stored_verbatim(inbound_run: KafkaRun, api: Api) -> None:
    doc, found = inbound_run.facts["injected"]
    (stored,) = found
    _APPLICATIONS.append(stored["application_id"])
    shown = (await api.shown(stored["application_id"]))["document"]
    for path in TEXT_FIELDS:
        assert text_at(shown, path) == text_at(doc, path), path


async def test_a_refused_applicant_action_changes_nothing(inbound_run: KafkaRun, api: Api) -> None:
    """An answer nobody asked for, a report and an acceptance without a grant: refused, and
    the application stays as it was (closed as ineligible, no grant events)."""
    known = inbound_run.facts["known"]
    assert (await api.shown(known))["status"] == "ineligible"
    types = {e["type"] for e in await api.timeline(known)}
    assert not types & {
        "review.information_answered",
        "agreement.accepted",
        "report.submitted",
        "payment.requested",
    }


# --- review commands -------------------------------------------------------------------------


def review_cases() -> dict[str, Bad]:
    action = {"advisor": ADVISOR, "scores": SCORES, "comment": "ok", "recommendation": "approve"}
    advisor = kafka_auth("advisor", ADVISOR)
    director = kafka_auth("director", DIRECTOR)
    unknown = str(uuid.uuid4())
    cases = generic_cases(REVIEW_SUBMIT, {"action": action}, application_id=unknown)
    what = "invalid payload for review.submit v1: payload.action"
    cases |= {
        "application-id-not-a-uuid": Bad(
            raw(envelope(REVIEW_SUBMIT, {"action": action}, application_id="1 OR 1=1")),
            "invalid envelope: application_id",
        ),
        "payload-wrong-types": Bad(
            raw(
                envelope(
                    REVIEW_SUBMIT,
                    {"action": {**action, "scores": {**SCORES, "relevance": "five"}}},
                    application_id=unknown,
                )
            ),
            what,
        ),
        "score-out-of-range": Bad(
            raw(
                envelope(
                    REVIEW_SUBMIT,
                    {"action": {**action, "scores": {**SCORES, "relevance": 9}}},
                    application_id=unknown,
                )
            ),
            what,
        ),
        "payload-missing-fields": Bad(
            raw(envelope(REVIEW_SUBMIT, {"action": {"comment": "ok"}}, application_id=unknown)),
            what,
        ),
        "advisor-sql": Bad(
            raw(
                envelope(
                    REVIEW_SUBMIT,
                    {"action": {**action, "advisor": "x'; DROP TABLE assignments; --"}},
                    application_id=unknown,
                )
            ),
            what,
        ),
        "without-application": Bad(
            raw(envelope(REVIEW_SUBMIT, {"action": action})),
            "review.submit must name its application_id",
            advisor,
        ),
        "review-for-unknown-application": Bad(
            raw(envelope(REVIEW_SUBMIT, {"action": action}, application_id=unknown)),
            f"review.submit refused: no workflow review-{unknown} is open",
            advisor,
        ),
        "information-request-for-unknown-application": Bad(
            raw(
                envelope(
                    REVIEW_REQUEST_INFORMATION,
                    {"action": {"advisor": ADVISOR, "question": "Who?"}},
                    application_id=unknown,
                )
            ),
            "review.request_information refused: no workflow",
            advisor,
        ),
        "review-carrying-a-question": Bad(
            raw(
                envelope(
                    REVIEW_SUBMIT,
                    {"action": {"advisor": ADVISOR, "question": "Who?"}},
                    application_id=unknown,
                )
            ),
            "review.submit carries a RequestInformation",
            advisor,
        ),
        "decision-for-unknown-application": Bad(
            raw(
                envelope(
                    DECISION_DECIDE,
                    {"action": {"decider": DIRECTOR, "role": "director", "outcome": "reject"}},
                    application_id=unknown,
                )
            ),
            "decision.decide refused: no workflow",
            director,
        ),
        "decision-wrong-types": Bad(
            raw(
                envelope(
                    DECISION_DECIDE,
                    {"action": {"decider": DIRECTOR, "role": "king", "outcome": "maybe"}},
                    application_id=unknown,
                )
            ),
            "invalid payload for decision.decide v1: payload.action.",
        ),
    }
    return cases


def decide(app_id: str, outcome: str) -> bytes:
    action = {"decider": HEAD_OF_SECTION, "role": "head_of_section", "outcome": outcome}
    return raw(envelope(DECISION_DECIDE, {"action": action}, application_id=app_id))


@pytest.fixture(scope="module")
async def review_run(stack: Settings, api: Api, in_review: tuple[str, str]) -> KafkaRun:
    app_id, advisor = in_review
    cases = review_cases()
    head = kafka_auth("head_of_section", HEAD_OF_SECTION)
    # Out of order: a decision for an application still in review.
    cases["decision-while-in-review"] = Bad(
        decide(app_id, "approve"), "decision.decide refused", head
    )
    run = await run_topic(stack, REVIEW_COMMANDS, "review.commands", cases, [])
    state = await api.review_state(app_id)
    events = [e["type"] for e in await api.timeline(app_id)]

    # Then the same application's commands in order, on the same partition: both processed.
    action = {"advisor": advisor, "scores": SCORES, "comment": "ok", "recommendation": "approve"}
    review = raw(envelope(REVIEW_SUBMIT, {"action": action}, application_id=app_id))
    await publish_batch(
        stack,
        REVIEW_COMMANDS,
        [(app_id.encode(), review, kafka_auth("advisor", advisor))],
        run.partition,
    )
    reviewed = await api.wait_status(app_id, "awaiting_decision")
    await publish_batch(
        stack, REVIEW_COMMANDS, [(app_id.encode(), decide(app_id, "reject"), head)], run.partition
    )
    decided = await api.wait_status(app_id, "rejected")
    run.facts |= {"after_refusal": (state, events), "reviewed": reviewed, "decided": decided}
    return run


REVIEW_CASES = [*review_cases(), "decision-while-in-review"]


@pytest.mark.parametrize("name", REVIEW_CASES)
async def test_a_bad_review_command_is_dead_lettered_with_its_reason(
    review_run: KafkaRun, name: str
) -> None:
    check_dead_letter(review_run, name)


async def test_a_decision_out_of_order_is_refused_and_changes_nothing(
    review_run: KafkaRun,
) -> None:
    reason = review_run.dead["decision-while-in-review"]["reason"]
    assert "in_review" in reason, reason
    state, events = review_run.facts["after_refusal"]
    assert state["status"] == "in_review"
    assert not {"decision.made", "budget.committed", "review.submitted"} & set(events)


async def test_the_review_consumer_keeps_consuming_after_every_bad_command(
    review_run: KafkaRun, api: Api, in_review: tuple[str, str]
) -> None:
    app_id, advisor = in_review
    assert review_run.facts["reviewed"]["advisor"] == advisor
    assert review_run.facts["decided"]["status"] == "rejected"
    events = [e["type"] for e in await api.timeline(app_id)]
    assert events.count("decision.made") <= 1
    assert "budget.committed" not in events  # the refused approval committed nothing


# --- bank answers ----------------------------------------------------------------------------


def bank_cases() -> dict[str, Bad]:
    finance = kafka_auth("finance", "bank-erp")
    unknown = f"BG-{uuid.uuid4().hex[:12].upper()}-A1"
    answer = {"reference": unknown, "attempt": 1, "outcome": "confirmed"}
    cases = generic_cases(BANK_PAYMENT_ANSWER, answer)
    what = "invalid payload for bank.payment_answer v1: payload."
    cases |= {
        "payload-wrong-types": Bad(
            raw(envelope(BANK_PAYMENT_ANSWER, {**answer, "attempt": "first"})), f"{what}attempt"
        ),
        "outcome-unknown": Bad(
            raw(envelope(BANK_PAYMENT_ANSWER, {**answer, "outcome": "maybe"})), f"{what}outcome"
        ),
        "attempt-zero": Bad(
            raw(envelope(BANK_PAYMENT_ANSWER, {**answer, "attempt": 0})), f"{what}attempt"
        ),
        "payload-missing-fields": Bad(
            raw(envelope(BANK_PAYMENT_ANSWER, {"outcome": "rejected"})),
            f"{what}reference: Field required",
        ),
        "reference-sql": Bad(
            raw(
                envelope(BANK_PAYMENT_ANSWER, {**answer, "reference": "'; DROP TABLE payments; --"})
            ),
            f"{what}reference",
        ),
        "reason-too-long": Bad(
            raw(
                envelope(
                    BANK_PAYMENT_ANSWER, {**answer, "outcome": "rejected", "reason": "x" * 501}
                )
            ),
            f"{what}reason",
        ),
        "answer-for-unknown-reference": Bad(
            raw(envelope(BANK_PAYMENT_ANSWER, answer)), f"no payment {unknown} attempt 1", finance
        ),
        "answer-for-unknown-application": Bad(
            raw(envelope(BANK_PAYMENT_ANSWER, answer, application_id=str(uuid.uuid4()))),
            f"no payment {unknown} attempt 1",
            finance,
        ),
    }
    return cases


@pytest.fixture(scope="module")
async def bank_run(stack: Settings) -> KafkaRun:
    cases = bank_cases()
    # The last one, well-formed, goes all the way to the payments table (and is refused
    # there: the test has no payment of its own to confirm), after every bad one.
    last = f"BG-{uuid.uuid4().hex[:12].upper()}-F1"
    cases["well-formed-last"] = Bad(
        raw(
            envelope(BANK_PAYMENT_ANSWER, {"reference": last, "attempt": 2, "outcome": "rejected"})
        ),
        f"no payment {last} attempt 2",
        kafka_auth("finance", "bank-erp"),
    )
    return await run_topic(stack, BANK_PAYMENT_ANSWERS, "payments.bank-answers", cases, [])


BANK_CASES = [*bank_cases(), "well-formed-last"]


@pytest.mark.parametrize("name", BANK_CASES)
async def test_a_bad_bank_answer_is_dead_lettered_with_its_reason(
    bank_run: KafkaRun, name: str
) -> None:
    check_dead_letter(bank_run, name)


# --- oversized messages ----------------------------------------------------------------------


@pytest.mark.parametrize("topic", [APPLICATIONS_INBOUND, REVIEW_COMMANDS, BANK_PAYMENT_ANSWERS])
async def test_a_message_over_the_brokers_limit_is_refused_at_the_door(
    stack: Settings, topic: str
) -> None:
    """The broker's message.max.bytes (default 1 MiB + 12) is below any batch carrying a value
    over the consumers' limit (1 MiB): such a message, uncompressed, never gets in."""
    too_big = raw(envelope(APPLICATION_SUBMIT, {"padding": "x" * 1_500_000}))
    key = f"bad-input-oversized-{uuid.uuid4()}".encode()
    with pytest.raises(MessageSizeTooLargeError):
        await publish_batch(stack, topic, [(key, too_big, None)], max_request_size=4_000_000)
    just_over = b"x" * (stack.kafka_max_message_bytes + 1)
    with pytest.raises(MessageSizeTooLargeError):
        await publish_batch(stack, topic, [(key, just_over, None)], max_request_size=4_000_000)


@pytest.mark.parametrize(
    ("value", "compression", "reason"),
    [
        pytest.param(b"\xff" * 1_000, None, "not valid UTF-8", id="small-control"),
        pytest.param(
            raw(envelope(APPLICATION_SUBMIT, {"padding": "x" * 1_500_000})),
            "gzip",
            "exceeds the limit",
            id="over-the-limit-compressed",
        ),
        pytest.param(b"\xff" * 800_000, None, "not valid UTF-8", id="800kB-not-utf8"),
        pytest.param(b"\\" * 600_000, None, "invalid envelope", id="600kB-backslashes"),
    ],
)
async def test_a_large_bad_message_is_dead_lettered_and_the_consumer_goes_on(
    stack: Settings, value: bytes, compression: str | None, reason: str
) -> None:
    """On a scratch topic, with the consumer wrapper every service uses: a message the broker
    accepts (compressed, or under every limit) but that is bad must be dead-lettered, and the
    next message handled. (On the services' own topics a wedged partition would stay wedged.)"""
    topic = f"test-bad-input-{uuid.uuid4().hex[:12]}"
    await create_scratch_topics(stack, topic, dead_letter_topic(topic))
    handled: list[str] = []

    async def handler(env: Envelope, payload: BaseModel) -> None:
        handled.append(str(env.event_id))

    client_id = f"bad-input-{uuid.uuid4().hex[:8]}"
    logging.getLogger(f"{client_id}.kafka").setLevel(logging.CRITICAL)
    broker = create_broker(stack, client_id)
    subscribe(broker, stack, topic=topic, group_id=client_id, handles={"*": handler})
    await broker.start()
    try:
        good = Envelope(type=APPLICATION_SUBMIT, source="t", payload={"document": fresh()})
        await publish_batch(
            stack,
            topic,
            [(b"large", value, None)],
            compression_type=compression,
            max_request_size=4_000_000,
        )
        await publish_batch(stack, topic, [(b"good", good.model_dump_json().encode(), None)])
        dead = await records_by_key(stack, dead_letter_topic(topic), {"large"}, timeout=6)
        assert "large" in dead, "never dead-lettered"
        assert reason in dead["large"]["reason"]

        async def went_on() -> bool:
            return str(good.event_id) in handled

        await eventually(went_on, timeout=5)
    finally:
        await broker.stop()
        await delete_scratch_topics(stack, topic, dead_letter_topic(topic))


# ------------------------------------------------------------------------------------------
# No workflow left retrying on a bad payload
# ------------------------------------------------------------------------------------------


async def test_no_test_application_has_a_workflow_task_retrying(
    tclient: Client, inbound_run: KafkaRun, review_run: KafkaRun, bank_run: KafkaRun
) -> None:
    assert _APPLICATIONS
    for app_id in dict.fromkeys(_APPLICATIONS):
        ident = uuid.UUID(app_id)
        handle = tclient.get_workflow_handle(temporal.lifecycle_workflow_id(ident))

        async def described(handle: Any = handle) -> Any:
            try:
                return await handle.describe()
            except Exception:
                return None  # not started yet: intake starts it from the relayed event

        description = await eventually(described, timeout=30)
        raw_description = description.raw_description
        if raw_description.HasField("pending_workflow_task"):
            assert raw_description.pending_workflow_task.attempt <= 1, app_id
        for activity in raw_description.pending_activities:
            assert activity.attempt <= 3, (app_id, activity.activity_type.name, activity.attempt)
        # The workflow answers queries: its code runs (no task failing on replay).
        status = await asyncio.wait_for(handle.query("status"), timeout=10)
        assert isinstance(status, str) and status, app_id

        # Its review child likewise (started once screening begins).
        review = tclient.get_workflow_handle(temporal.review_workflow_id(ident))
        child = (await review.describe()).raw_description
        if child.HasField("pending_workflow_task"):
            assert child.pending_workflow_task.attempt <= 1, app_id
        for activity in child.pending_activities:
            assert activity.attempt <= 3, (app_id, activity.activity_type.name, activity.attempt)
        assert await asyncio.wait_for(review.query("state"), timeout=10), app_id
