"""The services' HTTP APIs as the CLI calls them, with bearer tokens.

Tokens: a real token from `GRANTS_TOKEN` (production), or in local development a token the
CLI mints itself with the stack's secret (`shared.auth.issue_token`) for the identity given
with `--as ROLE:USER`, or else the command's natural actor (an operator for reads, the
advisor for a review, the decider for a decision). Base URLs come from the same `GRANTS_*`
settings as the services (`GRANTS_HTTP_HOST`, `GRANTS_PORT_INTAKE`, ...), or whole from
`GRANTS_INTAKE_URL`, `GRANTS_REVIEW_URL`, `GRANTS_PAYMENTS_URL`."""

from __future__ import annotations

import getpass
from typing import Any, Literal
from uuid import UUID

import httpx
from pydantic import Field, SecretStr

from grants_cli.parsing import Identity
from grants_cli.render import format_detail
from shared.auth import issue_token
from shared.config import Settings

Service = Literal["intake", "review", "payments"]
STACK_HINT = "is the stack running? ./dev up"


def _login_name() -> str:
    try:
        name = getpass.getuser()
    except Exception:
        return "grants-cli"
    return name[:100] or "grants-cli"


class CliSettings(Settings):
    """The services' settings plus what only the CLI reads (all `GRANTS_*`)."""

    # A real bearer token (production); when set, no token is minted unless --as is given.
    token: SecretStr | None = None
    intake_url: str | None = None
    review_url: str | None = None
    payments_url: str | None = None
    http_timeout_seconds: float = Field(default=30.0, gt=0)
    # Who reads as the operator when nobody is named (local development).
    cli_user: str = Field(default_factory=_login_name, min_length=1, max_length=100)

    def service_url(self, service: Service) -> str:
        explicit: str | None = getattr(self, f"{service}_url")
        if explicit:
            return explicit.rstrip("/")
        host = self.http_host if self.http_host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.http_port(service)}"


class CliError(Exception):
    """A failure to show the user (in red) before exiting with status 1."""


class Auth:
    """Which bearer token a request carries."""

    def __init__(self, settings: CliSettings, override: Identity | None = None) -> None:
        self.settings = settings
        self.override = override

    def operator(self) -> Identity:
        return Identity(role="operator", sub=self.settings.cli_user)

    def token(self, default: Identity) -> str:
        """--as wins, then GRANTS_TOKEN, then a token minted for the command's own actor. A
        minted token keeps the default's producing system (`sys`, for Kafka commands)."""
        if self.override is None and self.settings.token is not None:
            return self.settings.token.get_secret_value()
        who = self.override or default
        sys = who.sys or default.sys
        return issue_token(
            self.settings, sub=who.sub, role=who.role, org=who.org, sys=sys, ttl_seconds=600
        )

    def header(self, default: Identity | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(default or self.operator())}"}


