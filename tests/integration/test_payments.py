"""Payments against the real Postgres: requesting payments exactly once, the bank's answers
(disbursement on the ledger, repeated and contradicting answers), alerts, and finance's
HTTP API. Each test grants from its own funding line (`TEST-<uuid>`) in a far year, so tests
never collide with each other or with real ledgers. The grant workflow is not involved:
signals and updates go to test doubles."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, cast
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from faststream.kafka import TestKafkaBroker
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

from services.payments.activities import PaymentActivities
from services.payments.api import build_api
from services.payments.app import BankAnswers, register_subscribers
from services.payments.repository import PaymentRefused, Repository
from shared.config import REPO_ROOT, Settings
from shared.contracts.grant import (
    BANK_PAYMENT_ANSWER,
    BANK_PAYMENT_REQUEST,
    PAYMENT_CONFIRMED,
    PAYMENT_REJECTED,
    PAYMENT_REQUESTED,
    PAYMENT_UNCONFIRMED,
    UPDATE_BANK_DETAILS_CORRECTED,
    UPDATE_CLAIM_BACK_SETTLED,
    BankPaymentAnswer,
    BankPaymentRequested,
    GrantActionResult,
    PaymentEvent,
    PaymentKind,
    PaymentOrder,
    PaymentResult,
    PublishGrantEvent,
)
from shared.contracts.money import Money
from shared.db import create_pool, migrate
from shared.events import Envelope
from shared.funding import get_funding_config
from shared.kafka import BadMessage, create_broker
from shared.runtime import ServiceContext
from shared.temporal import grant_workflow_id, payment_reference
from shared.topics import (
    APPLICATION_EVENTS,
    BANK_PAYMENT_ANSWERS,
    BANK_PAYMENT_REQUESTS,
    dead_letter_topic,
    ensure_topics,
)
from tests.tokens import FINANCE, token

# The bank/ERP's system identity, as a Kafka header (the in-memory broker takes a dict).
BANK = {"authorization": f"Bearer {token('finance', 'bank-erp', sys='bank')}"}

pytestmark = pytest.mark.integration

MIGRATIONS = REPO_ROOT / "services" / "payments" / "migrations"
YEAR = 2099

# Applications and references the tests made up: their unsent events are removed at the end.
_MADE_UP: list[str] = []


def nok(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="NOK")


def new_line() -> str:
    return f"TEST-{uuid4().hex.upper()}"


@pytest.fixture(scope="module")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    await migrate(settings, "payments", MIGRATIONS)
    # The bank's topics, as every service creates them at start-up: the running service's
    # outbox relay publishes what these tests write.
    await ensure_topics(settings)
    pool = await create_pool(settings, "payments")
    yield pool
    # The tests' events are about made-up applications: keep them off Kafka when the
    # service's relay next runs. (Payments stay: the schema never deletes them.)
    await pool.execute(
        "DELETE FROM outbox WHERE published_at IS NULL AND key = ANY($1::text[])", _MADE_UP
    )
    await pool.close()


@pytest.fixture
def repo(pool: asyncpg.Pool) -> Repository:
    return Repository(pool)


class Signals:
    """Records what would be signalled to grant workflows."""

    def __init__(self) -> None:
        self.sent: list[tuple[UUID, PaymentResult]] = []

    async def __call__(self, application_id: UUID, result: PaymentResult) -> None:
        self.sent.append((application_id, result))


async def granted(repo: Repository, amount: str = "100000.00") -> tuple[UUID, str]:
    """An application with its grant committed on a fresh line: (application id, line)."""
    app, line = uuid4(), new_line()
    outcome = await repo.commit(app, line, YEAR, nok(amount), nok("10000000.00"))
    assert outcome.committed
    _MADE_UP.append(str(app))
    return app, line


def order(
    app: UUID,
    line: str,
    amount: str = "80000.00",
    *,
    attempt: int = 1,
    kind: PaymentKind = "advance",
    number: int = 1,
) -> PaymentOrder:
    reference = payment_reference(app, kind, number)
    _MADE_UP.append(reference)
    return PaymentOrder(
        application_id=app,
        correlation_id=uuid4(),
        reference=reference,
        attempt=attempt,
        kind=kind,
        amount=nok(amount),
        funding_line=line,
        year=YEAR,
        payee_name="Kirkenes kulturskole",
        payee_org_number="974567890",
    )


def answer(
    payment: PaymentOrder,
    outcome: str = "confirmed",
    reason: str | None = None,
    event_id: UUID | None = None,
) -> tuple[Envelope, BankPaymentAnswer]:
    body = BankPaymentAnswer.model_validate(
        {
            "reference": payment.reference,
            "attempt": payment.attempt,
            "outcome": outcome,
            "reason": reason,
        }
    )
    envelope = Envelope(
        event_id=event_id or uuid4(),
        type=BANK_PAYMENT_ANSWER,
        source="erp",
        payload=body.model_dump(mode="json"),
    )
    return envelope, body


async def outbox_rows(pool: asyncpg.Pool, *keys: str) -> list[dict[str, Any]]:
    """The outbox rows written under these keys, oldest first, envelope parsed."""
    rows = await pool.fetch(
        "SELECT topic, key, event_type, envelope FROM outbox WHERE key = ANY($1::text[]) "
        "ORDER BY id",
        list(keys),
    )
    return [{**dict(r), "envelope": json.loads(r["envelope"])} for r in rows]


async def disbursed(pool: asyncpg.Pool, app: UUID, line: str) -> tuple[int, int]:
    """(the commitment's disbursed, its ledger's disbursed), minor units."""
    row = await pool.fetchrow(
        """SELECT c.disbursed_minor AS commitment, l.disbursed_minor AS ledger
           FROM budget_commitments c JOIN budget_ledgers l USING (funding_line, year)
           WHERE c.application_id = $1 AND c.funding_line = $2""",
        app,
        line,
    )
    assert row is not None
    return row["commitment"], row["ledger"]


# --- requesting --------------------------------------------------------------------------------


async def test_a_payment_is_requested_exactly_once(repo: Repository, pool: asyncpg.Pool) -> None:
    app, line = await granted(repo)
    payment = order(app, line)

    assert await repo.request_payment(payment) is True
    # The activity retried, sequentially and concurrently: nothing new.
    assert await repo.request_payment(payment) is False
    again = await asyncio.gather(*(repo.request_payment(payment) for _ in range(5)))
    assert again == [False] * 5

    (stored,) = await repo.payment(payment.reference)
    assert (stored.status, stored.attempt, stored.amount) == ("requested", 1, nok("80000.00"))
    assert stored.answered_at is None and stored.alerted_at is None

    rows = await outbox_rows(pool, payment.reference, str(app))
    bank = [r for r in rows if r["topic"] == BANK_PAYMENT_REQUESTS]
    lifecycle = [r for r in rows if r["event_type"] == PAYMENT_REQUESTED]
    assert len(bank) == 1 and len(lifecycle) == 1
    (request,) = bank
    assert request["key"] == payment.reference
    assert request["envelope"]["type"] == BANK_PAYMENT_REQUEST
    assert request["envelope"]["correlation_id"] == str(payment.correlation_id)
    sent = BankPaymentRequested.model_validate(request["envelope"]["payload"])
    assert sent == BankPaymentRequested(
        reference=payment.reference,
        attempt=1,
        application_id=app,
        kind="advance",
        amount=nok("80000.00"),
        payee_org_number="974567890",
        payee_name="Kirkenes kulturskole",
    )
    (event,) = lifecycle
    assert event["topic"] == APPLICATION_EVENTS and event["key"] == str(app)
    assert event["envelope"]["source"] == "payments"
    requested = PaymentEvent.model_validate(event["envelope"]["payload"])
    assert (requested.reference, requested.attempt, requested.amount) == (
        payment.reference,
        1,
        nok("80000.00"),
    )
    # Nothing is disbursed before the bank confirms.
    assert await disbursed(pool, app, line) == (0, 0)


async def test_payments_that_must_not_be_made_are_refused(repo: Repository) -> None:
    app, line = await granted(repo, "100000.00")
    advance = order(app, line, "80000.00")
    await repo.request_payment(advance)

    # The same attempt with other details.
    with pytest.raises(PaymentRefused, match="other details"):
        await repo.request_payment(advance.model_copy(update={"amount": nok("80000.01")}))
    # A new attempt while the first awaits the bank.
    with pytest.raises(PaymentRefused, match="is requested"):
        await repo.request_payment(advance.model_copy(update={"attempt": 2}))
    # More than the commitment still covers (80 000 of 100 000 awaits the bank).
    with pytest.raises(PaymentRefused, match="exceeds"):
        await repo.request_payment(order(app, line, "20000.01", kind="final"))
    # No commitment at all, or one in another currency.
    stranger = uuid4()
    with pytest.raises(PaymentRefused, match="no budget commitment"):
        await repo.request_payment(order(stranger, line))
    euros = order(app, line, kind="final").model_copy(
        update={"amount": Money(amount=Decimal("10.00"), currency="EUR")}
    )
    with pytest.raises(PaymentRefused, match="EUR"):
        await repo.request_payment(euros)

    # What fits is requested.
    assert await repo.request_payment(order(app, line, "20000.00", kind="final"))
    assert [p.reference for p in await repo.payments(application_id=app)] != []


async def test_the_activity_refuses_without_retrying(repo: Repository) -> None:
    app, line = await granted(repo, "1000.00")
    activities = PaymentActivities(repo, get_funding_config())
    env = ActivityEnvironment()
    await env.run(activities.request_payment, order(app, line, "1000.00"))
    with pytest.raises(ApplicationError) as refused:
        await env.run(activities.request_payment, order(app, line, "0.01", kind="final"))
    assert refused.value.non_retryable and refused.value.type == "PaymentRefused"


# --- the bank's answers ------------------------------------------------------------------------


async def test_a_confirmation_disburses_once_and_is_signalled(
    repo: Repository, pool: asyncpg.Pool
) -> None:
    app, line = await granted(repo)
    payment = order(app, line)
    await repo.request_payment(payment)
    signals = Signals()
    handle = BankAnswers(repo, signals)

    first = answer(payment)
    await handle(*first)

    (stored,) = await repo.payment(payment.reference)
    assert stored.status == "confirmed" and stored.answered_at is not None
    assert await disbursed(pool, app, line) == (8_000_000, 8_000_000)
    ledger = await repo.ledger(line, YEAR)
    assert ledger is not None and ledger.view().disbursed == Decimal("80000.00")
    expected = PaymentResult(reference=payment.reference, attempt=1, outcome="confirmed")
    assert signals.sent == [(app, expected)]

    # The same event redelivered, and the bank sending its answer again: nothing changes,
    # but the workflow hears it again (it ignores an attempt it has settled).
    await handle(*first)
    await handle(*answer(payment))
    assert await disbursed(pool, app, line) == (8_000_000, 8_000_000)
    assert signals.sent == [(app, expected)] * 3

    events = [r["event_type"] for r in await outbox_rows(pool, str(app))]
    assert events.count(PAYMENT_CONFIRMED) == 1
    (confirmed,) = [
        r for r in await outbox_rows(pool, str(app)) if r["event_type"] == PAYMENT_CONFIRMED
    ]
    assert confirmed["envelope"]["correlation_id"] == str(payment.correlation_id)
    assert PaymentEvent.model_validate(confirmed["envelope"]["payload"]).amount == nok("80000.00")


async def test_a_rejection_is_recorded_and_a_new_attempt_can_follow(
    repo: Repository, pool: asyncpg.Pool
) -> None:
    app, line = await granted(repo)
    payment = order(app, line)
    await repo.request_payment(payment)
    signals = Signals()
    handle = BankAnswers(repo, signals)

    await handle(*answer(payment, "rejected", "account closed"))

    (stored,) = await repo.payment(payment.reference)
    assert (stored.status, stored.reason) == ("rejected", "account closed")
    assert await disbursed(pool, app, line) == (0, 0)
    assert signals.sent == [
        (
            app,
            PaymentResult(
                reference=payment.reference,
                attempt=1,
                outcome="rejected",
                reason="account closed",
            ),
        )
    ]
    (rejected,) = [
        r for r in await outbox_rows(pool, str(app)) if r["event_type"] == PAYMENT_REJECTED
    ]
    assert PaymentEvent.model_validate(rejected["envelope"]["payload"]).reason == "account closed"

    # Bank details corrected: the workflow asks again, as attempt 2 of the same reference.
    second = payment.model_copy(update={"attempt": 2})
    assert await repo.request_payment(second)
    await handle(*answer(second))
    attempts = await repo.payment(payment.reference)
    assert [(a.attempt, a.status) for a in attempts] == [(1, "rejected"), (2, "confirmed")]
    assert await disbursed(pool, app, line) == (8_000_000, 8_000_000)
    # A confirmed payment takes no further attempt.
    with pytest.raises(PaymentRefused, match="confirmed"):
        await repo.request_payment(payment.model_copy(update={"attempt": 3}))
    bank = [r for r in await outbox_rows(pool, payment.reference)]
    assert [r["envelope"]["payload"]["attempt"] for r in bank] == [1, 2]


async def test_unknown_and_contradicting_answers_are_bad_messages(
    repo: Repository, pool: asyncpg.Pool
) -> None:
    app, line = await granted(repo)
    payment = order(app, line)
    await repo.request_payment(payment)
    signals = Signals()
    handle = BankAnswers(repo, signals)

    with pytest.raises(BadMessage, match="no payment"):
        await handle(*answer(order(uuid4(), line)))
    with pytest.raises(BadMessage, match="no payment"):
        await handle(*answer(payment.model_copy(update={"attempt": 2})))
    # An answer naming another application than the payment's.
    envelope, body = answer(payment)
    with pytest.raises(BadMessage, match="belongs to application"):
        await handle(envelope.model_copy(update={"application_id": uuid4()}), body)

    await handle(*answer(payment))
    with pytest.raises(BadMessage, match="confirmed already"):
        await handle(*answer(payment, "rejected", "insufficient funds"))

    (stored,) = await repo.payment(payment.reference)
    assert stored.status == "confirmed" and stored.reason is None
    assert await disbursed(pool, app, line) == (8_000_000, 8_000_000)
    assert len(signals.sent) == 1


async def test_concurrent_answers_disburse_once(repo: Repository, pool: asyncpg.Pool) -> None:
    app, line = await granted(repo)
    payment = order(app, line)
    await repo.request_payment(payment)
    signals = Signals()
    handle = BankAnswers(repo, signals)

    await asyncio.gather(*(handle(*answer(payment)) for _ in range(8)))

    assert await disbursed(pool, app, line) == (8_000_000, 8_000_000)
    assert len(signals.sent) == 8
    events = [r["event_type"] for r in await outbox_rows(pool, str(app))]
    assert events.count(PAYMENT_CONFIRMED) == 1


async def test_release_keeps_what_the_bank_is_still_paying(
    repo: Repository, pool: asyncpg.Pool
) -> None:
    app, line = await granted(repo, "100000.00")
    final = order(app, line, "30000.00", kind="final")
    await repo.request_payment(final)

    # The settlement gives back the rest while the final payment is under way...
    released = await repo.release(app, "final report approved")
    assert released is not None and released.amount == nok("70000.00")
    # ...and the confirmation can still be booked.
    await BankAnswers(repo, Signals())(*answer(final))
    assert await disbursed(pool, app, line) == (3_000_000, 3_000_000)
    ledger = await repo.ledger(line, YEAR)
    assert ledger is not None
    assert (ledger.committed_minor, ledger.released_minor, ledger.disbursed_minor) == (
        10_000_000,
        7_000_000,
        3_000_000,
    )


async def test_the_consumer_is_wired_to_the_bank_answers_topic(
    repo: Repository, pool: asyncpg.Pool, settings: Settings
) -> None:
    app, line = await granted(repo)
    payment = order(app, line)
    await repo.request_payment(payment)
    signals = Signals()
    broker = create_broker(settings, "payments-test")
    ctx = ServiceContext("payments", settings, pool, broker, cast(Any, None))
    register_subscribers(ctx, signal=signals)
    dead: list[dict[str, Any]] = []

    @broker.subscriber(dead_letter_topic(BANK_PAYMENT_ANSWERS))
    async def dlq(body: dict[str, Any]) -> None:
        dead.append(body)

    async with TestKafkaBroker(broker) as test_broker:
        envelope, _ = answer(payment)
        await test_broker.publish(
            envelope.model_dump_json().encode(),
            topic=BANK_PAYMENT_ANSWERS,
            key=b"k",
            headers=BANK,
        )
        unknown, _ = answer(order(uuid4(), line))
        await test_broker.publish(
            unknown.model_dump_json().encode(),
            topic=BANK_PAYMENT_ANSWERS,
            key=b"k",
            headers=BANK,
        )

    assert [r.outcome for _, r in signals.sent] == ["confirmed"]
    assert await disbursed(pool, app, line) == (8_000_000, 8_000_000)
    (letter,) = dead
    assert "no payment" in letter["reason"] and letter["consumer"] == "payments.bank-answers"


# --- alerts and events -------------------------------------------------------------------------


async def test_an_unconfirmed_payment_alerts_finance_once(
    repo: Repository, pool: asyncpg.Pool
) -> None:
    app, line = await granted(repo)
    payment = order(app, line)
    await repo.request_payment(payment)
    activities = PaymentActivities(repo, get_funding_config())
    env = ActivityEnvironment()

    await env.run(activities.mark_unconfirmed, payment)
    await env.run(activities.mark_unconfirmed, payment)

    (stored,) = await repo.payment(payment.reference)
    assert stored.alerted_at is not None
    assert payment.reference in [a.reference for a in await repo.alerts(limit=500)]
    events = [r["event_type"] for r in await outbox_rows(pool, str(app))]
    assert events.count(PAYMENT_UNCONFIRMED) == 1

    # Confirmed at last: off the alert list; a late alert changes nothing.
    await BankAnswers(repo, Signals())(*answer(payment))
    await env.run(activities.mark_unconfirmed, payment)
    assert payment.reference not in [a.reference for a in await repo.alerts(limit=500)]
    with pytest.raises(ApplicationError) as unknown:
        await env.run(activities.mark_unconfirmed, payment.model_copy(update={"attempt": 9}))
    assert unknown.value.non_retryable


async def test_publish_writes_the_event_once(repo: Repository, pool: asyncpg.Pool) -> None:
    app = uuid4()
    _MADE_UP.append(str(app))
    activities = PaymentActivities(repo, get_funding_config())
    request = PublishGrantEvent(
        event_id=uuid4(),
        correlation_id=uuid4(),
        event_type="agreement.accepted",
        actor="kari",
        payload={
            "application_id": str(app),
            "status": "active",
            "accepted_by": "Kari Nordmann",
            "grant": {"amount": "150310.00", "currency": "NOK"},
        },
    )
    env = ActivityEnvironment()
    await env.run(activities.publish, request)
    await env.run(activities.publish, request)

    (row,) = await outbox_rows(pool, str(app))
    assert row["topic"] == APPLICATION_EVENTS
    assert row["envelope"]["event_id"] == str(request.event_id)
    assert row["envelope"]["source"] == "payments"
    assert row["envelope"]["actor"] == "kari"
    assert row["envelope"]["application_id"] == str(app)


# --- finance's HTTP API ------------------------------------------------------------------------


class _Handle:
    def __init__(self, temporal: _Temporal, workflow_id: str) -> None:
        self._temporal = temporal
        self._workflow_id = workflow_id

    async def execute_update(self, update: str, arg: Any, result_type: Any) -> Any:
        self._temporal.updates.append((self._workflow_id, update, arg))
        if self._temporal.refuse:
            raise WorkflowUpdateFailedError(ApplicationError(self._temporal.refuse))
        if self._temporal.missing:
            raise RPCError("not found", RPCStatusCode.NOT_FOUND, b"")
        return GrantActionResult(status="active", message="ok")


class _Temporal:
    """Stands in for the Temporal client: records updates, answers or refuses them."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, str, Any]] = []
        self.refuse: str | None = None
        self.missing = False

    def get_workflow_handle(self, workflow_id: str) -> _Handle:
        return _Handle(self, workflow_id)


