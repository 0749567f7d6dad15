"""How the CLI shows things: rich tables and short lines. Pure functions of the services'
JSON, so they are tested without a stack. Nothing here prints personal data: no contact
names, e-mail addresses or phone numbers, no payee names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

# Colour by how a status reads to an operator: done well, done badly, waiting, working.
_GOOD = {"approved", "agreement_pending", "active", "final_payment", "closed", "confirmed"}
_BAD = {"ineligible", "rejected", "withdrawn", "lapsed", "claim_back", "report_overdue"}
_WAITING = {
    "awaiting_decision",
    "information_requested",
    "report_due",
    "report_changes_requested",
    "requested",
}


def status_style(status: str | None) -> str:
    if status in _GOOD:
        return "green"
    if status in _BAD:
        return "red"
    if status in _WAITING:
        return "yellow"
    return "cyan"


def styled_status(status: str | None) -> Text:
    return Text(status or "—", style=status_style(status))


def when(value: str | datetime | None, *, seconds: bool = True) -> str:
    """A timestamp as `YYYY-MM-DD HH:MM:SS` (or without seconds) in UTC, or a dash."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        moment = value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def money(value: Mapping[str, Any] | None) -> str:
    """`{"amount": "75000.00", "currency": "NOK"}` as `75 000.00 NOK`."""
    if not value:
        return "—"
    return f"{amount(value.get('amount'))} {value.get('currency', '')}".strip()


def amount(value: object) -> str:
    """An exact decimal amount with thin grouping: `75 000.00`."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not number.is_finite():
        return str(value)
    return f"{number:,.2f}".replace(",", " ")


def format_detail(detail: object) -> str:
    """An HTTP error's `detail`: a sentence, or every failing field of a 422 as `loc: msg`
    (never the rejected input itself, which may be personal data)."""
    if detail is None:
        return ""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        lines = []
        for item in detail:
            if isinstance(item, Mapping):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                msg = str(item.get("msg", "invalid"))
                lines.append(f"{loc}: {msg}" if loc else msg)
            else:
                lines.append(str(item))
        return "; ".join(lines)
    return str(detail)


def status_fields(
    application: Mapping[str, Any], review: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One application's state: intake's document and status, review's advisor and
    deadlines. No contact person, no addresses."""
    document: Mapping[str, Any] = application.get("document") or {}
    budget: Mapping[str, Any] = document.get("budget") or {}
    applicant: Mapping[str, Any] = document.get("applicant") or {}
    fields: dict[str, Any] = {
        "application_id": application.get("application_id"),
        "external_ref": application.get("external_ref"),
        "title": document.get("title"),
        "funding_line": document.get("funding_line"),
        "funding_type": document.get("funding_type"),
        "applicant_org": applicant.get("org_number"),
        "applicant_country": applicant.get("country"),
        "requested": {"amount": budget.get("requested"), "currency": budget.get("currency")}
        if budget
        else None,
        "status": application.get("status") or (review or {}).get("status"),
        "received_at": application.get("received_at"),
        "workflow_id": application.get("workflow_id"),
        "advisor": None,
        "decider_role": None,
        "next_deadline": None,
        "recommended": None,
        "board_meeting": None,
        "ineligible_reasons": [],
    }
    if review:
        for key in (
            "advisor",
            "decider_role",
            "next_deadline",
            "recommended",
            "board_meeting",
            "ineligible_reasons",
        ):
            fields[key] = review.get(key)
    return fields


