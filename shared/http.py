"""What every service's HTTP API shares: `/health`, `/metrics`, `/asyncapi.json`, a
request-size limit, and per request a correlation id and request metrics. Server spans come
from FastAPI's own OpenTelemetry support (recorded when tracing is on: they continue the
caller's `traceparent`, and everything the route does — the outbox rows it writes, the
workflows it starts — joins that trace)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import MutableMapping
from typing import Any, TypeVar
from uuid import UUID, uuid4

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import asyncapi, observability
from shared.actions import ActionRefused, NoSuchWorkflow, perform
from shared.auth import Principal, Role, forbid
from shared.runtime import ServiceContext

CORRELATION_HEADER = "x-correlation-id"


class BodySizeLimit:
    """413 for a request body over `max_bytes`, declared (content-length) or sent chunked.

    Plain ASGI rather than Starlette's BaseHTTPMiddleware, which runs every request in a task
    of its own with streams between them: on the read endpoints that was a tenth of a
    service's time. A body is read whole (up to the limit) before the route runs, as the
    routes would anyway, and handed on unchanged."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client left; the route sees the disconnect.
                chunks = []
                early: Message | None = message
                break
            body: bytes = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                early = None
                break
        first: Message = early or {
            "type": "http.request",
            "body": b"".join(chunks),
            "more_body": False,
        }
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body larger than {self.max_bytes} bytes"}, status_code=413
        )
        await response(scope, receive, send)


class Telemetry:
    """Per request: the correlation id (`X-Correlation-Id`; one is made when the caller sent
    none, passed on to the route as if sent, and echoed in the response; on the log lines and
    the server span), and `grants_http_requests_total` / `grants_http_request_seconds` by
    route template (never by concrete path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
        sent = next((v for k, v in headers if k.lower() == CORRELATION_HEADER.encode()), None)
        correlation: str | None = None
        if sent is None:
            correlation = str(uuid4())
            headers.append((CORRELATION_HEADER.encode(), correlation.encode()))
            scope = {**scope, "headers": headers}
        else:
            try:
                correlation = str(UUID(sent.decode("latin-1")))
            except ValueError:
                correlation = None  # the route refuses it (422) where it reads it
        method: str = scope["method"]
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if correlation is not None:
                    message = {
                        **message,
                        "headers": [
                            *message.get("headers", []),
                            (CORRELATION_HEADER.encode(), correlation.encode()),
                        ],
                    }
            await send(message)

        token = observability.set_correlation_id(correlation)
        if correlation is not None:
            # FastAPI's server span (it wraps the middleware), when tracing is on.
            trace.get_current_span().set_attribute("grants.correlation_id", correlation)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = _route_template(scope)
            observability.http_request(method, route, status, time.perf_counter() - start)
            observability.reset_correlation_id(token)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


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


UNTRACED_PATHS = frozenset({"/health", "/metrics"})


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


def create_app(ctx: ServiceContext, title: str) -> FastAPI:
    # FastAPI's own telemetry: a server span per request (not for probes and scrapes, which
    # would be a trace every few seconds); no spans of its internal steps.
    app = FastAPI(
        title=title,
        version="1",
        telemetry={"operation_spans": False, "exclude": _untraced},
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.state.audit_pool = ctx.pool
    app.add_middleware(BodySizeLimit, max_bytes=ctx.settings.http_max_body_bytes)
    # Outermost, so every answer (a 413 too) is counted, traced and correlated.
    app.add_middleware(Telemetry)

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

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics (text format). Public like /health: scraped on the pod or
        host network only, never exposed through the ingress (it tells volumes)."""
        return Response(
            observability.render_metrics(), media_type=observability.METRICS_CONTENT_TYPE
        )

    @app.get("/asyncapi.json", tags=["operations"], response_class=Response)
    async def asyncapi_document() -> Response:
        """The AsyncAPI 3 document of this service's Kafka side: what it consumes, what it
        publishes, every message's schema (docs/asyncapi/<service>.json)."""
        text = await asyncio.to_thread(asyncapi.rendered, ctx.name)
        return Response(text, media_type="application/json")

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


R = TypeVar("R", bound=BaseModel)


async def perform_action(
    ctx: ServiceContext,
    workflow_id: str,
    update: str,
    action: BaseModel,
    result: type[R],
    *,
    no_workflow: str | None = None,
) -> R:
    """A human action from an HTTP route: refused by the workflow → 409 with its reason; no
    workflow open for it → 404 (or, with `no_workflow`, 409 with that text: the caller asked
    at the wrong step rather than for a wrong thing)."""
    try:
        return await perform(ctx.temporal, workflow_id, update, action, result)
    except ActionRefused as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except NoSuchWorkflow as exc:
        if no_workflow is not None:
            raise HTTPException(status_code=409, detail=no_workflow) from exc
        raise HTTPException(status_code=404, detail=str(exc)) from exc
