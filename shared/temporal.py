"""Temporal plumbing: the client factory (pydantic data converter with payload encryption),
task-queue names, workflow ids derived from application ids, and the custom search attributes."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from uuid import UUID

from temporalio.client import Client, Interceptor
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from shared import observability
from shared.codec import EncryptionCodec
from shared.config import Settings

log = logging.getLogger(__name__)

# One task queue per service: each worker registers only its own workflows and activities.
TASK_QUEUE_INTAKE = "intake"
TASK_QUEUE_REVIEW = "review"
TASK_QUEUE_PAYMENTS = "payments"
TASK_QUEUE_NOTIFICATIONS = "notifications"

# Custom search attributes (registered by `./dev up` on the Temporal server). Never personal data:
# unlike payloads they are not encrypted (the server indexes them in plain text).
SA_STATUS = SearchAttributeKey.for_keyword("ApplicationStatus")
SA_FUNDING_LINE = SearchAttributeKey.for_keyword("FundingLine")
SA_FUNDING_TYPE = SearchAttributeKey.for_keyword("FundingType")
SA_ADVISOR = SearchAttributeKey.for_keyword("Advisor")
SA_COUNTRY = SearchAttributeKey.for_keyword("ApplicantCountry")
SA_REQUESTED = SearchAttributeKey.for_float("RequestedAmount")
SA_NEXT_DEADLINE = SearchAttributeKey.for_datetime("NextDeadline")

SEARCH_ATTRIBUTES: dict[str, str] = {
    "ApplicationStatus": "Keyword",
    "FundingLine": "Keyword",
    "FundingType": "Keyword",
    "Advisor": "Keyword",
    "ApplicantCountry": "Keyword",
    "RequestedAmount": "Double",
    "NextDeadline": "Datetime",
}


def lifecycle_workflow_id(application_id: UUID) -> str:
    return f"application-{application_id}"


def review_workflow_id(application_id: UUID) -> str:
    return f"review-{application_id}"


def grant_workflow_id(application_id: UUID) -> str:
    return f"grant-{application_id}"


def payment_reference(application_id: UUID, kind: str, number: int) -> str:
    """A payment's unique reference, readable on a bank statement: BG-<12 hex>-A1."""
    return f"BG-{application_id.hex[:12].upper()}-{kind[0].upper()}{number}"


def data_converter(settings: Settings) -> DataConverter:
    """The pydantic data converter with every payload AES-GCM encrypted (shared/codec.py) and
    failure messages and stack traces moved into an encoded (so encrypted) attribute."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec.from_settings(settings),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def interceptors() -> list[Interceptor]:
    """While this process records traces: OpenTelemetry's tracing interceptor, which carries
    the trace context in workflow and activity headers (client → workflow → child workflow
    → activity) and makes a span of each step. A client interceptor that is also a worker
    interceptor, so the workers made with the client use it too."""
    if not observability.tracing_enabled():
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(observability.tracer())]


async def connect(settings: Settings, attempts: int = 30) -> Client:
    converter = data_converter(settings)  # a bad key configuration fails here, not on retry
    for attempt in range(1, attempts + 1):
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=converter,
                interceptors=interceptors(),
            )
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("Temporal not reachable (%s); retrying", type(exc).__name__)
            await asyncio.sleep(1)
    raise AssertionError("unreachable")
