"""Reconciliation after a fault run: per application the run submitted, is everything there
exactly once?

- exactly one stored application (intake.applications, by external_ref) and exactly one
  lifecycle workflow (Temporal visibility), in a terminal status;
- its events (every service's outbox) each once, each in intake's timeline;
- for an approved grant exactly one budget commitment and the right payments: the advance
  (or core installments) and, when closed, the final payment, each requested once and
  confirmed once, with the amounts the settlement rules give; the commitment's disbursed
  amount equal to what was paid; nothing for what was not approved;
- every notification its events call for recorded once and sent (notifications.deliveries),
  and received once by the local providers (MailDev by Message-ID, the SMS gateway by the
  application's reference);
and for the stack as a whole: no outbox row left unsent in any schema, zero lag for every
consumer group, and every budget ledger equal to the sum of its commitments."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from services.notifications.app import CONSUMER as NOTIFICATIONS_CONSUMER
from services.notifications.milestones import channels_for, milestone_for
from services.payments.repository import BANK_ANSWERS_CONSUMER
from services.payments.settlement import advance, installments, settle
from shared import temporal
from shared.config import SERVICE_NAMES, Settings
from shared.contracts.grant import BANK_PAYMENT_REQUEST
from shared.contracts.money import Money
from shared.events import Envelope, parse_payload
from shared.temporal import SA_STATUS, payment_reference
from shared.topics import APPLICATION_EVENTS
from tests.conftest import connect_as
from tests.faults.load import TERMINAL, Tracked

Log = Callable[[str], None]

# Events that may legitimately happen more than once for one application (a review phase
# restarts after an information answer; a report is resubmitted after changes were asked).
REPEATABLE = frozenset(
    {
        "review.advisor_assigned",
        "review.reminder",
        "review.escalated",
        "report.submitted",
        "report.changes_requested",
        "report.reminder",
        "report.overdue",
        "report.escalated",
        "budget.refused",
    }
)
# The event that ends each terminal status.
TERMINAL_EVENT = {
    "closed": "grant.closed",
    "lapsed": "grant.lapsed",
    "withdrawn": "application.withdrawn",
    "ineligible": "application.screened",
    "rejected": "decision.made",
}
MESSAGE_ID = re.compile(r"delivery-(\d+)\.([0-9a-f-]{36})@")
REFERENCE = re.compile(r"FLT-[0-9A-F]{6}-\d{5}")


@dataclass
class Reconciliation:
    label: str
    applications: int = 0
    not_acknowledged: int = 0
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    stuck: int = 0
    # Sent again because the notifications service was killed between the provider's
    # acceptance and recording it (the lease expired): the documented at-least-once edge of
    # a kill -9 mid-send. E-mails carry the same Message-ID, so de-duplicating mail systems
    # drop the copy. Any other copy counts as duplicated.
    resent: int = 0
    unsent_outbox: dict[str, int] = field(default_factory=dict)
    lag: dict[str, int] = field(default_factory=dict)
    ledger_mismatches: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    checked: Counter[str] = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)
    settle_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def unsent(self) -> int:
        return sum(self.unsent_outbox.values())

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.wrong == 0
            and self.stuck == 0
            and self.not_acknowledged == 0
            and self.unsent == 0
            and self.total_lag == 0
            and not self.ledger_mismatches
        )


# --------------------------------------------------------------------------- the stack


async def unsent_outbox(settings: Settings) -> dict[str, int]:
    counts: dict[str, int] = {}
    for role in SERVICE_NAMES:
        conn = await connect_as(settings, role)
        try:
            counts[role] = int(
                await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            )
        finally:
            await conn.close()
    return counts


# The services' consumer groups (services/*/app.py).
SERVICE_GROUPS = frozenset(
    {
        "intake.inbound",
        "intake.lifecycle",
        "intake.timeline",
        "intake.register",
        "review.commands",
        NOTIFICATIONS_CONSUMER,
        BANK_ANSWERS_CONSUMER,
    }
)


def service_lag(lag: dict[str, int]) -> dict[str, int]:
    """The services' groups: what must be caught up. Any other group (a test's or a tool's
    reader that committed once and left) is reported, not required."""
    return {g: n for g, n in lag.items() if g in SERVICE_GROUPS}


async def consumer_lag(settings: Settings) -> dict[str, int]:
    """Lag of every consumer group that has committed offsets on existing topics (readers
    without a group or without commits, like the tests' own, have nothing to lag)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await consumer.start()
    await producer.start()
    try:
        existing = set(await admin.list_topics())
        committed: dict[str, dict[TopicPartition, int]] = {}
        for group in await admin.list_consumer_groups():
            group_id = group[0]
            offsets = {
                tp: meta.offset
                for tp, meta in (await admin.list_consumer_group_offsets(group_id)).items()
                if tp.topic in existing  # a deleted scratch topic's offsets may linger
            }
            if offsets:
                committed[group_id] = offsets
        topics = {tp.topic for offsets in committed.values() for tp in offsets}
        partitions: list[TopicPartition] = []
        for topic in topics:
            found = await producer.partitions_for(topic)  # fetches the topic's metadata
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        lag: dict[str, int] = {}
        for group_id, offsets in committed.items():
            total = 0
            for tp, end in ends.items():
                if tp.topic not in {t.topic for t in offsets}:
                    continue
                position = offsets.get(tp, -1)
                total += max(0, end - max(position, 0))
            lag[group_id] = total
        return lag
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()


async def deliveries_in_flight(settings: Settings, app_ids: list[UUID]) -> int:
    conn = await connect_as(settings, "notifications")
    try:
        return int(
            await conn.fetchval(
                """SELECT count(*) FROM deliveries
                   WHERE application_id = ANY($1::uuid[]) AND status IN ('pending', 'sending')""",
                app_ids,
            )
        )
    finally:
        await conn.close()


async def wait_quiet(
    settings: Settings, app_ids: list[UUID], log: Log, timeout: float = 240
) -> float:
    """Wait until the stack is quiet: every outbox sent, every consumer group caught up and
    no delivery of the run waiting to be sent (a delivery whose sender was killed mid-send
    waits for its lease, GRANTS_NOTIFY_LEASE_SECONDS). Returns the seconds it took."""
    started = time.monotonic()
    quiet = 0
    last = ""
    while True:
        try:
            unsent = await unsent_outbox(settings)
            lag = service_lag(await consumer_lag(settings))
            pending = await deliveries_in_flight(settings, app_ids)
            state = (
                f"unsent outbox {sum(unsent.values())}, lag {sum(lag.values())}, "
                f"deliveries in flight {pending}"
            )
            quiet = quiet + 1 if not sum(unsent.values()) + sum(lag.values()) + pending else 0
        except Exception as exc:  # the stack is still recovering
            state, quiet = f"not readable yet ({type(exc).__name__}: {exc})", 0
        elapsed = time.monotonic() - started
        if quiet >= 2:
            return elapsed
        if state != last or int(elapsed) % 15 == 0:
            log(f"settling ({elapsed:.0f}s): {state}")
            last = state
        if elapsed > timeout:
            log(f"not quiet after {timeout:.0f}s: {state}")
            return elapsed
        await asyncio.sleep(1.5)


# --------------------------------------------------------------------------- gathering


@dataclass
class Evidence:
    stored: dict[str, list[UUID]] = field(default_factory=lambda: defaultdict(list))
    timeline: dict[UUID, set[UUID]] = field(default_factory=lambda: defaultdict(set))
    events: dict[UUID, list[tuple[str, Envelope]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    commitments: dict[UUID, list[asyncpg.Record]] = field(default_factory=lambda: defaultdict(list))
    payments: dict[UUID, list[asyncpg.Record]] = field(default_factory=lambda: defaultdict(list))
    deliveries: dict[UUID, list[asyncpg.Record]] = field(default_factory=lambda: defaultdict(list))
    lifecycles: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    reviews: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    grants: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    emails: dict[UUID, list[int]] = field(default_factory=lambda: defaultdict(list))
    sms: Counter[str] = field(default_factory=Counter)
    ledgers: list[asyncpg.Record] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    # When the notifications service was killed (epoch seconds).
    notifications_killed: list[float] = field(default_factory=list)


async def gather(
    settings: Settings, tracked: list[Tracked], config: dict[str, Any], since: float
) -> Evidence:
    ev = Evidence(config=config)
    refs = [t.external_ref for t in tracked]
    conn = await connect_as(settings, "intake")
    try:
        for row in await conn.fetch(
            "SELECT id, external_ref FROM applications WHERE external_ref = ANY($1::text[])", refs
        ):
            ev.stored[row["external_ref"]].append(row["id"])
    finally:
        await conn.close()
    app_ids = [i for ids in ev.stored.values() for i in ids]
    keys = [str(i) for i in app_ids]
    prefixes = [payment_reference(i, "x", 0)[:15] for i in app_ids]
    for role in SERVICE_NAMES:
        conn = await connect_as(settings, role)
        try:
            rows = await conn.fetch(
                """SELECT topic, envelope FROM outbox
                   WHERE key = ANY($1::text[]) OR left(key, 15) = ANY($2::text[])""",
                keys,
                prefixes,
            )
            for row in rows:
                envelope = Envelope.model_validate_json(row["envelope"])
                if envelope.application_id is not None:
                    ev.events[envelope.application_id].append((row["topic"], envelope))
            if role == "intake":
                for row in await conn.fetch(
                    """SELECT application_id, event_id FROM timeline
                       WHERE application_id = ANY($1::uuid[])""",
                    app_ids,
                ):
                    ev.timeline[row["application_id"]].add(row["event_id"])
            elif role == "payments":
                for row in await conn.fetch(
                    "SELECT * FROM budget_commitments WHERE application_id = ANY($1::uuid[])",
                    app_ids,
                ):
                    ev.commitments[row["application_id"]].append(row)
                for row in await conn.fetch(
                    "SELECT * FROM payments WHERE application_id = ANY($1::uuid[])", app_ids
                ):
                    ev.payments[row["application_id"]].append(row)
                ev.ledgers = list(
                    await conn.fetch(
                        """SELECT l.funding_line, l.year, l.committed_minor, l.disbursed_minor,
                                  l.released_minor,
                                  coalesce(sum(c.amount_minor), 0) AS c_committed,
                                  coalesce(sum(c.disbursed_minor), 0) AS c_disbursed,
                                  coalesce(sum(c.released_minor), 0) AS c_released
                           FROM budget_ledgers l
                           LEFT JOIN budget_commitments c USING (funding_line, year)
                           GROUP BY l.funding_line, l.year, l.committed_minor,
                                    l.disbursed_minor, l.released_minor"""
                    )
                )
            elif role == "notifications":
                for row in await conn.fetch(
                    """SELECT id, application_id, milestone, channel, status, attempts, last_error,
                              created_at, sent_at
                       FROM deliveries WHERE application_id = ANY($1::uuid[])""",
                    app_ids,
                ):
                    ev.deliveries[row["application_id"]].append(row)
        finally:
            await conn.close()

    client = await temporal.connect(settings)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since - 120))
    for workflow_type, into in (
        ("ApplicationLifecycle", ev.lifecycles),
        ("ApplicationReview", ev.reviews),
        ("GrantLifecycle", ev.grants),
    ):
        query = f'WorkflowType = "{workflow_type}" AND StartTime >= "{started}"'
        async for execution in client.list_workflows(query):
            into[execution.id].append(execution)
    # Visibility is updated asynchronously: what it does not show as finished (or at all) is
    # asked of the workflow itself.
    for app_id in app_ids:
        workflow_id = f"application-{app_id}"
        listed = ev.lifecycles.get(workflow_id, [])
        if (
            len(listed) == 1
            and listed[0].status != WorkflowExecutionStatus.RUNNING
            and listed[0].typed_search_attributes.get(SA_STATUS) in TERMINAL
        ):
            continue
        try:
            described = await client.get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            continue
        if len(listed) <= 1:
            ev.lifecycles[workflow_id] = [described]

    async with httpx.AsyncClient(timeout=120) as http:
        wanted = set(app_ids)
        try:
            mails = (await http.get(f"http://127.0.0.1:{settings.maildev_web_port}/email")).json()
            for mail in mails:
                found = MESSAGE_ID.search(str(mail.get("messageId") or ""))
                if found and UUID(found.group(2)) in wanted:
                    ev.emails[UUID(found.group(2))].append(int(found.group(1)))
        except (httpx.HTTPError, ValueError) as exc:
            ev.emails.clear()
            ev.config["maildev_error"] = f"{type(exc).__name__}: {exc}"
        try:
            url = f"http://127.0.0.1:{settings.sms_gateway_port}/messages"
            for message in (await http.get(url)).json():
                for ref in REFERENCE.findall(str(message.get("body") or "")):
                    ev.sms[ref] += 1
        except (httpx.HTTPError, ValueError) as exc:
            ev.config["sms_error"] = f"{type(exc).__name__}: {exc}"
    return ev


# --------------------------------------------------------------------------- checking


def _minor(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def _money(minor: int, currency: str) -> Money:
    return Money(amount=(Decimal(minor) / 100).quantize(Decimal("0.01")), currency=currency)


class _App:
    """The findings for one application."""

    def __init__(self, t: Tracked) -> None:
        self.t = t
        self.found: list[tuple[str, str]] = []

    def add(self, kind: str, what: str) -> None:
        self.found.append((kind, what))

    def kinds(self) -> set[str]:
        return {k for k, _ in self.found}


def check(tracked: list[Tracked], ev: Evidence, label: str) -> Reconciliation:
    result = Reconciliation(label=label)
    apps: list[_App] = []
    for t in tracked:
        app = _App(t)
        apps.append(app)
        ids = ev.stored.get(t.external_ref, [])
        if not t.acknowledged:
            result.not_acknowledged += 1
            app.add("lost", "submission never acknowledged within the run's time")
            if not ids:
                continue
        result.applications += 1
        if len(ids) != 1:
            app.add("lost" if not ids else "duplicated", f"{len(ids)} stored applications")
            if not ids:
                continue
        _check_one(app, ids[0], ev, result)
    for app in apps:
        kinds = app.kinds()
        result.lost += "lost" in kinds
        result.duplicated += "duplicated" in kinds
        result.wrong += "wrong" in kinds
        result.stuck += "stuck" in kinds
        result.resent += "resent" in kinds
        for kind, what in app.found:
            result.findings.append(f"{app.t.external_ref} ({app.t.application_id}): {kind}: {what}")
    for row in ev.ledgers:
        for column in ("committed", "disbursed", "released"):
            if row[f"{column}_minor"] != row[f"c_{column}"]:
                result.ledger_mismatches.append(
                    f"ledger {row['funding_line']} {row['year']}: {column} "
                    f"{row[f'{column}_minor']} != sum of commitments {row[f'c_{column}']}"
                )
    for key in ("maildev_error", "sms_error"):
        if key in ev.config:
            result.notes.append(f"{key}: {ev.config[key]}")
    return result


def _check_one(app: _App, app_id: UUID, ev: Evidence, result: Reconciliation) -> None:
    t = app.t
    # --- the workflow
    lifecycles = ev.lifecycles.get(f"application-{app_id}", [])
    result.checked["workflows"] += 1
    if len(lifecycles) != 1:
        app.add("lost" if not lifecycles else "duplicated", f"{len(lifecycles)} lifecycles")
    reviews = ev.reviews.get(f"review-{app_id}", [])
    if len(reviews) > 1:
        app.add("duplicated", f"{len(reviews)} review workflows")
    # A grant is one chain of runs (core support continues as new each year).
    grants = [
        g
        for g in ev.grants.get(f"grant-{app_id}", [])
        if g.status != WorkflowExecutionStatus.CONTINUED_AS_NEW
    ]
    if len(grants) > 1:
        app.add("duplicated", f"{len(grants)} grant workflows")
    status: str | None = None
    if lifecycles:
        execution = lifecycles[0]
        status = execution.typed_search_attributes.get(SA_STATUS)
        if execution.status == WorkflowExecutionStatus.RUNNING or status not in TERMINAL:
            app.add("stuck", f"lifecycle {execution.status.name} in status {status}")
        elif execution.status != WorkflowExecutionStatus.COMPLETED:
            app.add("wrong", f"lifecycle ended {execution.status.name}")
    result.outcomes[status or "unknown"] += 1
    kind = t.plan.kind
    if (kind == "ineligible") != (status == "ineligible") and status in TERMINAL:
        app.add("wrong", f"{t.plan.sample} ended {status}")

    # --- events: each once, each in the timeline
    events = ev.events.get(app_id, [])
    identities: Counter[tuple[Any, ...]] = Counter()
    for topic, envelope in events:
        p = envelope.payload
        identity = (topic, envelope.type, p.get("reference"), p.get("attempt"), p.get("year"))
        if envelope.type not in REPEATABLE:
            identities[identity] += 1
    for identity, count in identities.items():
        if count > 1:
            app.add("duplicated", f"event {identity[1:]} {count} times")
    lifecycle_events = [e for topic, e in events if topic == APPLICATION_EVENTS]
    result.checked["events"] += len(lifecycle_events)
    seen = ev.timeline.get(app_id, set())
    missing = [e.type for e in lifecycle_events if e.event_id not in seen]
    if missing:
        app.add("lost", f"events missing from the timeline: {missing}")
    types = Counter(e.type for e in lifecycle_events)
    if status in TERMINAL_EVENT and types[TERMINAL_EVENT[status]] != 1:
        app.add("lost", f"{TERMINAL_EVENT[status]} {types[TERMINAL_EVENT[status]]} times")

    # --- money
    _check_money(app, app_id, status, lifecycle_events, ev, result)

    # --- notifications
    _check_notifications(app, app_id, lifecycle_events, ev, result)


def _check_money(
    app: _App,
    app_id: UUID,
    status: str | None,
    events: list[Envelope],
    ev: Evidence,
    result: Reconciliation,
) -> None:
    t = app.t
    approved = [
        e for e in events if e.type == "decision.made" and e.payload.get("outcome") == "approved"
    ]
    commitments = ev.commitments.get(app_id, [])
    payments = ev.payments.get(app_id, [])
    requests = [e for e in ev.events.get(app_id, []) if e[1].type == BANK_PAYMENT_REQUEST]
    result.checked["payments"] += len(payments)
    if not approved:
        if commitments:
            app.add("duplicated", "a budget commitment without an approval")
        if payments:
            app.add("duplicated", f"{len(payments)} payments without an approval")
        if status in ("closed", "lapsed"):
            app.add("lost", f"{status} without an approval event")
        return
    result.checked["commitments"] += 1
    if len(commitments) != 1:
        app.add("lost" if not commitments else "duplicated", f"{len(commitments)} commitments")
        return
    commitment = commitments[0]
    currency = commitment["currency"]
    grant = _money(commitment["amount_minor"], currency)
    if status not in ("closed", "lapsed"):
        return  # stuck or not approved in the end: reported elsewhere
    if commitment["status"] != "released":
        app.add("wrong", f"commitment still {commitment['status']} after {status}")
    expected: dict[str, Money] = {}
    if status == "closed":
        line = ev.config.get("lines", {}).get(commitment["funding_line"], {})
        share = Decimal(str(line.get("advance_share", "0.8")))
        if t.plan.kind == "core":
            years = int(t.document.get("core_years") or 1)
            for number, amount in enumerate(installments(grant, years), start=1):
                expected[payment_reference(app_id, "installment", number)] = amount
        else:
            paid_in_advance = advance(grant, share)
            expected[payment_reference(app_id, "advance", 1)] = paid_in_advance
            reports = [e for e in events if e.type == "report.submitted"]
            if not reports:
                app.add("lost", "closed without a report.submitted event")
                return
            actual = Money.model_validate(reports[-1].payload["actual_costs"])
            total = Money(amount=Decimal(str(t.document["budget"]["total"])), currency=currency)
            final = settle(grant, paid_in_advance, total, actual).final_payment
            if final.amount > 0:
                expected[payment_reference(app_id, "final", 1)] = final
    by_reference: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in payments:
        by_reference[row["reference"]].append(row)
    for reference, amount in expected.items():
        rows = by_reference.get(reference, [])
        confirmed = [r for r in rows if r["status"] == "confirmed"]
        if not rows:
            app.add("lost", f"payment {reference} never requested")
        elif len(rows) > 1:
            app.add("duplicated", f"payment {reference}: {len(rows)} attempts")
        if len(confirmed) > 1:
            app.add("duplicated", f"payment {reference} confirmed {len(confirmed)} times")
        elif rows and not confirmed:
            app.add("lost", f"payment {reference} not confirmed ({rows[-1]['status']})")
        for row in rows:
            if row["amount_minor"] != _minor(amount.amount) or row["currency"] != amount.currency:
                app.add(
                    "wrong",
                    f"payment {reference} of {row['amount_minor']} minor, expected {amount}",
                )
    for reference in set(by_reference) - set(expected):
        app.add("duplicated", f"unexpected payment {reference} ({status})")
    asked = Counter((e.payload.get("reference"), e.payload.get("attempt")) for _, e in requests)
    for (asked_reference, attempt), count in asked.items():
        if count > 1:
            app.add("duplicated", f"bank request {asked_reference}/{attempt} {count} times")
    for reference in by_reference:
        if (reference, 1) not in asked:
            app.add("lost", f"no bank request for {reference}")
    paid = sum(r["amount_minor"] for r in payments if r["status"] == "confirmed")
    if paid != commitment["disbursed_minor"]:
        app.add("wrong", f"disbursed {commitment['disbursed_minor']} != confirmed {paid}")


def _check_notifications(
    app: _App, app_id: UUID, events: list[Envelope], ev: Evidence, result: Reconciliation
) -> None:
    t = app.t
    opted_out = bool(t.document["applicant"]["contact"].get("sms_opt_out"))
    expected: set[tuple[str, str]] = set()
    for envelope in events:
        try:
            milestone = milestone_for(envelope, parse_payload(envelope))
        except Exception as exc:
            app.add("wrong", f"event {envelope.type} unreadable: {exc}")
            continue
        if milestone is not None:
            expected |= {(milestone.key, c) for c in channels_for(milestone, opted_out)}
    rows = ev.deliveries.get(app_id, [])
    result.checked["deliveries"] += len(rows)
    recorded = Counter((r["milestone"], r["channel"]) for r in rows)
    for key in expected - set(recorded):
        app.add("lost", f"no delivery {key[0]}/{key[1]}")
    for key, count in recorded.items():
        if key not in expected:
            app.add("duplicated", f"delivery {key[0]}/{key[1]} without its event")
        if count > 1:
            app.add("duplicated", f"delivery {key[0]}/{key[1]} recorded {count} times")
    for row in rows:
        if row["status"] != "sent":
            app.add("lost", f"delivery {row['milestone']}/{row['channel']} {row['status']}")
    # A delivery sent again because the notifications service was killed while sending it:
    # a later attempt, and a kill of the service between the delivery's recording and its
    # (second) sending.
    by_id = {r["id"]: r for r in rows}

    def resent(row: asyncpg.Record | None) -> bool:
        return (
            row is not None
            and row["attempts"] > 1
            and row["sent_at"] is not None
            and any(
                row["created_at"].timestamp() <= kill <= row["sent_at"].timestamp()
                for kill in ev.notifications_killed
            )
        )

    if "maildev_error" not in ev.config:
        sent = {r["id"] for r in rows if r["channel"] == "email" and r["status"] == "sent"}
        received = ev.emails.get(app_id, [])
        result.checked["emails"] += len(received)
        copies = Counter(received)
        for delivery_id, count in copies.items():
            if count > 1:
                kind = "resent" if resent(by_id.get(delivery_id)) else "duplicated"
                app.add(kind, f"e-mail of delivery {delivery_id} received {count} times")
            if delivery_id not in sent:
                app.add("duplicated", f"e-mail of delivery {delivery_id}, not a sent delivery")
        for delivery_id in sent - set(copies):
            app.add("lost", f"e-mail of delivery {delivery_id} not in the inbox")
    if "sms_error" not in ev.config:
        sent_sms = sum(1 for r in rows if r["channel"] == "sms" and r["status"] == "sent")
        received_sms = ev.sms.get(t.external_ref, 0)
        result.checked["sms"] += received_sms
        if received_sms > sent_sms:
            resends = sum(1 for r in rows if r["channel"] == "sms" and resent(r))
            kind = "resent" if received_sms - sent_sms <= resends else "duplicated"
            app.add(kind, f"{received_sms} SMS received for {sent_sms} sent deliveries")
        elif received_sms < sent_sms:
            app.add("lost", f"{received_sms} SMS received for {sent_sms} sent deliveries")


async def reconcile(
    settings: Settings,
    tracked: list[Tracked],
    config: dict[str, Any],
    since: float,
    label: str,
    log: Log,
    settle_timeout: float = 240,
    notifications_killed: list[float] | None = None,
) -> Reconciliation:
    app_ids = [t.application_id for t in tracked if t.application_id is not None]
    settle_seconds = await wait_quiet(settings, app_ids, log, settle_timeout)
    evidence = await gather(settings, tracked, config, since)
    evidence.notifications_killed = list(notifications_killed or [])
    result = check(tracked, evidence, label)
    result.settle_seconds = settle_seconds
    result.unsent_outbox = await unsent_outbox(settings)
    lag = await consumer_lag(settings)
    result.lag = service_lag(lag)
    result.notes += [
        f"consumer group {g} (not a service's) lags {n}"
        for g, n in sorted(lag.items())
        if g not in SERVICE_GROUPS and n
    ]
    return result


# --------------------------------------------------------------------------- the report


def table(results: Iterable[Reconciliation]) -> str:
    header = (
        "| fault | applications | lost | duplicated | wrong | stuck | resent | unsent outbox "
        "| lag | outcomes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    lines = [header]
    for r in results:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r.outcomes.items()))
        lines.append(
            f"| {r.label} | {r.applications} | {r.lost} | {r.duplicated} | {r.wrong} "
            f"| {r.stuck} | {r.resent} | {r.unsent} | {r.total_lag} | {outcomes} |"
        )
    return "\n".join(lines)


def details(r: Reconciliation, limit: int = 40) -> str:
    lines = [
        f"{r.label}: {r.applications} applications, checked "
        + ", ".join(f"{v} {k}" for k, v in sorted(r.checked.items()))
        + f"; settled in {r.settle_seconds:.0f}s",
        "unsent outbox: " + json.dumps(r.unsent_outbox),
        "consumer lag: " + json.dumps(r.lag),
    ]
    lines += r.notes + r.ledger_mismatches
    if r.not_acknowledged:
        lines.append(f"{r.not_acknowledged} submissions never acknowledged")
    lines += r.findings[:limit]
    if len(r.findings) > limit:
        lines.append(f"... and {len(r.findings) - limit} more findings")
    return "\n".join(lines)
