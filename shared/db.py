"""Postgres plumbing: each service connects as its own role with its own schema on the
search path, and applies its ordered SQL migrations before its pool opens."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.config import Settings

log = logging.getLogger(__name__)

# A connection, whether opened on its own or borrowed from a pool.
Conn = asyncpg.Connection | PoolConnectionProxy


async def connect(settings: Settings, role: str) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=settings.pg_host,
        port=settings.pg_port,
        database=settings.pg_database,
        user=role,
        password=settings.pg_password(role),
        ssl=settings.pg_ssl(),
        server_settings={"search_path": role, "application_name": role},
    )


async def create_pool(settings: Settings, role: str) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        host=settings.pg_host,
        port=settings.pg_port,
        database=settings.pg_database,
        user=role,
        password=settings.pg_password(role),
        ssl=settings.pg_ssl(),
        min_size=settings.pg_pool_min,
        max_size=settings.pg_pool_max,
        server_settings={"search_path": role, "application_name": role},
    )
    assert pool is not None
    return pool


SHARED_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def migration_files(directory: Path, prefix: str = "") -> list[tuple[str, Path]]:
    """(version, file) pairs in order; versions are the files' four-digit numbers."""
    files = sorted(p for p in directory.glob("*.sql") if p.name[:4].isdigit())
    versions = [p.name[:4] for p in files]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number in {directory}")
    return [(f"{prefix}{p.name[:4]}", p) for p in files]


async def migrate(settings: Settings, role: str, directory: Path) -> list[str]:
    """Apply the not-yet-applied migrations in order, each in its own transaction.

    An advisory lock keeps two instances of a service from migrating at once.
    Returns the names applied."""
    conn = await connect(settings, role)
    applied: list[str] = []
    lock_key = int.from_bytes(
        hashlib.sha256(f"migrate:{role}".encode()).digest()[:8], "big", signed=True
    )
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {r["version"]: r for r in rows}
        # The shared messaging tables (outbox, inbox) first, then the service's own.
        plan = migration_files(SHARED_MIGRATIONS, "shared-") + migration_files(directory)
        for version, path in plan:
            sql = path.read_text(encoding="utf-8")
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version]["checksum"] != checksum:
                    raise RuntimeError(
                        f"migration {path.name} changed after it was applied; add a new one instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    version,
                    path.name,
                    checksum,
                )
            applied.append(path.name)
            log.info("%s: applied migration %s", role, path.name)
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock_all()")
        finally:
            await conn.close()
    return applied
