"""What every service's HTTP API shares: `/health` and a request-size limit."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from shared.auth import Principal, Role, forbid
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


async def _validation_error(request: Request, exc: Exception) -> Response:
    """422 with every problem located. Rendered with ASCII escapes, so input that cannot be
    encoded as UTF-8 (a lone surrogate) is echoed safely instead of failing with a 500."""
    assert isinstance(exc, RequestValidationError)
    body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True, default=str)
    return Response(body, status_code=422, media_type="application/json")


def create_app(ctx: ServiceContext, title: str) -> FastAPI:
    app = FastAPI(title=title, version="1")
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.state.audit_pool = ctx.pool
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


class Guard:
    """Role checks for one service's routes; refusals are audited."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._pool = ctx.pool

    async def require(self, request: Request, principal: Principal, *roles: Role) -> None:
        if principal.role not in roles:
            await forbid(request, self._pool, f"role {principal.role} not in {roles}")

    async def require_self(self, request: Request, principal: Principal, user: str) -> None:
        """The caller acts as `user` (a body's advisor or decider field) and no one else."""
        if principal.sub != user:
            await forbid(request, self._pool, f"{principal.sub} acting as {user}")

    async def require_org(self, request: Request, principal: Principal, org: str) -> None:
        """Applicants reach their own organisation's applications only; staff reach all."""
        if principal.role == "applicant" and principal.org != org:
            await forbid(request, self._pool, "applicant of another organisation")
        elif principal.role != "applicant" and not principal.is_staff:
            await forbid(request, self._pool, f"role {principal.role}")
