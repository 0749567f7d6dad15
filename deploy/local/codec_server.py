"""Codec server for the Temporal UI (and `temporal --codec-endpoint`): it decrypts the payloads
the services encrypt (shared/codec.py) so operators can read them in the UI.

Temporal's remote codec protocol: `POST /decode` and `POST /encode` take and return a
`Payloads` message as protobuf JSON (`{"payloads": [{"metadata": {...}, "data": "<base64>"}]}`);
both are also served under `/{namespace}/` for endpoint templating. The UI calls them from
the browser, so CORS answers the UI's origins, with the `X-Namespace` header and the OPTIONS
preflight. `GET /health` for `./dev status`.

Run: `python deploy/local/codec_server.py` (started by `./dev up`), listening on
GRANTS_HTTP_HOST:GRANTS_CODEC_SERVER_PORT (127.0.0.1:8090), with the same keys as the services
(GRANTS_TEMPORAL_CODEC_KEYS, GRANTS_TEMPORAL_CODEC_KEY_ID). It hands out plaintext to whoever
can reach it: in production it belongs behind the operators' authentication, never public.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from shared.codec import EncryptionCodec, PayloadDecryptionError
from shared.config import Settings

log = logging.getLogger("codec_server")

Transform = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


def allowed_origins(settings: Settings) -> list[str]:
    origins = [
        f"http://127.0.0.1:{settings.temporal_ui_port}",
        f"http://localhost:{settings.temporal_ui_port}",
    ]
    origins += [o.strip() for o in settings.codec_server_extra_origins.split(",") if o.strip()]
    return origins


def build_app(settings: Settings, codec: EncryptionCodec | None = None) -> FastAPI:
    codec = codec or EncryptionCodec.from_settings(settings)
    app = FastAPI(title="Barents Grants Temporal codec server", docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=allowed_origins(settings),
        allow_methods=["POST", "OPTIONS"],
        allow_headers=["content-type", "x-namespace", "authorization"],
        # The UI can pass the user's access token ("include cross-origin credentials").
        allow_credentials=True,
        max_age=600,
    )

    async def apply(request: Request, transform: Transform) -> Response:
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except json_format.ParseError as exc:
            raise HTTPException(400, f"body is not a Payloads JSON message: {exc}") from exc
        try:
            result = Payloads(payloads=await transform(payloads.payloads))
        except PayloadDecryptionError as exc:
            raise HTTPException(400, str(exc)) from exc
        return Response(json_format.MessageToJson(result), media_type="application/json")

    # Also under a namespace segment, for `--codec-endpoint 'http://…/{namespace}'` templating.
    @app.post("/decode")
    @app.post("/{namespace}/decode")
    async def decode(request: Request) -> Response:
        return await apply(request, codec.decode)

    @app.post("/encode")
    @app.post("/{namespace}/encode")
    async def encode(request: Request) -> Response:
        return await apply(request, codec.encode)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "current_key_id": codec.current_key_id}

    return app


def main() -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = build_app(settings)
    log.info(
        "codec server on http://%s:%d for %s",
        settings.http_host,
        settings.codec_server_port,
        ", ".join(allowed_origins(settings)),
    )
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.codec_server_port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
