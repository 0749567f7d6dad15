"""What every service's HTTP API shares: `/health` and a request-size limit."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from shared.runtime import ServiceContext


class BodySizeLimit(BaseHTTPMiddleware):
    def __init__(self, app: Any, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        length = request.headers.get("content-length")
        too_big = length is not None and length.isdigit() and int(length) > self.max_bytes
        if not too_big and request.method in ("POST", "PUT", "PATCH"):
            too_big = len(await request.body()) > self.max_bytes
        if too_big:
            return JSONResponse(
                {"detail": f"request body larger than {self.max_bytes} bytes"}, status_code=413
            )
        return await call_next(request)


async def _check(coro: Any) -> str:
    try:
        await asyncio.wait_for(coro, timeout=3)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def create_app(ctx: ServiceContext, title: str) -> FastAPI:
    app = FastAPI(title=title, version="1")
    app.add_middleware(BodySizeLimit, max_bytes=ctx.settings.http_max_body_bytes)

    @app.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        async def postgres() -> None:
            await ctx.pool.fetchval("SELECT 1")

        async def kafka() -> None:
            if not await ctx.broker.ping(timeout=2):
                raise ConnectionError("Kafka did not answer")

        checks = {
            "postgres": await _check(postgres()),
            "kafka": await _check(kafka()),
            "temporal": await _check(ctx.temporal.service_client.check_health()),
        }
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"service": ctx.name, "status": "ok" if healthy else "degraded", "checks": checks},
            status_code=200 if healthy else 503,
        )

    return app
