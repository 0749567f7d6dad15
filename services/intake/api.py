"""Intake's HTTP API: submit applications, read them back with their lifecycle status."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID, uuid4

from fastapi import FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from services.intake.register import RegisterEntry, RegisterStatus
from services.intake.register import entry as register_entry
from services.intake.register import render_page as render_register
from services.intake.repository import (
    ExternalRefConflict,
    RegisterRepository,
    Repository,
    StoredApplication,
    TimelineRepository,
)
from shared.auth import Caller, Principal, forbid
from shared.contracts.application import ApplicationDocument
from shared.contracts.grant import (
    UPDATE_ACCEPT_AGREEMENT,
    UPDATE_SUBMIT_REPORT,
    AcceptAgreement,
    FinalReport,
    GrantActionResult,
)
from shared.contracts.review import UPDATE_ANSWER_INFORMATION, ActionResult, AnswerInformation
from shared.funding import get_funding_config
from shared.http import Guard, create_app, perform_action
from shared.runtime import ServiceContext
from shared.temporal import grant_workflow_id, lifecycle_workflow_id, review_workflow_id

R = TypeVar("R", bound=BaseModel)


class SubmissionReceipt(BaseModel):
    application_id: UUID
    external_ref: str
    workflow_id: str
    created: bool


class ApplicationView(BaseModel):
    application_id: UUID
    external_ref: str
    channel: str
    received_at: datetime
    workflow_id: str
    status: str | None
    document: ApplicationDocument


class TimelineEvent(BaseModel):
    event_id: UUID
    type: str
    version: int
    occurred_at: datetime
    source: str
    actor: str | None
    payload: dict[str, Any]


class ApplicationSummary(BaseModel):
    application_id: UUID
    external_ref: str
    title: str
    funding_line: str
    received_at: datetime


def build_api(ctx: ServiceContext) -> FastAPI:
    app = create_app(ctx, "Barents Grants — intake")
    repo = Repository(ctx.pool)
    guard = Guard(ctx)

    async def readable(
        request: Request, caller: Principal, application_id: UUID
    ) -> StoredApplication:
        """The application, if the caller may see it: its own organisation, or staff."""
        stored = await repo.get(application_id)
        if stored is None:
            # Applicants hear the same for "not yours" and "none": nothing leaks.
            if caller.role == "applicant":
                await forbid(request, ctx.pool, "unknown application")
            raise HTTPException(status_code=404, detail="no such application")
        await guard.require_org(request, caller, stored.document.applicant.org_number)
        return stored

    @app.post(
        "/applications",
        status_code=201,
        response_model=SubmissionReceipt,
        responses={
            200: {"description": "The same application was already submitted"},
            409: {"description": "external_ref used for a different application"},
        },
    )
    async def submit(
        document: ApplicationDocument,
        request: Request,
        response: Response,
        caller: Caller,
        x_correlation_id: Annotated[UUID | None, Header()] = None,
    ) -> SubmissionReceipt:
        """An applicant submits for its own organisation; an operator for any (bulk loads)."""
        if caller.role != "operator":
            await guard.require(request, caller, "applicant")
            await guard.require_org(request, caller, document.applicant.org_number)
        try:
            result = await repo.submit(
                document,
                channel="http",
                source="http",
                correlation_id=x_correlation_id or uuid4(),
                received_at=datetime.now(UTC),
            )
        except ExternalRefConflict as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc
        if not result.created:
            response.status_code = 200
        return SubmissionReceipt(
            application_id=result.application_id,
            external_ref=document.external_ref,
            workflow_id=lifecycle_workflow_id(result.application_id),
            created=result.created,
        )

    @app.get("/applications/{application_id}", response_model=ApplicationView)
    async def get_application(
        application_id: UUID, request: Request, caller: Caller
    ) -> ApplicationView:
        stored = await readable(request, caller, application_id)
        return ApplicationView(
            application_id=stored.application_id,
            external_ref=stored.external_ref,
            channel=stored.channel,
            received_at=stored.received_at,
            workflow_id=lifecycle_workflow_id(stored.application_id),
            status=await _status(ctx, stored),
            document=stored.document,
        )

    @app.get("/applications", response_model=list[ApplicationSummary])
    async def list_applications(
        funding_line: str | None = None,
        external_ref: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: datetime | None = None,
        *,
        request: Request,
        caller: Caller,
    ) -> list[ApplicationSummary]:
        if caller.role == "applicant":
            await forbid(request, ctx.pool, "applicants read their applications one by one")
        rows = await repo.list(
            funding_line=funding_line, external_ref=external_ref, limit=limit, before=before
        )
        return [
            ApplicationSummary(
                application_id=r.application_id,
                external_ref=r.external_ref,
                title=r.title,
                funding_line=r.funding_line,
                received_at=r.received_at,
            )
            for r in rows
        ]

    timeline = TimelineRepository(ctx.pool)

    @app.get("/applications/{application_id}/timeline", response_model=list[TimelineEvent])
    async def get_timeline(
        application_id: UUID, request: Request, caller: Caller
    ) -> list[TimelineEvent]:
        """Every event of the application, in order, with who (source, actor) and when."""
        await readable(request, caller, application_id)
        return [
            TimelineEvent(
                event_id=e.event_id,
                type=e.event_type,
                version=e.version,
                occurred_at=e.occurred_at,
                source=e.source,
                actor=e.actor,
                payload=e.payload,
            )
            for e in await timeline.timeline(application_id)
        ]

    async def applicant_action(
        request: Request,
        caller: Principal,
        application_id: UUID,
        workflow_id: str,
        update: str,
        action: BaseModel,
        result: type[R],
    ) -> R:
        """Only the applicant's own organisation acts as the applicant; staff cannot."""
        await guard.require(request, caller, "applicant")
        await readable(request, caller, application_id)
        return await perform_action(
            ctx,
            workflow_id,
            update,
            action,
            result,
            no_workflow="the application is not at this step",
        )

    @app.post("/applications/{application_id}/information", response_model=ActionResult)
    async def answer_information(
        application_id: UUID, answer: AnswerInformation, request: Request, caller: Caller
    ) -> ActionResult:
        """The applicant answers the advisor's information request."""
        return await applicant_action(
            request,
            caller,
            application_id,
            review_workflow_id(application_id),
            UPDATE_ANSWER_INFORMATION,
            answer,
            ActionResult,
        )

    @app.post(
        "/applications/{application_id}/agreement/acceptance", response_model=GrantActionResult
    )
    async def accept_agreement(
        application_id: UUID, acceptance: AcceptAgreement, request: Request, caller: Caller
    ) -> GrantActionResult:
        """The applicant accepts the grant agreement; the advance payment follows."""
        return await applicant_action(
            request,
            caller,
            application_id,
            grant_workflow_id(application_id),
            UPDATE_ACCEPT_AGREEMENT,
            acceptance,
            GrantActionResult,
        )

    @app.post("/applications/{application_id}/reports", response_model=GrantActionResult)
    async def submit_report(
        application_id: UUID, report: FinalReport, request: Request, caller: Caller
    ) -> GrantActionResult:
        """The applicant submits the final report (or a core-support year's annual report)."""
        return await applicant_action(
            request,
            caller,
            application_id,
            grant_workflow_id(application_id),
            UPDATE_SUBMIT_REPORT,
            report,
            GrantActionResult,
        )

    register_repo = RegisterRepository(ctx.pool)

    async def public_entries(
        funding_line: str | None = None, code: str | None = None
    ) -> list[RegisterEntry]:
        states = await register_repo.public(funding_line=funding_line, code=code)
        entries = (register_entry(s, _programme) for s in states)
        return [e for e in entries if e is not None]

    @app.get("/register", response_model=list[RegisterEntry], tags=["register"])
    async def list_register(
        funding_line: str | None = None, status: RegisterStatus | None = None
    ) -> list[RegisterEntry]:
        """The public project register: every funded project (no personal data)."""
        entries = await public_entries(funding_line=funding_line)
        return [e for e in entries if status is None or e.status == status]

    @app.get("/register.html", response_class=HTMLResponse, tags=["register"])
    async def register_page() -> HTMLResponse:
        """The public project register as a plain, accessible HTML page."""
        return HTMLResponse(render_register(await public_entries()))

    @app.get("/register/{code:path}", response_model=RegisterEntry, tags=["register"])
    async def get_register_entry(code: str) -> RegisterEntry:
        """One funded project by its code (the application's external_ref)."""
        entries = await public_entries(code=code)
        if not entries:
            raise HTTPException(status_code=404, detail="no such project in the register")
        return entries[0]

    return app


def _programme(funding_line: str) -> str:
    """The funding line's owner as configured; the code itself for a line no longer there."""
    try:
        return get_funding_config().line(funding_line).owner
    except KeyError:
        return funding_line


async def _status(ctx: ServiceContext, stored: StoredApplication) -> str | None:
    """The lifecycle's status, or None while its workflow is not started yet."""
    handle = ctx.temporal.get_workflow_handle(lifecycle_workflow_id(stored.application_id))
    try:
        status: str = await asyncio.wait_for(handle.query("status"), timeout=5)
        return status
    except Exception:
        return None
