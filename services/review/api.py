"""Review's HTTP API for advisors and deciders: assigned applications, reviews, information
requests and decisions. Every action is a Temporal update: a wrong one is refused (409) with
the workflow's reason and changes nothing."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict

from services.review.repository import Repository
from shared.auth import STAFF, Caller, forbid
from shared.contracts.grant import UPDATE_REVIEW_REPORT, GrantActionResult, ReviewReport
from shared.contracts.money import Money
from shared.contracts.review import (
    UPDATE_DECIDE,
    UPDATE_REQUEST_INFORMATION,
    UPDATE_SUBMIT_REVIEW,
    ActionResult,
    Decide,
    RequestInformation,
    ReviewState,
    SubmitReview,
)
from shared.funding import get_funding_config
from shared.http import Guard, create_app, perform_action
from shared.runtime import ServiceContext
from shared.temporal import grant_workflow_id, review_workflow_id

OpenStatus = Literal["in_review", "information_requested", "awaiting_decision"]


class AssignmentView(BaseModel):
    application_id: UUID
    advisor: str
    funding_line: str
    title: str
    requested: Money
    status: str
    next_deadline: datetime | None
    assigned_at: datetime


class BoardDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    application_id: UUID
    decision: Decide


class BoardDecisionResult(BaseModel):
    application_id: UUID
    accepted: bool
    result: ActionResult | None
    refused: str | None


def build_api(ctx: ServiceContext) -> FastAPI:
    app = create_app(ctx, "Barents Grants — review")
    repo = Repository(ctx.pool)
    guard = Guard(ctx)

    async def act(application_id: UUID, update: str, action: BaseModel) -> ActionResult:
        return await perform_action(
            ctx, review_workflow_id(application_id), update, action, ActionResult
        )

    @app.get("/funding-lines")
    async def funding_lines(request: Request, caller: Caller) -> dict[str, Any]:
        """The funding configuration in force: lines, deadlines, board meetings."""
        await guard.require(request, caller, *STAFF)
        config = get_funding_config()
        return {
            "lines": {c: line.model_dump(mode="json") for c, line in config.lines.items()},
            "deadlines": {
                name: value.total_seconds() for name, value in config.deadlines.model_dump().items()
            },
            "board": config.board.model_dump(mode="json"),
        }

    @app.get("/assignments", response_model=list[AssignmentView])
    async def assignments(
        advisor: str | None = None,
        status: OpenStatus | Literal["approved", "rejected", "withdrawn"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        *,
        request: Request,
        caller: Caller,
    ) -> list[AssignmentView]:
        """Applications by advisor and status, the nearest deadline first. Advisors see their
        own; the heads, the board, finance and operators see all."""
        await guard.require(request, caller, *STAFF)
        if caller.role == "advisor":
            advisor = caller.sub
        rows = await repo.assignments(advisor=advisor, status=status, limit=limit)
        return [AssignmentView(**vars(r)) for r in rows]

    @app.get("/advisors/{advisor}/applications", response_model=list[AssignmentView])
    async def my_applications(
        advisor: str,
        request: Request,
        caller: Caller,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[AssignmentView]:
        """An advisor's open applications, the nearest deadline first."""
        await guard.require(request, caller, *STAFF)
        if caller.role == "advisor":
            await guard.require_self(request, caller, advisor)
        rows = await repo.assignments(advisor=advisor, status=None, limit=limit)
        return [
            AssignmentView(**vars(r))
            for r in rows
            if r.status in ("in_review", "information_requested", "awaiting_decision")
        ]

    @app.get("/applications/{application_id}", response_model=ReviewState)
    async def review_state(application_id: UUID, request: Request, caller: Caller) -> ReviewState:
        await guard.require(request, caller, *STAFF)
        handle = ctx.temporal.get_workflow_handle(review_workflow_id(application_id))
        try:
            state: ReviewState = await asyncio.wait_for(
                handle.query("state", result_type=ReviewState), timeout=10
            )
        except Exception as exc:
            raise HTTPException(status_code=404, detail="no review for this application") from exc
        if caller.role == "advisor" and state.advisor != caller.sub:
            await forbid(request, ctx.pool, "advisor not assigned")
        return state

    @app.post("/applications/{application_id}/review", response_model=ActionResult)
    async def submit_review(
        application_id: UUID, review: SubmitReview, request: Request, caller: Caller
    ) -> ActionResult:
        await guard.require(request, caller, "advisor")
        await guard.require_self(request, caller, review.advisor)
        return await act(application_id, UPDATE_SUBMIT_REVIEW, review)

    @app.post("/applications/{application_id}/information-request", response_model=ActionResult)
    async def request_information(
        application_id: UUID, ask: RequestInformation, request: Request, caller: Caller
    ) -> ActionResult:
        await guard.require(request, caller, "advisor")
        await guard.require_self(request, caller, ask.advisor)
        return await act(application_id, UPDATE_REQUEST_INFORMATION, ask)

    @app.post("/applications/{application_id}/decision", response_model=ActionResult)
    async def decide(
        application_id: UUID, decision: Decide, request: Request, caller: Caller
    ) -> ActionResult:
        """Approve (committing the budget) or reject. An exhausted budget is answered with
        status `awaiting_decision` and the amount available, not an error."""
        await guard.require(request, caller, decision.role)
        await guard.require_self(request, caller, decision.decider)
        return await act(application_id, UPDATE_DECIDE, decision)

    @app.post(
        "/applications/{application_id}/final-report/review", response_model=GrantActionResult
    )
    async def review_final_report(
        application_id: UUID, review: ReviewReport, request: Request, caller: Caller
    ) -> GrantActionResult:
        """The advisor approves the applicant's final (or annual) report, or asks for changes.
        Approving a final report settles the grant: the final payment or a claim-back."""
        await guard.require(request, caller, "advisor")
        await guard.require_self(request, caller, review.advisor)
        return await perform_action(
            ctx, grant_workflow_id(application_id), UPDATE_REVIEW_REPORT, review, GrantActionResult
        )

    @app.post("/board/meetings/{meeting}/decisions", response_model=list[BoardDecisionResult])
    async def board_decisions(
        meeting: date, decisions: list[BoardDecision], request: Request, caller: Caller
    ) -> list[BoardDecisionResult]:
        """The board's decisions of one meeting, as a batch; each is accepted or refused on
        its own."""
        await guard.require(request, caller, "board")
        for item in decisions:
            await guard.require_self(request, caller, item.decision.decider)
        results = []
        for item in decisions:
            if item.decision.role != "board":
                results.append(
                    BoardDecisionResult(
                        application_id=item.application_id,
                        accepted=False,
                        result=None,
                        refused="only board decisions belong to a board meeting",
                    )
                )
                continue
            try:
                outcome = await act(item.application_id, UPDATE_DECIDE, item.decision)
                results.append(
                    BoardDecisionResult(
                        application_id=item.application_id,
                        accepted=True,
                        result=outcome,
                        refused=None,
                    )
                )
            except HTTPException as exc:
                results.append(
                    BoardDecisionResult(
                        application_id=item.application_id,
                        accepted=False,
                        result=None,
                        refused=str(exc.detail),
                    )
                )
        return results

    return app