class Api:
    """Synchronous calls to intake, review and payments; failures become `CliError`s."""

    def __init__(self, settings: CliSettings, auth: Auth) -> None:
        self.settings = settings
        self.auth = auth
        self._http = httpx.Client(timeout=settings.http_timeout_seconds)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing --------------------------------------------------------------------------

    def send(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        actor: Identity | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """The response, whatever its status; an unreachable service is a `CliError`."""
        url = self.settings.service_url(service) + path
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            return self._http.request(
                method, url, json=json, params=clean, headers=self.auth.header(actor)
            )
        except httpx.ConnectError as exc:
            raise CliError(
                f"cannot reach the {service} service at {self.settings.service_url(service)}: "
                f"{STACK_HINT}"
            ) from exc
        except httpx.TimeoutException as exc:
            raise CliError(f"the {service} service did not answer in time ({url})") from exc
        except httpx.HTTPError as exc:
            raise CliError(f"{service}: {type(exc).__name__}: {exc}") from exc

    def call(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        actor: Identity | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """The JSON body of a 2xx answer; any other answer is a `CliError` with its detail."""
        response = self.send(service, method, path, actor=actor, json=json, params=params)
        if response.is_success:
            return response.json()
        raise CliError(refusal(service, response, actor or self.auth.operator(), self.auth))

    # --- intake ----------------------------------------------------------------------------

    def submit(self, document: dict[str, Any], actor: Identity | None = None) -> httpx.Response:
        return self.send("intake", "POST", "/applications", actor=actor, json=document)

    def application(self, application_id: UUID) -> dict[str, Any]:
        body: dict[str, Any] = self.call("intake", "GET", f"/applications/{application_id}")
        return body

    def timeline(self, application_id: UUID) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = self.call(
            "intake", "GET", f"/applications/{application_id}/timeline"
        )
        return body

    def accept_agreement(
        self, application_id: UUID, accepted_by: str, actor: Identity
    ) -> dict[str, Any]:
        body: dict[str, Any] = self.call(
            "intake",
            "POST",
            f"/applications/{application_id}/agreement/acceptance",
            actor=actor,
            json={"accepted_by": accepted_by},
        )
        return body

    # --- review ----------------------------------------------------------------------------

    def review_state(self, application_id: UUID) -> dict[str, Any] | None:
        """The review's state, or None while there is none (still screening, or not staff)."""
        response = self.send("review", "GET", f"/applications/{application_id}")
        if response.status_code in (403, 404):
            return None
        if not response.is_success:
            raise CliError(refusal("review", response, self.auth.operator(), self.auth))
        body: dict[str, Any] = response.json()
        return body

    def assignments(
        self, *, advisor: str | None, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = self.call(
            "review",
            "GET",
            "/assignments",
            params={"advisor": advisor, "status": status, "limit": limit},
        )
        return body

    def submit_review(
        self, application_id: UUID, review: dict[str, Any], actor: Identity
    ) -> dict[str, Any]:
        body: dict[str, Any] = self.call(
            "review", "POST", f"/applications/{application_id}/review", actor=actor, json=review
        )
        return body

    def request_information(
        self, application_id: UUID, ask: dict[str, Any], actor: Identity
    ) -> dict[str, Any]:
        body: dict[str, Any] = self.call(
            "review",
            "POST",
            f"/applications/{application_id}/information-request",
            actor=actor,
            json=ask,
        )
        return body

    def decide(
        self, application_id: UUID, decision: dict[str, Any], actor: Identity
    ) -> dict[str, Any]:
        body: dict[str, Any] = self.call(
            "review",
            "POST",
            f"/applications/{application_id}/decision",
            actor=actor,
            json=decision,
        )
        return body

    # --- payments --------------------------------------------------------------------------

    def payments(
        self, *, application_id: UUID | None, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = self.call(
            "payments",
            "GET",
            "/payments",
            params={"application_id": application_id, "status": status, "limit": limit},
        )
        return body

    def payment(self, reference: str) -> dict[str, Any]:
        body: dict[str, Any] = self.call("payments", "GET", f"/payments/{reference}")
        return body

    def ledgers(self, year: int | None) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = self.call("payments", "GET", "/ledgers", params={"year": year})
        return body


def refusal(service: str, response: httpx.Response, actor: Identity, auth: Auth) -> str:
    """What a non-2xx answer means, for the user: the status, the service's reason, a hint."""
    try:
        detail = format_detail(response.json().get("detail"))
    except (ValueError, AttributeError):
        detail = response.text.strip()[:300]
    text = f"{service} answered {response.status_code}: {detail or response.reason_phrase}"
    if response.status_code == 401:
        source = "GRANTS_TOKEN" if auth.override is None and auth.settings.token else "minted"
        text += f" (the {source} token was not accepted: wrong secret or expired)"
    elif response.status_code == 403:
        who = auth.override or (None if auth.settings.token else actor)
        text += f" (as {who})" if who else " (with GRANTS_TOKEN)"
    return text
