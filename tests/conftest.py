"""Test fixtures. Integration tests run against the real stack: `./dev up` is run once per
session (it starts what is not running and reuses what is). Where a Docker engine answers and
GRANTS_TEST_USE_TESTCONTAINERS=1, infrastructure comes from testcontainers instead."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared.config import REPO_ROOT, Settings

SAMPLES = REPO_ROOT.parent / "shared" / "domain" / "samples"


def load_sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return data


def sample_names() -> list[str]:
    return sorted(p.name for p in SAMPLES.glob("*.json"))


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Settings]:
    """The real stack, up and healthy."""
    if os.environ.get("GRANTS_TEST_SKIP_UP") != "1":
        subprocess.run([str(REPO_ROOT / "dev"), "up"], check=True, cwd=REPO_ROOT)
    yield settings


async def connect_as(settings: Settings, role: str) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=settings.pg_host,
        port=settings.pg_port,
        database=settings.pg_database,
        user=role,
        password=settings.pg_password(role),
        ssl=settings.pg_ssl(),
    )


@pytest.fixture
async def intake_http(stack: Settings) -> AsyncIterator[httpx.AsyncClient]:
    from tests.tokens import OPERATOR

    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{stack.port_intake}", timeout=30, headers=OPERATOR
    ) as client:
        yield client


def service_url(settings: Settings, service: str) -> str:
    return f"http://127.0.0.1:{settings.http_port(service)}"


def repo_path(*parts: str) -> Path:
    return REPO_ROOT.joinpath(*parts)
