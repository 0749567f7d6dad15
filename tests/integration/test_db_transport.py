"""How the services reach Postgres: no TLS over loopback (it protects nothing there and was
a fifth of a service's CPU on reads), TLS when GRANTS_PG_SSLMODE asks for it."""

from __future__ import annotations

import pytest

from shared import db
from shared.config import SERVICE_NAMES, Settings
from tests.conftest import connect_as

pytestmark = pytest.mark.integration


async def test_the_running_services_talk_to_a_loopback_postgres_in_the_clear(
    stack: Settings,
) -> None:
    assert stack.pg_sslmode == "auto" and stack.pg_ssl() == "disable"
    for role in SERVICE_NAMES:
        conn = await connect_as(stack, role)
        try:
            # A role sees its own sessions' rows; the service's pool is named after it.
            rows = await conn.fetch(
                """SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                   WHERE a.usename = $1 AND a.application_name = $1""",
                role,
            )
        finally:
            await conn.close()
        assert rows, f"{role}'s pool has connections"
        assert not any(r["ssl"] for r in rows), f"{role} negotiated TLS over loopback"


async def test_tls_is_used_when_the_setting_asks_for_it(stack: Settings) -> None:
    plain = await connect_as(stack, "intake")
    try:
        server_ssl = await plain.fetchval("SHOW ssl")
    finally:
        await plain.close()
    if server_ssl != "on":
        pytest.skip("this Postgres has no TLS configured")
    conn = await db.connect(stack.model_copy(update={"pg_sslmode": "require"}), "intake")
    try:
        assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("host", "mode", "expected"),
    [
        ("127.0.0.1", "auto", "disable"),
        ("::1", "auto", "disable"),
        ("localhost", "auto", "disable"),
        ("/var/run/postgresql", "auto", "disable"),
        ("postgres.database.svc.cluster.local", "auto", "prefer"),
        ("10.0.0.5", "auto", "prefer"),
        ("127.0.0.1", "verify-full", "verify-full"),
    ],
)
def test_the_ssl_mode_follows_the_host_unless_set(host: str, mode: str, expected: str) -> None:
    settings = Settings.model_validate({"pg_host": host, "pg_sslmode": mode})
    assert settings.pg_ssl() == expected
