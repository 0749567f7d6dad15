"""Database isolation on the real Postgres: no service role reads or writes another service's
schema — every table of every schema, tried from every other role."""

from __future__ import annotations

import asyncpg
import pytest

from shared.config import SERVICE_NAMES, Settings
from tests.conftest import connect_as

pytestmark = pytest.mark.integration


async def tables_of(settings: Settings, role: str) -> list[str]:
    conn = await connect_as(settings, role)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", role
        )
        return [r["tablename"] for r in rows]
    finally:
        await conn.close()


@pytest.mark.parametrize("intruder", SERVICE_NAMES)
async def test_no_role_reaches_another_services_schema(stack: Settings, intruder: str) -> None:
    conn = await connect_as(stack, intruder)
    try:
        for owner in SERVICE_NAMES:
            if owner == intruder:
                continue
            tables = await tables_of(stack, owner)
            assert tables, f"{owner} has tables"
            for table in tables:
                qualified = f'"{owner}"."{table}"'
                for statement in (
                    f"SELECT * FROM {qualified} LIMIT 1",
                    f"DELETE FROM {qualified}",
                    f"INSERT INTO {qualified} DEFAULT VALUES",
                ):
                    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                        await conn.execute(statement)
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.execute(f'CREATE TABLE "{owner}".intruder (id int)')
        # Its own schema works, and nobody can create objects in the shared public schema.
        assert await conn.fetchval(f'SELECT count(*) >= 0 FROM "{intruder}".outbox')
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE public.intruder (id int)")
    finally:
        await conn.close()
