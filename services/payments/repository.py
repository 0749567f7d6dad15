"""Payments' storage: the only module of the service with SQL.

Budget ledgers and commitments. Every change to money takes the ledger row's lock
(`SELECT ... FOR UPDATE`) before deciding, so concurrent approvals queue on it and each sees
what the one before left; the schema's CHECKs refuse over-commitment even if code did not.
Each change writes its event to the outbox in the same transaction.

Payments: one row per attempt at a payment (reference), its bank request and lifecycle event
written with it; the bank's answer settles the attempt and, when confirmed, books the amount
as disbursed on the application's commitment (the database carries it to the ledger). Locks
are always taken ledger first, then commitment, so money changes never deadlock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID, uuid4, uuid5

import asyncpg

from services.payments.ledger import Ledger, currency, decide, to_minor
from shared import outbox
from shared.contracts.grant import (
    BANK_PAYMENT_REQUEST,
    PAYMENT_CONFIRMED,
    PAYMENT_REJECTED,
    PAYMENT_REQUESTED,
    PAYMENT_UNCONFIRMED,
    BankPaymentAnswer,
    BankPaymentRequested,
    PaymentEvent,
    PaymentKind,
    PaymentOrder,
    PaymentResult,
)
from shared.contracts.ledger import (
    BUDGET_COMMITTED,
    BUDGET_REFUSED,
    BUDGET_RELEASED,
    BudgetCommitted,
    BudgetRefused,
    BudgetReleased,
    CommitmentStatus,
    RefusalReason,
)
from shared.contracts.lifecycle import ApplicationStatus
from shared.contracts.money import Currency, Money
from shared.db import Conn
from shared.events import Envelope
from shared.inbox import claim
from shared.topics import APPLICATION_EVENTS, BANK_PAYMENT_REQUESTS

SERVICE = "payments"

_LEDGER_COLUMNS = """funding_line, year, currency, budget_minor, committed_minor,
                     disbursed_minor, released_minor"""
_COMMITMENT_COLUMNS = "application_id, funding_line, year, currency, amount_minor, status"
_PAYMENT_COLUMNS = """reference, attempt, application_id, correlation_id, kind, amount_minor,
                      currency, funding_line, year, payee_name, payee_org_number, status,
                      requested_at, answered_at, reason, alerted_at"""

# The consumer of the bank's answers: its Kafka group and its inbox name.
BANK_ANSWERS_CONSUMER = "payments.bank-answers"

# Event ids derived from what they are about, so a retried activity or a redelivered answer
# writes the very same event again (the outbox ignores a known event id).
_EVENT_IDS = UUID("6f1c9a52-3b7e-4d0a-9c55-0e2f4b8d7a31")

PaymentStatus = Literal["requested", "confirmed", "rejected"]


@dataclass(frozen=True)
class CommitOutcome:
    application_id: UUID
    funding_line: str
    year: int
    committed: bool
    reason: RefusalReason | None
    # Committed (on a repeat: the first call's amount), or refused.
    amount: Money
    # The ledger's available money after this call.
    available: Money
    # The application already had its commitment; nothing was committed now.
    repeated: bool
    commitment_status: CommitmentStatus | None


@dataclass(frozen=True)
class ReleaseOutcome:
    application_id: UUID
    funding_line: str
    year: int
    # False when an earlier call had released it already.
    released_now: bool
    amount: Money
    available: Money


@dataclass(frozen=True)
class _Commitment:
    application_id: UUID
    funding_line: str
    year: int
    currency: Currency
    amount_minor: int
    status: CommitmentStatus


@dataclass(frozen=True)
class PaymentRecord:
    """One attempt at a payment, as stored."""

    reference: str
    attempt: int
    application_id: UUID
    correlation_id: UUID
    kind: PaymentKind
    amount: Money
    funding_line: str
    year: int
    payee_name: str
    payee_org_number: str
    status: PaymentStatus
    requested_at: datetime
    answered_at: datetime | None
    reason: str | None
    alerted_at: datetime | None

    def result(self) -> PaymentResult | None:
        """The bank's answer as the grant workflow hears it; None while unanswered."""
        if self.status == "requested":
            return None
        return PaymentResult(
            reference=self.reference,
            attempt=self.attempt,
            outcome=self.status,
            reason=self.reason,
        )