@pytest.fixture
async def finance(
    pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, _Temporal]]:
    temporal = _Temporal()
    # Only the payments routes run here: /health's Kafka and Temporal checks are not used.
    ctx = ServiceContext("payments", settings, pool, cast(Any, None), cast(Any, temporal))
    transport = httpx.ASGITransport(app=build_api(ctx))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://payments", headers=FINANCE
    ) as http:
        yield http, temporal


async def test_finance_reads_payments_and_alerts(
    repo: Repository, finance: tuple[httpx.AsyncClient, _Temporal]
) -> None:
    http, _ = finance
    app, line = await granted(repo)
    payment = order(app, line, "80000.50")
    await repo.request_payment(payment)
    await BankAnswers(repo, Signals())(*answer(payment, "rejected", "unknown account"))
    second = payment.model_copy(update={"attempt": 2})
    await repo.request_payment(second)
    await repo.mark_unconfirmed(second.reference, 2)

    one = await http.get(f"/payments/{payment.reference}")
    assert one.status_code == 200
    body = one.json()
    assert {k: body[k] for k in ("reference", "application_id", "kind", "amount", "currency")} == {
        "reference": payment.reference,
        "application_id": str(app),
        "kind": "advance",
        "amount": "80000.50",
        "currency": "NOK",
    }
    assert body["status"] == "requested"
    first, latest = body["attempts"]
    assert (first["attempt"], first["status"], first["reason"]) == (
        1,
        "rejected",
        "unknown account",
    )
    assert first["answered_at"] is not None and first["alerted_at"] is None
    assert (latest["attempt"], latest["status"], latest["answered_at"]) == (2, "requested", None)
    assert latest["alerted_at"] is not None and latest["requested_at"] is not None
    assert latest["payee_org_number"] == "974567890" and latest["funding_line"] == line

    listed = await http.get("/payments", params={"application_id": str(app)})
    assert listed.status_code == 200
    assert [(p["attempt"], p["status"]) for p in listed.json()] == [
        (2, "requested"),
        (1, "rejected"),
    ]
    rejected = await http.get(
        "/payments", params={"application_id": str(app), "status": "rejected"}
    )
    assert [p["attempt"] for p in rejected.json()] == [1]
    assert (await http.get("/payments", params={"status": "paid"})).status_code == 422
    assert (await http.get("/payments", params={"limit": 0})).status_code == 422

    alerts = await http.get("/alerts", params={"limit": 500})
    assert alerts.status_code == 200
    assert [
        (a["reference"], a["attempt"]) for a in alerts.json() if a["reference"] == payment.reference
    ] == [(payment.reference, 2)]

    assert (await http.get("/payments/BG-000000000000-A1")).status_code == 404
    assert (await http.get("/payments/bad%00ref")).status_code == 404


