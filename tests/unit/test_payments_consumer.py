"""The bank answers' consumer without Postgres or Temporal: what the repository refuses is a
bad message (dead-lettered, never signalled); an applied or repeated answer is signalled to
the application's grant workflow; a finished workflow is not an error, Temporal away is."""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID, uuid4

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from services.payments.app import BankAnswers, temporal_signal
from services.payments.repository import AnswerOutcome, AnswerRefused, Repository
from shared.contracts.grant import (
    BANK_PAYMENT_ANSWER,
    SIGNAL_PAYMENT_RESULT,
    BankPaymentAnswer,
    PaymentResult,
)
from shared.events import Envelope
from shared.kafka import BadMessage
from shared.temporal import grant_workflow_id

REFERENCE = "BG-0123456789AB-A1"


class _Repo:
    def __init__(self, outcome: AnswerOutcome | Exception) -> None:
        self.outcome = outcome
        self.calls: list[tuple[BankPaymentAnswer, UUID, UUID | None]] = []

    async def record_answer(
        self, answer: BankPaymentAnswer, *, event_id: UUID, application_id: UUID | None = None
    ) -> AnswerOutcome:
        self.calls.append((answer, event_id, application_id))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class _Signals:
    def __init__(self) -> None:
        self.sent: list[tuple[UUID, PaymentResult]] = []

    async def __call__(self, application_id: UUID, result: PaymentResult) -> None:
        self.sent.append((application_id, result))


def bank_answer(outcome: str = "confirmed") -> tuple[Envelope, BankPaymentAnswer]:
    body = BankPaymentAnswer.model_validate(
        {"reference": REFERENCE, "attempt": 1, "outcome": outcome}
    )
    envelope = Envelope(type=BANK_PAYMENT_ANSWER, source="erp", payload=body.model_dump())
    return envelope, body


@pytest.mark.parametrize("changed", [True, False])
async def test_an_answer_is_signalled_to_the_grant_workflow(changed: bool) -> None:
    app = uuid4()
    result = PaymentResult(reference=REFERENCE, attempt=1, outcome="confirmed")
    repo = _Repo(AnswerOutcome(app, result, changed=changed))
    signals = _Signals()
    envelope, body = bank_answer()

    await BankAnswers(cast(Repository, repo), signals)(envelope, body)

    assert repo.calls == [(body, envelope.event_id, None)]
    assert signals.sent == [(app, result)]


async def test_a_refused_answer_is_a_bad_message_and_not_signalled() -> None:
    repo = _Repo(AnswerRefused("no payment BG-0123456789AB-A1 attempt 1"))
    signals = _Signals()
    with pytest.raises(BadMessage, match="no payment"):
        await BankAnswers(cast(Repository, repo), signals)(*bank_answer())
    assert signals.sent == []


class _Handle:
    def __init__(self, client: _Client, workflow_id: str) -> None:
        self.client = client
        self.workflow_id = workflow_id

    async def signal(self, name: str, arg: Any) -> None:
        self.client.signals.append((self.workflow_id, name, arg))
        if self.client.fail is not None:
            raise RPCError("failed", self.client.fail, b"")


class _Client:
    def __init__(self, fail: RPCStatusCode | None = None) -> None:
        self.fail = fail
        self.signals: list[tuple[str, str, Any]] = []

    def get_workflow_handle(self, workflow_id: str) -> _Handle:
        return _Handle(self, workflow_id)


async def test_the_signal_goes_to_the_grant_workflow() -> None:
    client = _Client()
    app = uuid4()
    result = PaymentResult(reference=REFERENCE, attempt=2, outcome="rejected", reason="closed")
    await temporal_signal(cast(Client, client))(app, result)
    assert client.signals == [(grant_workflow_id(app), SIGNAL_PAYMENT_RESULT, result)]


async def test_a_finished_grant_workflow_is_not_an_error_but_temporal_away_is() -> None:
    result = PaymentResult(reference=REFERENCE, attempt=1, outcome="confirmed")
    await temporal_signal(cast(Client, _Client(RPCStatusCode.NOT_FOUND)))(uuid4(), result)
    with pytest.raises(RPCError):
        await temporal_signal(cast(Client, _Client(RPCStatusCode.UNAVAILABLE)))(uuid4(), result)