@dataclass(frozen=True)
class AnswerOutcome:
    """What a bank answer did: `changed` is False for a repeated answer (nothing new)."""

    application_id: UUID
    result: PaymentResult
    changed: bool


class PaymentRefused(Exception):
    """A payment request that must not be made (no retry changes that): it contradicts an
    earlier request of the same reference, or the commitment does not cover it."""


class AnswerRefused(ValueError):
    """A bank answer that cannot be applied: unknown payment, or it contradicts an earlier
    answer, or the confirmed amount cannot be booked on the commitment."""


class Repository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def open_budget(
        self, funding_line: str, year: int, currency: Currency, budget_minor: int
    ) -> Ledger:
        """Create the ledger if missing; an existing ledger keeps its stored budget."""
        async with self._pool.acquire() as conn:
            await _open(conn, funding_line, year, currency, budget_minor)
            ledger = await _ledger(conn, funding_line, year)
        assert ledger is not None
        return ledger

    async def commit(
        self,
        application_id: UUID,
        funding_line: str,
        year: int,
        amount: Money,
        budget: Money,
        *,
        correlation_id: UUID | None = None,
    ) -> CommitOutcome:
        """Commit `amount` for the application, or refuse it; at most one commitment per
        application. A refusal changes no money and is not remembered: asking again later
        (after money was released) decides afresh."""
        amount_minor = to_minor(amount)
        if amount_minor <= 0:
            raise ValueError("a commitment must be positive")
        budget_minor = to_minor(budget)
        now = datetime.now(UTC)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await _open(conn, funding_line, year, budget.currency, budget_minor)
                ledger = await _ledger(conn, funding_line, year, lock=True)
                assert ledger is not None
                # Checked under the ledger lock: a concurrent call for the same application
                # on this ledger has committed by now and is seen here.
                existing = await _commitment(conn, application_id)
                if existing is not None:
                    return await _repeated(conn, existing)
                decision = decide(ledger, amount)
                if decision == "commit":
                    await conn.execute(
                        """INSERT INTO budget_commitments
                               (application_id, funding_line, year, currency, amount_minor,
                                committed_at, updated_at)
                           VALUES ($1, $2, $3, $4, $5, $6, $6)""",
                        application_id,
                        funding_line,
                        year,
                        amount.currency,
                        amount_minor,
                        now,
                    )
                    available = ledger.money(ledger.available_minor - amount_minor)
                    committed = BudgetCommitted(
                        application_id=application_id,
                        funding_line=funding_line,
                        year=year,
                        amount=amount,
                        available=available,
                        committed_at=now,
                    )
                    await _emit(conn, BUDGET_COMMITTED, committed, application_id, correlation_id)
                    return CommitOutcome(
                        application_id=application_id,
                        funding_line=funding_line,
                        year=year,
                        committed=True,
                        reason=None,
                        amount=amount,
                        available=available,
                        repeated=False,
                        commitment_status="committed",
                    )
                refused = BudgetRefused(
                    application_id=application_id,
                    funding_line=funding_line,
                    year=year,
                    reason=decision,
                    amount=amount,
                    available=ledger.available,
                    refused_at=now,
                )
                await _emit(conn, BUDGET_REFUSED, refused, application_id, correlation_id)
                return CommitOutcome(
                    application_id=application_id,
                    funding_line=funding_line,
                    year=year,
                    committed=False,
                    reason=decision,
                    amount=amount,
                    available=ledger.available,
                    repeated=False,
                    commitment_status=None,
                )
        except asyncpg.UniqueViolationError:
            # The same application was committed concurrently on another ledger (a caller
            # bug, but still never two commitments): report the one that won.
            async with self._pool.acquire() as conn:
                found = await _commitment(conn, application_id)
                assert found is not None
                return await _repeated(conn, found)

    async def release(
        self, application_id: UUID, reason: str, *, correlation_id: UUID | None = None
    ) -> ReleaseOutcome | None:
        """Give the commitment's unpaid money back to its ledger (committed -> released).
        Idempotent: a released commitment is reported as it is. None: no commitment."""
        now = datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            found = await _commitment(conn, application_id)
            if found is None:
                return None
            # Same lock order as commit (ledger, then commitment): no deadlocks between them.
            ledger = await _ledger(conn, found.funding_line, found.year, lock=True)
            assert ledger is not None
            row = await conn.fetchrow(
                """SELECT amount_minor, disbursed_minor, released_minor, status
                   FROM budget_commitments WHERE application_id = $1 FOR UPDATE""",
                application_id,
            )
            assert row is not None
            if row["status"] == "released":
                return ReleaseOutcome(
                    application_id=application_id,
                    funding_line=found.funding_line,
                    year=found.year,
                    released_now=False,
                    amount=ledger.money(row["released_minor"]),
                    available=ledger.available,
                )
            # Money already paid out stays spent, and money the bank is still paying stays
            # committed so its confirmation can be booked; only the rest goes back.
            awaiting = await _awaiting_bank_minor(conn, application_id)
            returned = max(0, row["amount_minor"] - row["disbursed_minor"] - awaiting)
            await conn.execute(
                """UPDATE budget_commitments
                   SET status = 'released', released_minor = $2, release_reason = $3,
                       released_at = $4, updated_at = $4
                   WHERE application_id = $1""",
                application_id,
                returned,
                reason,
                now,
            )
            available = ledger.money(ledger.available_minor + returned)
            released = BudgetReleased(
                application_id=application_id,
                funding_line=found.funding_line,
                year=found.year,
                reason=reason,
                amount=ledger.money(returned),
                available=available,
                released_at=now,
            )
            await _emit(conn, BUDGET_RELEASED, released, application_id, correlation_id)
            return ReleaseOutcome(
                application_id=application_id,
                funding_line=found.funding_line,
                year=found.year,
                released_now=True,
                amount=ledger.money(returned),
                available=available,
            )

    # --- payments ---------------------------------------------------------------------------

    async def request_payment(self, order: PaymentOrder) -> bool:
        """Record the attempt and write its bank request and `payment.requested` event, in one
        transaction. Exactly once per (reference, attempt): a repeat of the same order writes
        nothing and returns False. Raises PaymentRefused when the order contradicts an earlier
        one of the reference, an earlier attempt is not rejected, or the application's
        commitment does not cover the amount."""
        amount_minor = to_minor(order.amount)
        if amount_minor <= 0:
            raise PaymentRefused(f"payment {order.reference}: the amount must be positive")
        async with self._pool.acquire() as conn, conn.transaction():
            found = await _commitment(conn, order.application_id)
            if found is None:
                raise PaymentRefused(
                    f"payment {order.reference}: application {order.application_id} has no "
                    "budget commitment to pay from"
                )
            # Ledger, then commitment (the order every money change takes): requests of one
            # application queue here, so each sees the ones before.
            await _ledger(conn, found.funding_line, found.year, lock=True)
            commitment = await conn.fetchrow(
                """SELECT amount_minor, disbursed_minor, released_minor, currency
                   FROM budget_commitments WHERE application_id = $1 FOR UPDATE""",
                order.application_id,
            )
            assert commitment is not None
            attempts = [
                _to_payment(r)
                for r in await conn.fetch(
                    f"""SELECT {_PAYMENT_COLUMNS} FROM payments
                        WHERE reference = $1 ORDER BY attempt""",  # noqa: S608 - constant columns
                    order.reference,
                )
            ]
            same = next((p for p in attempts if p.attempt == order.attempt), None)
            if same is not None:
                if not _same_order(same, order):
                    raise PaymentRefused(
                        f"payment {order.reference} attempt {order.attempt} was requested "
                        "with other details"
                    )
                return False
            _check_new_attempt(order, attempts)
            if order.amount.currency != commitment["currency"]:
                raise PaymentRefused(
                    f"payment {order.reference} is in {order.amount.currency}, the "
                    f"commitment in {commitment['currency']}"
                )
            room = (
                commitment["amount_minor"]
                - commitment["disbursed_minor"]
                - commitment["released_minor"]
                - await _awaiting_bank_minor(conn, order.application_id)
            )
            if amount_minor > room:
                raise PaymentRefused(
                    f"payment {order.reference} of {order.amount.amount} "
                    f"{order.amount.currency} exceeds what the commitment still covers "
                    f"({Money.from_minor(max(room, 0), order.amount.currency).amount})"
                )
            row = await conn.fetchrow(
                f"""INSERT INTO payments
                        (reference, attempt, application_id, correlation_id, kind,
                         amount_minor, currency, funding_line, year, payee_name,
                         payee_org_number)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                    RETURNING {_PAYMENT_COLUMNS}""",  # noqa: S608 - constant column list
                order.reference,
                order.attempt,
                order.application_id,
                order.correlation_id,
                order.kind,
                amount_minor,
                order.amount.currency,
                order.funding_line,
                order.year,
                order.payee_name,
                order.payee_org_number,
            )
            assert row is not None
            payment = _to_payment(row)
            request = BankPaymentRequested(
                reference=payment.reference,
                attempt=payment.attempt,
                application_id=payment.application_id,
                kind=payment.kind,
                amount=payment.amount,
                payee_org_number=payment.payee_org_number,
                payee_name=payment.payee_name,
            )
            await _enqueue_keyed(
                conn,
                BANK_PAYMENT_REQUESTS,
                payment.reference,
                Envelope(
                    event_id=_event_id(BANK_PAYMENT_REQUEST, payment),
                    type=BANK_PAYMENT_REQUEST,
                    application_id=payment.application_id,
                    correlation_id=payment.correlation_id,
                    source=SERVICE,
                    payload=request.model_dump(mode="json"),
                ),
            )
            await _emit_payment(conn, PAYMENT_REQUESTED, payment)
            return True

    async def mark_unconfirmed(self, reference: str, attempt: int) -> bool:
        """Alert finance: the bank has not answered the attempt in time. Sets `alerted_at`
        and writes `payment.unconfirmed_alert`, in one transaction; once per attempt, and
        not at all when the bank has answered meanwhile (False then). Raises LookupError for
        an unknown attempt."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""SELECT {_PAYMENT_COLUMNS} FROM payments
                    WHERE reference = $1 AND attempt = $2 FOR UPDATE""",  # noqa: S608 - constant columns
                reference,
                attempt,
            )
            if row is None:
                raise LookupError(f"no payment {reference} attempt {attempt}")
            payment = _to_payment(row)
            if payment.status != "requested" or payment.alerted_at is not None:
                return False
            await conn.execute(
                "UPDATE payments SET alerted_at = now() WHERE reference = $1 AND attempt = $2",
                reference,
                attempt,
            )
            await _emit_payment(conn, PAYMENT_UNCONFIRMED, payment)
            return True

    async def publish(self, envelope: Envelope) -> None:
        """Write a lifecycle event to the outbox (once per event id)."""
        async with self._pool.acquire() as conn:
            await outbox.enqueue(conn, APPLICATION_EVENTS, envelope)

    async def record_answer(
        self,
        answer: BankPaymentAnswer,
        *,
        event_id: UUID,
        application_id: UUID | None = None,
    ) -> AnswerOutcome:
        """Apply the bank's answer to one attempt, in one transaction: its status, on
        confirmation the amount disbursed from the application's commitment (and so its
        ledger), and the `payment.confirmed`/`payment.rejected` event. A repeated answer
        (same event, or the same outcome again) changes nothing (`changed` False). Raises
        AnswerRefused for an unknown attempt, an answer contradicting an earlier one, or a
        confirmation the commitment cannot take."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                return await _apply_answer(conn, answer, event_id, application_id)
        except asyncpg.CheckViolationError as exc:
            raise AnswerRefused(
                f"payment {answer.reference} attempt {answer.attempt}: the confirmed amount "
                f"cannot be booked on the application's commitment ({exc.constraint_name})"
            ) from exc

    async def payments(
        self,
        *,
        application_id: UUID | None = None,
        status: PaymentStatus | None = None,
        limit: int = 100,
    ) -> list[PaymentRecord]:
        """Payment attempts, the most recently requested first."""
        rows = await self._pool.fetch(
            f"""SELECT {_PAYMENT_COLUMNS} FROM payments
                WHERE ($1::uuid IS NULL OR application_id = $1)
                  AND ($2::text IS NULL OR status = $2)
                ORDER BY requested_at DESC, reference, attempt DESC
                LIMIT $3""",  # noqa: S608 - constant column list
            application_id,
            status,
            limit,
        )
        return [_to_payment(r) for r in rows]

    async def payment(self, reference: str) -> list[PaymentRecord]:
        """Every attempt at one payment, the first first; empty when unknown."""
        rows = await self._pool.fetch(
            f"""SELECT {_PAYMENT_COLUMNS} FROM payments
                WHERE reference = $1 ORDER BY attempt""",  # noqa: S608 - constant column list
            reference,
        )
        return [_to_payment(r) for r in rows]

    async def alerts(self, limit: int = 100) -> list[PaymentRecord]:
        """Attempts finance was alerted about that the bank has still not answered, the
        oldest alert first."""
        rows = await self._pool.fetch(
            f"""SELECT {_PAYMENT_COLUMNS} FROM payments
                WHERE alerted_at IS NOT NULL AND status = 'requested'
                ORDER BY alerted_at, reference, attempt
                LIMIT $1""",  # noqa: S608 - constant column list
            limit,
        )
        return [_to_payment(r) for r in rows]

    # --- ledgers ----------------------------------------------------------------------------

    async def ledgers(self, year: int | None = None) -> list[Ledger]:
        rows = await self._pool.fetch(
            f"""SELECT {_LEDGER_COLUMNS} FROM budget_ledgers
                WHERE ($1::integer IS NULL OR year = $1)
                ORDER BY year, funding_line""",  # noqa: S608 - constant column list
            year,
        )
        return [_to_ledger(r) for r in rows]

    async def ledger(self, funding_line: str, year: int) -> Ledger | None:
        async with self._pool.acquire() as conn:
            return await _ledger(conn, funding_line, year)


async def _open(conn: Conn, funding_line: str, year: int, currency: str, budget_minor: int) -> None:
    await conn.execute(
        """INSERT INTO budget_ledgers (funding_line, year, currency, budget_minor)
           VALUES ($1, $2, $3, $4) ON CONFLICT (funding_line, year) DO NOTHING""",
        funding_line,
        year,
        currency,
        budget_minor,
    )


async def _ledger(conn: Conn, funding_line: str, year: int, *, lock: bool = False) -> Ledger | None:
    row = await conn.fetchrow(
        f"""SELECT {_LEDGER_COLUMNS} FROM budget_ledgers
            WHERE funding_line = $1 AND year = $2 {"FOR UPDATE" if lock else ""}""",  # noqa: S608 - constants only
        funding_line,
        year,
    )
    return _to_ledger(row) if row else None


async def _commitment(conn: Conn, application_id: UUID) -> _Commitment | None:
    row = await conn.fetchrow(
        f"SELECT {_COMMITMENT_COLUMNS} FROM budget_commitments WHERE application_id = $1",  # noqa: S608 - constant column list
        application_id,
    )
    if row is None:
        return None
    status: CommitmentStatus = "released" if row["status"] == "released" else "committed"
    return _Commitment(
        application_id=row["application_id"],
        funding_line=row["funding_line"],
        year=row["year"],
        currency=currency(row["currency"]),
        amount_minor=row["amount_minor"],
        status=status,
    )


async def _repeated(conn: Conn, found: _Commitment) -> CommitOutcome:
    """The outcome of a commit for an application whose commitment already exists."""
    ledger = await _ledger(conn, found.funding_line, found.year)
    assert ledger is not None
    return CommitOutcome(
        application_id=found.application_id,
        funding_line=found.funding_line,
        year=found.year,
        committed=True,
        reason=None,
        amount=Money.from_minor(found.amount_minor, found.currency),
        available=ledger.available,
        repeated=True,
        commitment_status=found.status,
    )


async def _emit(
    conn: Conn,
    event_type: str,
    payload: BudgetCommitted | BudgetRefused | BudgetReleased,
    application_id: UUID,
    correlation_id: UUID | None,
) -> None:
    await outbox.enqueue(
        conn,
        APPLICATION_EVENTS,
        Envelope(
            type=event_type,
            application_id=application_id,
            correlation_id=correlation_id or uuid4(),
            source=SERVICE,
            payload=payload.model_dump(mode="json"),
        ),
    )


def _to_ledger(row: Any) -> Ledger:
    return Ledger(
        funding_line=row["funding_line"],
        year=row["year"],
        currency=currency(row["currency"]),
        budget_minor=row["budget_minor"],
        committed_minor=row["committed_minor"],
        disbursed_minor=row["disbursed_minor"],
        released_minor=row["released_minor"],
    )


# --- payments: helpers ------------------------------------------------------------------------


async def _apply_answer(
    conn: Conn, answer: BankPaymentAnswer, event_id: UUID, application_id: UUID | None
) -> AnswerOutcome:
    row = await conn.fetchrow(
        f"""SELECT {_PAYMENT_COLUMNS} FROM payments
            WHERE reference = $1 AND attempt = $2""",  # noqa: S608 - constant column list
        answer.reference,
        answer.attempt,
    )
    if row is None:
        raise AnswerRefused(f"no payment {answer.reference} attempt {answer.attempt}")
    payment = _to_payment(row)
    if application_id is not None and application_id != payment.application_id:
        raise AnswerRefused(
            f"payment {answer.reference} belongs to application {payment.application_id}, "
            f"not {application_id}"
        )
    found = await _commitment(conn, payment.application_id)
    if found is not None:
        # Ledger, then commitment, then the payment: the order every money change takes.
        await _ledger(conn, found.funding_line, found.year, lock=True)
        await conn.execute(
            "SELECT 1 FROM budget_commitments WHERE application_id = $1 FOR UPDATE",
            payment.application_id,
        )
    row = await conn.fetchrow(
        f"""SELECT {_PAYMENT_COLUMNS} FROM payments
            WHERE reference = $1 AND attempt = $2 FOR UPDATE""",  # noqa: S608 - constant columns
        answer.reference,
        answer.attempt,
    )
    assert row is not None
    payment = _to_payment(row)
    first_time = await claim(conn, BANK_ANSWERS_CONSUMER, event_id)
    if payment.status != "requested":
        if payment.status != answer.outcome:
            raise AnswerRefused(
                f"payment {answer.reference} attempt {answer.attempt} was {payment.status} "
                f"already; the bank now answers {answer.outcome}"
            )
        result = payment.result()
        assert result is not None
        return AnswerOutcome(payment.application_id, result, changed=False)
    if not first_time:
        # The same event again, yet the attempt is unanswered: cannot happen (the first
        # delivery answered it in the same transaction); refuse rather than guess.
        raise AnswerRefused(f"event {event_id} was processed, but the payment is unanswered")
    if answer.outcome == "confirmed":
        if found is None:
            raise AnswerRefused(
                f"payment {answer.reference}: application {payment.application_id} has no "
                "budget commitment to book the payment on"
            )
        if found.currency != payment.amount.currency:
            raise AnswerRefused(
                f"payment {answer.reference} is in {payment.amount.currency}, its commitment "
                f"in {found.currency}"
            )
        # The database carries the disbursement to the ledger and refuses to pay out more
        # than the commitment still holds.
        await conn.execute(
            """UPDATE budget_commitments
               SET disbursed_minor = disbursed_minor + $2, updated_at = now()
               WHERE application_id = $1""",
            payment.application_id,
            to_minor(payment.amount),
        )
    answered = await conn.fetchrow(
        f"""UPDATE payments SET status = $3, reason = $4, answered_at = now()
            WHERE reference = $1 AND attempt = $2
            RETURNING {_PAYMENT_COLUMNS}""",  # noqa: S608 - constant column list
        answer.reference,
        answer.attempt,
        answer.outcome,
        answer.reason,
    )
    assert answered is not None
    payment = _to_payment(answered)
    event = PAYMENT_CONFIRMED if answer.outcome == "confirmed" else PAYMENT_REJECTED
    await _emit_payment(conn, event, payment)
    result = payment.result()
    assert result is not None
    return AnswerOutcome(payment.application_id, result, changed=True)


def _same_order(payment: PaymentRecord, order: PaymentOrder) -> bool:
    return (
        payment.application_id,
        payment.kind,
        payment.amount,
        payment.funding_line,
        payment.year,
        payment.payee_name,
        payment.payee_org_number,
    ) == (
        order.application_id,
        order.kind,
        order.amount,
        order.funding_line,
        order.year,
        order.payee_name,
        order.payee_org_number,
    )


def _check_new_attempt(order: PaymentOrder, earlier: list[PaymentRecord]) -> None:
    """A new attempt pays what the earlier ones did, after each of them was rejected."""
    for payment in earlier:
        if (payment.application_id, payment.kind, payment.amount) != (
            order.application_id,
            order.kind,
            order.amount,
        ):
            raise PaymentRefused(
                f"payment {order.reference} was requested for another application, kind "
                f"or amount (attempt {payment.attempt})"
            )
        if payment.attempt > order.attempt:
            raise PaymentRefused(
                f"payment {order.reference} has a later attempt ({payment.attempt}) already"
            )
        if payment.status != "rejected":
            raise PaymentRefused(
                f"payment {order.reference} attempt {payment.attempt} is {payment.status}; "
                "a new attempt follows only a rejected one"
            )


async def _awaiting_bank_minor(conn: Conn, application_id: UUID) -> int:
    """The application's payments the bank has not answered yet: still committed money."""
    total: int = await conn.fetchval(
        """SELECT coalesce(sum(amount_minor), 0) FROM payments
           WHERE application_id = $1 AND status = 'requested'""",
        application_id,
    )
    return total