async def test_finance_actions_go_to_the_grant_workflow(
    repo: Repository, finance: tuple[httpx.AsyncClient, _Temporal]
) -> None:
    http, temporal = finance
    app, line = await granted(repo)
    payment = order(app, line)
    await repo.request_payment(payment)

    corrected = await http.post(
        f"/payments/{payment.reference}/bank-details-corrected",
        json={"corrected_by": "finance.tester"},
    )
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["status"] == "active"
    ((workflow_id, update, action),) = temporal.updates
    assert (workflow_id, update) == (grant_workflow_id(app), UPDATE_BANK_DETAILS_CORRECTED)
    assert action.model_dump() == {"reference": payment.reference, "corrected_by": "finance.tester"}

    temporal.refuse = "payment BG-… was not rejected"
    refused = await http.post(
        f"/payments/{payment.reference}/bank-details-corrected",
        json={"corrected_by": "finance.tester"},
    )
    assert refused.status_code == 409
    assert refused.json()["detail"] == "payment BG-… was not rejected"
    temporal.refuse = None

    unknown = await http.post(
        "/payments/BG-000000000000-A1/bank-details-corrected",
        json={"corrected_by": "finance.tester"},
    )
    assert unknown.status_code == 404
    invalid = await http.post(
        f"/payments/{payment.reference}/bank-details-corrected", json={"corrected_by": "Finn X"}
    )
    assert invalid.status_code == 422

    settled = await http.post(
        f"/applications/{app}/claim-back/settled",
        json={"settled_by": "finance.tester", "amount": {"amount": "1200.00", "currency": "NOK"}},
    )
    assert settled.status_code == 200, settled.text
    workflow_id, update, action = temporal.updates[-1]
    assert (workflow_id, update) == (grant_workflow_id(app), UPDATE_CLAIM_BACK_SETTLED)
    assert action.amount == nok("1200.00")

    temporal.missing = True
    closed = await http.post(
        f"/applications/{uuid4()}/claim-back/settled",
        json={"settled_by": "finance.tester", "amount": {"amount": "1.00", "currency": "NOK"}},
    )
    assert closed.status_code == 404