def status_table(fields: Mapping[str, Any]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column("field", style="bold")
    table.add_column("value", no_wrap=True)
    rows: list[tuple[str, str | Text]] = [
        ("application", str(fields.get("application_id") or "—")),
        ("external ref", str(fields.get("external_ref") or "—")),
        ("title", str(fields.get("title") or "—")),
        ("funding line", f"{fields.get('funding_line')} ({fields.get('funding_type')})"),
        ("applicant", f"org {fields.get('applicant_org')} ({fields.get('applicant_country')})"),
        ("requested", money(fields.get("requested"))),
        ("status", styled_status(fields.get("status"))),
        ("received", when(fields.get("received_at"))),
        ("advisor", str(fields.get("advisor") or "—")),
        ("decided by", str(fields.get("decider_role") or "—")),
        ("next deadline", when(fields.get("next_deadline"))),
    ]
    if fields.get("recommended"):
        rows.append(("recommended", money(fields.get("recommended"))))
    if fields.get("board_meeting"):
        rows.append(("board meeting", str(fields["board_meeting"])))
    if fields.get("ineligible_reasons"):
        rows.append(("ineligible", ", ".join(fields["ineligible_reasons"])))
    rows.append(("workflow", str(fields.get("workflow_id") or "—")))
    for name, value in rows:
        table.add_row(name, value)
    return table


def timeline_rows(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The timeline without payloads (which hold the document and people's names)."""
    rows = []
    for event in events:
        payload = event.get("payload")
        status = payload.get("status") if isinstance(payload, Mapping) else None
        rows.append(
            {
                "occurred_at": event.get("occurred_at"),
                "type": event.get("type"),
                "actor": event.get("actor"),
                "source": event.get("source"),
                "status": status,
            }
        )
    return rows


def timeline_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title=f"{len(rows)} events", title_justify="left")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("type", no_wrap=True, style="bold")
    table.add_column("actor")
    table.add_column("source")
    table.add_column("status")
    for row in rows:
        table.add_row(
            when(row.get("occurred_at")),
            str(row.get("type")),
            str(row.get("actor") or "—"),
            str(row.get("source") or "—"),
            styled_status(row.get("status")) if row.get("status") else Text("—"),
        )
    return table


def applications_table(
    rows: Sequence[Mapping[str, Any]], title: str = "", caption: str | None = None
) -> Table:
    table = Table(
        title=title or f"{len(rows)} applications",
        title_justify="left",
        caption=caption,
        caption_justify="left",
        caption_style="dim",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    # Ids are never cut; the rest folds when the terminal is narrow.
    table.add_column("application", no_wrap=True, min_width=36)
    table.add_column("status", no_wrap=True)
    table.add_column("line", no_wrap=True)
    table.add_column("advisor", no_wrap=True)
    table.add_column("next deadline", no_wrap=True)
    table.add_column("requested", justify="right", no_wrap=True)
    for row in rows:
        requested = row.get("requested")
        table.add_row(
            str(row.get("application_id")),
            styled_status(row.get("status")),
            str(row.get("funding_line") or "—"),
            str(row.get("advisor") or "—"),
            when(row.get("next_deadline"), seconds=False),
            amount(requested) if requested is not None else "—",
        )
    return table


LEDGER_COLUMNS = ("budget", "committed", "disbursed", "released", "available")


def ledger_table(ledgers: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="Budget ledgers", title_justify="left")
    table.add_column("line", no_wrap=True, style="bold")
    table.add_column("year", no_wrap=True)
    for name in LEDGER_COLUMNS:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("currency", no_wrap=True)
    for ledger in sorted(ledgers, key=lambda x: (str(x.get("funding_line")), x.get("year", 0))):
        table.add_row(
            str(ledger.get("funding_line")),
            str(ledger.get("year")),
            *(amount(ledger.get(name)) for name in LEDGER_COLUMNS),
            str(ledger.get("currency")),
        )
    return table


def payments_table(payments: Sequence[Mapping[str, Any]]) -> Table:
    """Payment attempts (no payee name: finance reads that in its own system)."""
    table = Table(
        title=f"{len(payments)} payment attempts",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("reference", no_wrap=True, min_width=18, style="bold")
    table.add_column("try", justify="right", no_wrap=True, min_width=3)
    table.add_column("kind", no_wrap=True)
    table.add_column("amount", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("requested", no_wrap=True)
    table.add_column("application", no_wrap=True, min_width=36)
    reasons = any(p.get("reason") for p in payments)
    if reasons:
        table.add_column("reason", no_wrap=True)
    for p in payments:
        cells: list[str | Text] = [
            str(p.get("reference")),
            str(p.get("attempt")),
            str(p.get("kind")),
            f"{amount(p.get('amount'))} {p.get('currency', '')}",
            styled_status(p.get("status")),
            when(p.get("requested_at"), seconds=False),
            str(p.get("application_id")),
        ]
        if reasons:
            cells.append(str(p.get("reason") or ""))
        table.add_row(*cells)
    return table


def action_result(result: Mapping[str, Any]) -> Text:
    """A review or decision outcome: the status it led to, the message, the money."""
    text = Text()
    text.append(str(result.get("status")), style=status_style(result.get("status")))
    text.append(f"  {result.get('message', '')}")
    if result.get("amount"):
        text.append(f"  amount {money(result.get('amount'))}")
    if result.get("available"):
        text.append(f"  ({money(result.get('available'))} available)")
    return text