def _status_for(kind: PaymentKind) -> ApplicationStatus:
    """The application's status while a payment of this kind is under way."""
    return "final_payment" if kind == "final" else "active"


def _event_id(event_type: str, payment: PaymentRecord) -> UUID:
    return uuid5(_EVENT_IDS, f"{event_type}:{payment.reference}:{payment.attempt}")


async def _emit_payment(conn: Conn, event_type: str, payment: PaymentRecord) -> None:
    event = PaymentEvent(
        application_id=payment.application_id,
        status=_status_for(payment.kind),
        reference=payment.reference,
        attempt=payment.attempt,
        kind=payment.kind,
        amount=payment.amount,
        reason=payment.reason,
    )
    await outbox.enqueue(
        conn,
        APPLICATION_EVENTS,
        Envelope(
            event_id=_event_id(event_type, payment),
            type=event_type,
            application_id=payment.application_id,
            correlation_id=payment.correlation_id,
            source=SERVICE,
            payload=event.model_dump(mode="json"),
        ),
    )


async def _enqueue_keyed(conn: Conn, topic: str, key: str, envelope: Envelope) -> None:
    """`outbox.enqueue` with an explicit message key (the bank's topics are keyed by the
    payment reference, not the application)."""
    await conn.execute(
        """INSERT INTO outbox (event_id, topic, key, event_type, envelope)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (event_id) DO NOTHING""",
        envelope.event_id,
        topic,
        key,
        envelope.type,
        envelope.model_dump_json(),
    )


def _payment_status(value: str) -> PaymentStatus:
    if value == "requested":
        return "requested"
    if value == "confirmed":
        return "confirmed"
    if value == "rejected":
        return "rejected"
    raise ValueError(f"unknown payment status {value!r}")


def _payment_kind(value: str) -> PaymentKind:
    if value == "advance":
        return "advance"
    if value == "final":
        return "final"
    if value == "installment":
        return "installment"
    raise ValueError(f"unknown payment kind {value!r}")


def _to_payment(row: Any) -> PaymentRecord:
    return PaymentRecord(
        reference=row["reference"],
        attempt=row["attempt"],
        application_id=row["application_id"],
        correlation_id=row["correlation_id"],
        kind=_payment_kind(row["kind"]),
        amount=Money.from_minor(row["amount_minor"], currency(row["currency"])),
        funding_line=row["funding_line"],
        year=row["year"],
        payee_name=row["payee_name"],
        payee_org_number=row["payee_org_number"],
        status=_payment_status(row["status"]),
        requested_at=row["requested_at"],
        answered_at=row["answered_at"],
        reason=row["reason"],
        alerted_at=row["alerted_at"],
    )
