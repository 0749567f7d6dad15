"""Acting as the bank/ERP in local development: answer a payment request with a
`bank.payment_answer` envelope on `grants.bank.payment-answers`, keyed by the reference, with
the bank's bearer token (role finance, sys `bank`) in the `authorization` header."""

from __future__ import annotations

from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError

from grants_cli.client import STACK_HINT, CliError
from grants_cli.parsing import Identity
from shared.config import Settings
from shared.contracts.grant import BANK_PAYMENT_ANSWER, BankPaymentAnswer
from shared.events import Envelope
from shared.topics import BANK_PAYMENT_ANSWERS

# Who the bank is when the CLI mints its token (tests/integration/flows.py does the same).
BANK = Identity(role="finance", sub="bank-erp", sys="bank")


def answer_envelope(
    reference: str, attempt: int, outcome: Literal["confirmed", "rejected"], reason: str | None
) -> Envelope:
    """The envelope, its payload checked against the contract before anything is sent."""
    answer = BankPaymentAnswer(reference=reference, attempt=attempt, outcome=outcome, reason=reason)
    payload: dict[str, Any] = answer.model_dump(mode="json", exclude_none=True)
    return Envelope(type=BANK_PAYMENT_ANSWER, source="bank", payload=payload)


async def publish_answer(settings: Settings, envelope: Envelope, token: str) -> None:
    reference = str(envelope.payload["reference"])
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", client_id="grants-cli-bank"
    )
    try:
        await producer.start()
    except KafkaConnectionError as exc:
        await producer.stop()
        raise CliError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {STACK_HINT}") from exc
    try:
        await producer.send_and_wait(
            BANK_PAYMENT_ANSWERS,
            envelope.model_dump_json().encode(),
            key=reference.encode(),
            headers=[("authorization", f"Bearer {token}".encode())],
        )
    except KafkaError as exc:
        raise CliError(f"Kafka did not take the answer: {type(exc).__name__}: {exc}") from exc
    finally:
        await producer.stop()
