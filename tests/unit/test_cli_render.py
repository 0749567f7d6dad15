"""What the `grants` CLI shows: tables, HTTP error details, tail lines, and never personal
data."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

from rich.console import Console

from grants_cli import render
from grants_cli.kafka_tail import EventLine, TailFilter, describe
from shared.events import Envelope
from tests.conftest import load_sample

PERSONAL = ("Eva Nilsen", "eva@pasvik.example.no", "+4747788990", "Pasvik Bygdelag")


def shown(renderable: Any) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(renderable)
    return buffer.getvalue()


def application_view() -> dict[str, Any]:
    return {
        "application_id": "a0edea8f-1356-4a89-9c02-08cd8b97b4ae",
        "external_ref": "portal-2027-0080",
        "channel": "http",
        "received_at": "2026-11-22T02:36:50.380472Z",
        "workflow_id": "application-a0edea8f-1356-4a89-9c02-08cd8b97b4ae",
        "status": "in_review",
        "document": load_sample("small-grant-head-of-section.json"),
    }


def test_status_shows_the_case_and_no_contact_person() -> None:
    review: dict[str, Any] = {
        "status": "in_review",
        "advisor": "kari.nordmann",
        "decider_role": "head_of_section",
        "next_deadline": "2026-12-02T10:00:00Z",
        "recommended": None,
        "board_meeting": None,
        "ineligible_reasons": [],
    }
    fields = render.status_fields(application_view(), review)
    assert fields["advisor"] == "kari.nordmann"
    assert fields["requested"] == {"amount": "75000", "currency": "NOK"}
    text = shown(render.status_table(fields))
    for expected in ("in_review", "kari.nordmann", "head_of_section", "75 000.00 NOK"):
        assert expected in text
    assert "2026-12-02 10:00:00" in text
    dumped = json.dumps(fields) + text
    for secret in PERSONAL:
        assert secret not in dumped


def test_status_without_a_review_yet() -> None:
    fields = render.status_fields(application_view() | {"status": None}, None)
    assert fields["status"] is None and fields["advisor"] is None
    assert "—" in shown(render.status_table(fields))


def test_timeline_rows_drop_the_payloads() -> None:
    document = load_sample("small-grant-head-of-section.json")
    events: list[dict[str, Any]] = [
        {
            "type": "application.submitted",
            "occurred_at": "2026-11-22T02:36:50+00:00",
            "source": "intake",
            "actor": None,
            "payload": {"document": document},
        },
        {
            "type": "decision.made",
            "occurred_at": "2026-11-22T03:36:50+01:00",
            "source": "review",
            "actor": "ingrid.solberg",
            "payload": {"status": "approved", "comment": ""},
        },
    ]
    rows = render.timeline_rows(events)
    assert rows[1] == {
        "occurred_at": "2026-11-22T03:36:50+01:00",
        "type": "decision.made",
        "actor": "ingrid.solberg",
        "source": "review",
        "status": "approved",
    }
    text = shown(render.timeline_table(rows))
    assert "decision.made" in text and "ingrid.solberg" in text and "approved" in text
    assert "2026-11-22 02:36:50" in text  # shown in UTC
    for secret in PERSONAL:
        assert secret not in json.dumps(rows) + text


def test_ledger_table_has_every_column() -> None:
    text = shown(
        render.ledger_table(
            [
                {
                    "funding_line": "UD-PROJECT",
                    "year": 2026,
                    "currency": "NOK",
                    "budget": "40000000.00",
                    "committed": "1235000.00",
                    "disbursed": "0.00",
                    "released": "930000.00",
                    "available": "39695000.00",
                }
            ]
        )
    )
    for expected in ("UD-PROJECT", "2026", "40 000 000.00", "39 695 000.00", "NOK", "released"):
        assert expected in text


def test_amounts_are_exact() -> None:
    assert render.amount("120248.00") == "120 248.00"
    assert render.amount("999999999999.99") == "999 999 999 999.99"
    assert render.money({"amount": "2350.38", "currency": "EUR"}) == "2 350.38 EUR"
    assert render.money(None) == "—"


def test_http_error_details() -> None:
    assert render.format_detail("already decided: approved") == "already decided: approved"
    detail = [
        {"loc": ["body", "applicant", "contact", "phone"], "msg": "bad", "input": "+47 secret"},
        {"loc": ["body", "title"], "msg": "Field required"},
    ]
    text = render.format_detail(detail)
    assert text == "applicant.contact.phone: bad; title: Field required"
    assert "secret" not in text


def test_tail_lines_for_envelopes_dead_letters_and_garbage() -> None:
    app_id = uuid.uuid4()
    envelope = Envelope(
        type="decision.made",
        application_id=app_id,
        source="review",
        actor="ingrid.solberg",
        payload={"comment": "Eva Nilsen was lovely", "status": "approved"},
    )
    line = describe("grants.application-events", envelope.model_dump_json().encode())
    assert (line.type, line.application_id, line.actor) == (
        "decision.made",
        str(app_id),
        "ingrid.solberg",
    )
    assert "Eva" not in json.dumps(line.as_dict())

    bank = Envelope(
        type="bank.payment_answer",
        source="bank",
        payload={"reference": "BG-0123456789AB-A1", "attempt": 1, "outcome": "confirmed"},
    )
    line = describe("grants.bank.payment-answers", bank.model_dump_json().encode())
    assert (line.reference, line.actor, line.application_id) == ("BG-0123456789AB-A1", "bank", None)

    dead = {
        "reason": "invalid phone +4747788990",
        "error_type": "ValidationError",
        "original_topic": "grants.applications.inbound",
        "original_key": None,
        "failed_at": "2026-11-22T02:00:00Z",
        "consumer": "intake.inbound",
        "value": "…",
    }
    line = describe("grants.applications.inbound.dlq", json.dumps(dead).encode())
    assert line.type == "dead-letter:ValidationError"
    assert "4747788990" not in json.dumps(line.as_dict())

    assert describe("t", b"\xff\x00not json").type == "(not JSON)"
    assert describe("t", b"[1, 2]").type == "(not JSON)"


def test_tail_filter() -> None:
    line = EventLine(time="—", type="review.submitted", application_id="a", actor=None, topic="t")
    assert TailFilter().accepts(line)
    assert TailFilter(type_prefixes=("review.",)).accepts(line)
    assert TailFilter(type_prefixes=("decision.", "review.sub")).accepts(line)
    assert not TailFilter(type_prefixes=("decision.",)).accepts(line)
    assert TailFilter(application_id="a").accepts(line)
    assert not TailFilter(application_id="b").accepts(line)
