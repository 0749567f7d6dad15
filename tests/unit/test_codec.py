"""Payload encryption (shared/codec.py): AES-256-GCM, key ids and rotation, and a workflow on
the time-skipping server whose history holds no personal data in plain text."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from shared.codec import (
    ENCODING,
    METADATA_KEY_ID,
    CodecConfigError,
    EncryptionCodec,
    PayloadDecryptionError,
    UnknownEncryptionKeyError,
    parse_keys,
)
from shared.config import Settings
from shared.temporal import data_converter
from tests.temporal_helpers import time_skipping

EMAIL = "ingrid.haugen@kirkenes-kultur.example.no"
K1 = os.urandom(32)
K2 = os.urandom(32)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


async def to_payload(value: object) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([value])[0]


async def test_round_trip_restores_the_payload_exactly() -> None:
    codec = EncryptionCodec({"k1": K1}, "k1")
    original = await to_payload({"applicant": {"email": EMAIL}, "amount": "150310.00"})
    [encrypted] = await codec.encode([original])
    [decrypted] = await codec.decode([encrypted])
    assert decrypted == original
    assert pydantic_data_converter.payload_converter.from_payloads([decrypted])[0] == {
        "applicant": {"email": EMAIL},
        "amount": "150310.00",
    }


async def test_an_encrypted_payload_hides_data_and_metadata() -> None:
    codec = EncryptionCodec({"k1": K1}, "k1")
    original = await to_payload({"email": EMAIL})
    [encrypted] = await codec.encode([original])
    assert dict(encrypted.metadata) == {"encoding": ENCODING, METADATA_KEY_ID: b"k1"}
    assert EMAIL.encode() not in encrypted.data
    assert b"json/plain" not in encrypted.data  # the original metadata is sealed too
    assert EMAIL.encode() not in encrypted.SerializeToString()


async def test_every_payload_gets_a_fresh_nonce() -> None:
    codec = EncryptionCodec({"k1": K1}, "k1")
    original = await to_payload(EMAIL)
    encrypted = await codec.encode([original, original, original])
    assert len({p.data[:12] for p in encrypted}) == 3
    assert len({p.data for p in encrypted}) == 3
    assert all(p == original for p in await codec.decode(encrypted))


async def test_rotation_keeps_old_payloads_readable() -> None:
    before = EncryptionCodec({"k1": K1}, "k1")
    [old] = await before.encode([await to_payload("written with k1")])

    after = EncryptionCodec({"k2": K2, "k1": K1}, "k2")
    [new] = await after.encode([await to_payload("written with k2")])
    assert new.metadata[METADATA_KEY_ID] == b"k2"

    decoded = await after.decode([old, new])
    values = pydantic_data_converter.payload_converter.from_payloads(decoded)
    assert values == ["written with k1", "written with k2"]


async def test_an_unknown_key_id_is_a_clear_error() -> None:
    [old] = await EncryptionCodec({"k1": K1}, "k1").encode([await to_payload(EMAIL)])
    dropped_k1 = EncryptionCodec({"k2": K2}, "k2")
    with pytest.raises(UnknownEncryptionKeyError, match=r"key id 'k1'.*not configured"):
        await dropped_k1.decode([old])


async def test_tampered_ciphertext_fails_authentication() -> None:
    codec = EncryptionCodec({"k1": K1}, "k1")
    [encrypted] = await codec.encode([await to_payload(EMAIL)])
    flipped = bytearray(encrypted.data)
    flipped[-1] ^= 0x01
    tampered = Payload(metadata=dict(encrypted.metadata), data=bytes(flipped))
    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await codec.decode([tampered])


async def test_the_same_id_with_another_key_fails_authentication() -> None:
    [encrypted] = await EncryptionCodec({"k1": K1}, "k1").encode([await to_payload(EMAIL)])
    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await EncryptionCodec({"k1": K2}, "k1").decode([encrypted])


async def test_unencrypted_payloads_pass_through() -> None:
    codec = EncryptionCodec({"k1": K1}, "k1")
    plain = await to_payload({"written": "before encryption"})
    assert await codec.decode([plain]) == [plain]


def test_keys_come_from_the_configuration() -> None:
    settings = Settings(
        temporal_codec_keys=f"k2:{b64(K2)}, k1:{b64(K1)}",
        temporal_codec_key_id="k2",
    )
    codec = EncryptionCodec.from_settings(settings)
    assert codec.current_key_id == "k2"
    assert codec.key_ids == {"k1", "k2"}


def test_the_local_default_configuration_works() -> None:
    codec = EncryptionCodec.from_settings(Settings())
    assert codec.current_key_id in codec.key_ids


@pytest.mark.parametrize(
    ("keys", "current", "message"),
    [
        (f"k1:{b64(K1)}", "k2", "'k2' is not among the configured keys"),
        (f"k1:{b64(K1[:16])}", "k1", "must be 32 bytes"),
        ("k1:not base64!", "k1", "not valid base64"),
        (b64(K1), "k1", "'id:<base64 of 32 bytes>'"),
        (f"k1:{b64(K1)},k1:{b64(K2)}", "k1", "configured twice"),
        ("", "k1", "no encryption keys"),
    ],
)
def test_a_bad_key_configuration_is_refused(keys: str, current: str, message: str) -> None:
    settings = Settings(temporal_codec_keys=keys, temporal_codec_key_id=current)
    with pytest.raises(CodecConfigError, match=message):
        EncryptionCodec.from_settings(settings)


def test_keys_parse_with_ids_and_spaces() -> None:
    assert parse_keys(f" k2:{b64(K2)} ,k1:{b64(K1)},") == {"k2": K2, "k1": K1}


def test_the_converter_encodes_failures_and_payloads() -> None:
    converter = data_converter(Settings())
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert isinstance(converter.failure_converter, DefaultFailureConverterWithEncodedAttributes)


# ---------------------------------------------------------------- on the time-skipping server


@activity.defn(name="codec_test.greet")
async def greet(email: str) -> str:
    return f"sent to {email}"


@activity.defn(name="codec_test.bounce")
async def bounce(email: str) -> str:
    raise ApplicationError(f"mailbox {email} does not exist", type="bounced", non_retryable=True)


@workflow.defn(name="CodecTestWorkflow", sandboxed=False)
class CodecTestWorkflow:
    @workflow.run
    async def run(self, email: str, fail: bool) -> str:
        return await workflow.execute_activity(
            bounce if fail else greet,
            email,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await time_skipping()
    yield environment
    await environment.shutdown()


async def history_bytes(client: Client, workflow_id: str) -> tuple[bytes, str]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return History(events=history.events).SerializeToString(), history.to_json()


async def run(client: Client, *, fail: bool) -> tuple[str, str | BaseException]:
    queue = f"codec-{uuid.uuid4()}"
    workflow_id = f"codec-test-{uuid.uuid4()}"
    async with Worker(
        client, task_queue=queue, workflows=[CodecTestWorkflow], activities=[greet, bounce]
    ):
        try:
            result: str | BaseException = await client.execute_workflow(
                CodecTestWorkflow.run, args=[EMAIL, fail], id=workflow_id, task_queue=queue
            )
        except WorkflowFailureError as exc:
            result = exc
    return workflow_id, result


def plain_client(env: WorkflowEnvironment) -> Client:
    """A client on the same server without encryption: the control group."""
    return Client(
        env.client.service_client,
        namespace=env.client.namespace,
        data_converter=pydantic_data_converter,
    )


async def test_a_workflow_history_holds_no_plaintext(env: WorkflowEnvironment) -> None:
    workflow_id, result = await run(env.client, fail=False)
    assert result == f"sent to {EMAIL}"  # the client decrypts transparently
    raw, as_json = await history_bytes(env.client, workflow_id)
    assert EMAIL.encode() not in raw
    assert EMAIL not in as_json
    assert ENCODING in raw

    # The same workflow without the codec does show the address: the check above means it.
    plain_id, _ = await run(plain_client(env), fail=False)
    plain_raw, _ = await history_bytes(env.client, plain_id)
    assert EMAIL.encode() in plain_raw


async def test_a_failure_message_is_not_in_the_history_in_plaintext(
    env: WorkflowEnvironment,
) -> None:
    workflow_id, result = await run(env.client, fail=True)
    assert isinstance(result, WorkflowFailureError)
    cause = result.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    # Decrypted on the way back to the client: the operator-facing error is intact.
    assert cause.cause.message == f"mailbox {EMAIL} does not exist"
    assert cause.cause.type == "bounced"

    raw, as_json = await history_bytes(env.client, workflow_id)
    assert EMAIL.encode() not in raw
    assert b"does not exist" not in raw
    assert "does not exist" not in as_json

    plain_id, _ = await run(plain_client(env), fail=True)
    plain_raw, _ = await history_bytes(env.client, plain_id)
    assert f"mailbox {EMAIL} does not exist".encode() in plain_raw
