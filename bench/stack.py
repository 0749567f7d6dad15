"""Which stack the bench talks to, and whether it is up: every address comes from `Settings`
(the `GRANTS_*` environment). Like `./dev`, a `GRANTS_KAFKA_PORT` or `GRANTS_TEMPORAL_PORT`
without an explicit `GRANTS_KAFKA_BOOTSTRAP` / `GRANTS_TEMPORAL_ADDRESS` names the local
broker or server on that port, so `python -m bench` and `./dev bench` measure the same stack."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import operator, service_url
from shared.config import REPO_ROOT, SERVICE_NAMES, Settings


class StackDown(RuntimeError):
    pass


def load_settings() -> Settings:
    env = os.environ
    overrides: dict[str, Any] = {}
    if "GRANTS_KAFKA_BOOTSTRAP" not in env and "GRANTS_KAFKA_PORT" in env:
        overrides["kafka_bootstrap"] = f"127.0.0.1:{env['GRANTS_KAFKA_PORT']}"
    if "GRANTS_TEMPORAL_ADDRESS" not in env and "GRANTS_TEMPORAL_PORT" in env:
        overrides["temporal_address"] = f"127.0.0.1:{env['GRANTS_TEMPORAL_PORT']}"
    return Settings(**overrides)


def addresses(settings: Settings) -> dict[str, str]:
    out = {
        "postgres": f"{settings.pg_host}:{settings.pg_port}/{settings.pg_database}",
        "kafka": settings.kafka_bootstrap,
        "temporal": f"{settings.temporal_address} (namespace {settings.temporal_namespace})",
        "state_dir": str(settings.state_dir),
    }
    out.update({name: service_url(settings, name) for name in SERVICE_NAMES})
    return out


async def check_up(settings: Settings, patience: float = 60.0) -> None:
    """Every service's /health green (once within `patience` seconds: a busy Temporal can make
    a health check time out now and then), or StackDown naming what is not."""
    problems: dict[str, str] = {}
    deadline = asyncio.get_running_loop().time() + patience
    async with httpx.AsyncClient(timeout=10) as client:
        for name in SERVICE_NAMES:
            url = f"{service_url(settings, name)}/health"
            while True:
                try:
                    response = await client.get(url)
                    if response.status_code == 200:
                        problems.pop(name, None)
                        break
                    problems[name] = f"{url} answered {response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as exc:
                    problems[name] = f"{url}: {type(exc).__name__}"
                    if isinstance(exc, httpx.ConnectError):
                        break  # nothing listens: not a matter of patience
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(2)
    if problems:
        raise StackDown(
            "the stack is not up (start it with ./dev up, with the same GRANTS_* environment): "
            + "; ".join(f"{k}: {v}" for k, v in problems.items())
        )


async def deadlines(settings: Settings) -> dict[str, Any]:
    """The deadlines the running services use (seconds), from the review service."""
    async with httpx.AsyncClient(timeout=10, headers=operator(settings)) as client:
        response = await client.get(f"{service_url(settings, 'review')}/funding-lines")
        response.raise_for_status()
        found: dict[str, Any] = response.json().get("deadlines", {})
        return found


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
    }


def git_state() -> dict[str, Any]:
    """The commit the working tree is at, and the tracked files changed since (the running
    services run the tree as it was when they started)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5, check=True
        ).stdout

    try:
        changed = git("status", "--porcelain", "--untracked-files=no").splitlines()
        return {
            "commit": git("rev-parse", "--short", "HEAD").strip(),
            "subject": git("log", "-1", "--format=%s").strip(),
            "uncommitted_changes": [line[3:] for line in changed],
        }
    except (OSError, subprocess.SubprocessError):
        return {}


def services_code(settings: Settings) -> dict[str, str]:
    """Where each service process runs its code from (its working directory), with the
    commit named by a COMMIT file there if any (a snapshot of the tree)."""
    out: dict[str, str] = {}
    for name in SERVICE_NAMES:
        try:
            pid = (settings.state_dir / "pids" / f"{name}.pid").read_text().strip()
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except (OSError, ValueError):
            continue
        marker = cwd / "COMMIT"
        out[name] = str(cwd) + (
            f" (commit {marker.read_text().strip()})" if marker.exists() else " (work tree)"
        )
    return out


def services_started(settings: Settings) -> dict[str, str]:
    """When each service process started (it runs the code of that moment)."""
    out: dict[str, str] = {}
    try:
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, StopIteration):
        return out
    ticks = os.sysconf("SC_CLK_TCK")
    for name in SERVICE_NAMES:
        try:
            pid = (settings.state_dir / "pids" / f"{name}.pid").read_text().strip()
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            started = boot + int(fields[19]) / ticks
            out[name] = datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OSError, ValueError, IndexError):
            continue
    return out


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
