"""What every service's HTTP API shares: `/health` and a request-size limit."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request, Response
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


def create_app(ctx: ServiceContext, title: str) -> FastAPI:
    app = FastAPI(title=title, version="1")
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
