"""Payments's HTTP API: the budget ledgers, read-only."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query

from services.payments.repository import Repository
from shared.contracts.ledger import LedgerView
from shared.http import create_app
from shared.runtime import ServiceContext

_LINE = re.compile(r"[A-Z][A-Z0-9-]{1,39}")


def build_api(ctx: ServiceContext) -> FastAPI:
    app = create_app(ctx, "Barents Grants — payments")
    repo = Repository(ctx.pool)

    @app.get("/ledgers", response_model=list[LedgerView], tags=["ledgers"])
    async def list_ledgers(
        year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    ) -> list[LedgerView]:
        return [ledger.view() for ledger in await repo.ledgers(year)]

    @app.get(
        "/ledgers/{funding_line}/{year}",
        response_model=LedgerView,
        tags=["ledgers"],
        responses={404: {"description": "No ledger for that funding line and year"}},
    )
    async def get_ledger(funding_line: str, year: int) -> LedgerView:
        # What no ledger can be called is unknown too, and never reaches Postgres (which
        # would fail on a NUL byte or a year beyond its integer range).
        known = _LINE.fullmatch(funding_line) is not None and 2000 <= year <= 2100
        ledger = await repo.ledger(funding_line, year) if known else None
        if ledger is None:
            raise HTTPException(status_code=404, detail="no ledger for that funding line and year")
        return ledger.view()

    return app
