"""Payments's HTTP API."""

from __future__ import annotations

from fastapi import FastAPI

from shared.http import create_app
from shared.runtime import ServiceContext


def build_api(ctx: ServiceContext) -> FastAPI:
    return create_app(ctx, "Barents Grants — payments")
