"""Who is calling, and may they: signed bearer tokens (JWT, HS256) carrying a role, checked
the same way for HTTP requests and for command events other systems publish on Kafka.

Roles: applicant (bound to an organisation number: sees and acts on its own applications
only), advisor, head_of_section, director, board, finance, operator. Every refusal is a 401 or
403 that leaks nothing, and is audited in the service's own schema.

`python -m shared.auth --role advisor --sub kari.nordmann` prints a token for local use."""

from __future__ import annotations

import argparse
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import asyncpg
import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.config import Settings, get_settings

log = logging.getLogger(__name__)

Role = Literal[
    "applicant", "advisor", "head_of_section", "director", "board", "finance", "operator"
]
STAFF: tuple[Role, ...] = ("advisor", "head_of_section", "director", "board", "finance", "operator")
DECIDERS: tuple[Role, ...] = ("head_of_section", "director", "board")


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    sub: str = Field(min_length=1, max_length=100)
    role: Role
    # Applicants act for one organisation (its number); None for staff.
    org: str | None = None
    # The system that presented the token (an application portal, the bank/ERP...).
    sys: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF


class Unauthenticated(Exception):
    pass


class Forbidden(Exception):
    pass


def issue_token(
    settings: Settings,
    *,
    sub: str,
    role: Role,
    org: str | None = None,
    sys: str | None = None,
    ttl_seconds: int = 3600,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "role": role,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if org:
        claims["org"] = org
    if sys:
        claims["sys"] = sys
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def verify_token(settings: Settings, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=["HS256"],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
        principal = Principal.model_validate(claims)
    except (jwt.PyJWTError, ValidationError) as exc:
        raise Unauthenticated(type(exc).__name__) from exc
    if principal.role == "applicant" and not principal.org:
        raise Unauthenticated("applicant token without an organisation")
    return principal


# --- auditing --------------------------------------------------------------------------------

AuditSink = Callable[[str, str, str | None, str | None, str], Awaitable[None]]


async def audit_refusal(
    pool: asyncpg.Pool, channel: str, target: str, sub: str | None, role: str | None, reason: str
) -> None:
    """Record a refused request or command; never lets auditing itself break the refusal."""
    try:
        await pool.execute(
            """INSERT INTO audit_refusals (channel, target, subject, role, reason)
               VALUES ($1, $2, $3, $4, $5)""",
            channel,
            target[:300],
            sub,
            role,
            reason[:300],
        )
    except Exception as exc:  # pragma: no cover - Postgres away; the log line still records it
        log.warning("could not audit a refusal: %s", type(exc).__name__)
    log.warning("refused %s %s (role %s): %s", channel, target[:300], role, reason)


# --- HTTP ------------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False)


def _audit_pool(request: Request) -> asyncpg.Pool | None:
    pool: asyncpg.Pool | None = getattr(request.app.state, "audit_pool", None)
    return pool


async def http_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the caller's Principal, or 401 (audited in the service's schema,
    found on `app.state.audit_pool`)."""
    target = f"{request.method} {request.url.path}"
    if credentials is None:
        await _refuse_http(_audit_pool(request), target, None, "no bearer token", 401)
    assert credentials is not None
    try:
        principal = verify_token(get_settings(), credentials.credentials)
    except Unauthenticated as exc:
        await _refuse_http(_audit_pool(request), target, None, f"invalid token ({exc})", 401)
        raise AssertionError("unreachable") from exc
    request.state.principal = principal
    return principal


# The annotation routes use for their caller: `caller: Caller`.
Caller = Annotated[Principal, Depends(http_principal)]


async def _refuse_http(
    pool: asyncpg.Pool | None, target: str, principal: Principal | None, reason: str, status: int
) -> None:
    if pool is not None:
        await audit_refusal(
            pool,
            "http",
            target,
            principal.sub if principal else None,
            principal.role if principal else None,
            reason,
        )
    detail = "authentication required" if status == 401 else "not allowed"
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    raise HTTPException(status_code=status, detail=detail, headers=headers)


async def forbid(request: Request, pool: asyncpg.Pool | None, reason: str) -> None:
    """Refuse with 403 (audited with the reason; the caller only hears 'not allowed')."""
    principal: Principal | None = getattr(request.state, "principal", None)
    await _refuse_http(pool, f"{request.method} {request.url.path}", principal, reason, 403)


# --- Kafka -----------------------------------------------------------------------------------

_kafka_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "kafka_principal", default=None
)


def kafka_principal() -> Principal | None:
    """The principal of the Kafka message being handled (from its `authorization` header)."""
    return _kafka_principal.get()


def set_kafka_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _kafka_principal.set(principal)


def principal_from_headers(settings: Settings, headers: Any) -> Principal | None:
    """The principal a Kafka message's `authorization: Bearer <jwt>` header names, or None."""
    raw: Any = None
    for key, value in headers or ():
        if key.lower() == "authorization":
            raw = value
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if not text.lower().startswith("bearer "):
        raise Unauthenticated("authorization header is not a bearer token")
    return verify_token(settings, text[7:].strip())


def kafka_caller(*roles: Role) -> Principal:
    """The principal of the command being handled; refuses a missing token, a token that
    names no producing system, or a role not in `roles`."""
    principal = kafka_principal()
    if principal is None:
        raise Unauthenticated("no authorization header")
    if principal.sys is None:
        raise Unauthenticated("the token names no producing system (sys)")
    if roles and principal.role not in roles:
        raise Forbidden(f"role {principal.role} may not send this command")
    return principal


def kafka_require(condition: bool, reason: str) -> None:
    if not condition:
        raise Forbidden(reason)


def main() -> None:
    parser = argparse.ArgumentParser(description="Print a bearer token for local use.")
    parser.add_argument("--role", required=True, choices=list(Role.__args__))  # type: ignore[attr-defined]
    parser.add_argument("--sub", required=True, help="user id (or system name)")
    parser.add_argument("--org", help="the applicant's organisation number")
    parser.add_argument("--sys", help="the producing system, for Kafka commands")
    parser.add_argument("--ttl", type=int, default=8 * 3600, help="seconds the token is valid")
    args = parser.parse_args()
    print(
        issue_token(
            get_settings(),
            sub=args.sub,
            role=args.role,
            org=args.org,
            sys=args.sys,
            ttl_seconds=args.ttl,
        )
    )


if __name__ == "__main__":
    main()
