"""The codec server for the Temporal UI (deploy/local/codec_server.py), run as `./dev up` runs
it (`python deploy/local/codec_server.py`) on a free port: /decode returns the plaintext of
what the services' codec encrypted, /encode round-trips, and the UI's CORS preflight passes.
It needs nothing of the stack."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from shared.codec import ENCODING, METADATA_KEY_ID, EncryptionCodec
from shared.config import REPO_ROOT, Settings

pytestmark = pytest.mark.integration

EMAIL = "ingrid.haugen@kirkenes-kultur.example.no"
UI_ORIGIN = "http://127.0.0.1:8233"
OLD_KEY = base64.b64encode(os.urandom(32)).decode()
NEW_KEY = base64.b64encode(os.urandom(32)).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def codec_settings() -> Settings:
    # A rotated configuration: "new" is current, "old" still readable.
    return Settings(
        temporal_codec_keys=f"new:{NEW_KEY},old:{OLD_KEY}",
        temporal_codec_key_id="new",
        codec_server_port=free_port(),
        temporal_ui_port=8233,
    )


@pytest.fixture(scope="module")
def codec_server(codec_settings: Settings) -> Iterator[str]:
    env = {
        **os.environ,
        "GRANTS_TEMPORAL_CODEC_KEYS": codec_settings.temporal_codec_keys.get_secret_value(),
        "GRANTS_TEMPORAL_CODEC_KEY_ID": codec_settings.temporal_codec_key_id,
        "GRANTS_CODEC_SERVER_PORT": str(codec_settings.codec_server_port),
        "GRANTS_HTTP_HOST": "127.0.0.1",
        "GRANTS_TEMPORAL_UI_PORT": "8233",
    }
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "deploy" / "local" / "codec_server.py")],
        cwd="/",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{codec_settings.codec_server_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"codec server exited with {proc.returncode}: {output}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("codec server did not answer /health within 30s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def http(codec_server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=codec_server, timeout=10) as client:
        yield client


def as_json(payloads: list[Payload]) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def from_json(body: str) -> list[Payload]:
    return list(json_format.Parse(body, Payloads()).payloads)


async def test_decode_returns_the_plaintext(http: httpx.AsyncClient) -> None:
    codec = EncryptionCodec({"old": base64.b64decode(OLD_KEY)}, "old")  # before the rotation
    plain = pydantic_data_converter.payload_converter.to_payloads([{"email": EMAIL}])
    encrypted = await codec.encode(plain)

    response = await http.post(
        "/decode",
        content=as_json(encrypted),
        headers={"content-type": "application/json", "x-namespace": "default", "origin": UI_ORIGIN},
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == UI_ORIGIN
    body = response.json()
    # What the UI shows: the original metadata and the JSON data, base64 as protobuf JSON has it.
    [decoded] = body["payloads"]
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(decoded["data"])) == {"email": EMAIL}
    assert from_json(response.text) == plain


async def test_encode_round_trips_with_the_current_key(http: httpx.AsyncClient) -> None:
    plain = pydantic_data_converter.payload_converter.to_payloads([EMAIL, {"n": 1}])
    encoded = await http.post("/encode", content=as_json(plain))
    assert encoded.status_code == 200, encoded.text
    sealed = from_json(encoded.text)
    assert all(p.metadata["encoding"] == ENCODING for p in sealed)
    assert all(p.metadata[METADATA_KEY_ID] == b"new" for p in sealed)
    assert EMAIL not in encoded.text
    assert EMAIL.encode() not in b"".join(p.data for p in sealed)

    decoded = await http.post("/decode", content=encoded.text)
    assert decoded.status_code == 200, decoded.text
    assert from_json(decoded.text) == plain


async def test_the_namespace_templated_path_works_too(http: httpx.AsyncClient) -> None:
    plain = pydantic_data_converter.payload_converter.to_payloads([EMAIL])
    encoded = await http.post("/default/encode", content=as_json(plain))
    assert encoded.status_code == 200, encoded.text
    decoded = await http.post("/default/decode", content=encoded.text)
    assert from_json(decoded.text) == plain


async def test_unencrypted_payloads_pass_through(http: httpx.AsyncClient) -> None:
    plain = pydantic_data_converter.payload_converter.to_payloads(["written before encryption"])
    response = await http.post("/decode", content=as_json(plain))
    assert response.status_code == 200
    assert from_json(response.text) == plain


async def test_an_unknown_key_is_a_clear_400(http: httpx.AsyncClient) -> None:
    stranger = EncryptionCodec({"gone": os.urandom(32)}, "gone")
    sealed = await stranger.encode(pydantic_data_converter.payload_converter.to_payloads([EMAIL]))
    response = await http.post("/decode", content=as_json(sealed))
    assert response.status_code == 400
    assert "'gone'" in response.json()["detail"]


async def test_a_body_that_is_not_payloads_is_a_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/decode", content=b'{"payloads": "nope"}')
    assert response.status_code == 400


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8233", "http://localhost:8233"])
@pytest.mark.parametrize("path", ["/decode", "/encode"])
async def test_the_ui_preflight_is_answered(
    http: httpx.AsyncClient, origin: str, path: str
) -> None:
    response = await http.options(
        path,
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-namespace",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == origin
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "x-namespace" in allowed
    assert "content-type" in allowed


async def test_another_origin_is_not_allowed(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/decode",
        headers={"origin": "http://evil.example", "access-control-request-method": "POST"},
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
